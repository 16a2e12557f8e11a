"""Who is speaking, from the audio levels the tap measures: for highlighting the active speaker.

Levels are each participant's loudest 20 ms chunk in a short window. Someone counts as
speaking while their level stays above a speech threshold (with a short hangover so the gaps
between words do not flicker); the active speaker changes only when another speaker is
clearly louder or the current one has stopped, and stays shown briefly after silence.
"""

from __future__ import annotations

from dataclasses import dataclass

SPEECH_DBFS = -42.0  # normal speech at a headset or laptop microphone sits well above this
HANGOVER_S = 0.6
SWITCH_MARGIN_DB = 6.0
ACTIVE_HOLD_S = 2.0


@dataclass(frozen=True)
class Speakers:
    active: str | None
    speaking: tuple[str, ...]


class ActiveSpeaker:
    def __init__(self) -> None:
        self._last_loud: dict[str, float] = {}
        self._level: dict[str, float] = {}
        self._active: str | None = None
        self._active_until = 0.0
        self._shown = Speakers(None, ())

    @property
    def active(self) -> str | None:
        """Who is shown as the active speaker now."""
        return self._shown.active

    def update(self, levels: dict[str, float], now: float) -> Speakers | None:
        """Feed one window of levels (participants who may count); the new state if changed."""
        for pid in list(self._last_loud):
            if pid not in levels:
                del self._last_loud[pid]
                self._level.pop(pid, None)
        for pid, level in levels.items():
            if level >= SPEECH_DBFS:
                self._last_loud[pid] = now
                self._level[pid] = level
        speaking = sorted(pid for pid, at in self._last_loud.items() if now - at <= HANGOVER_S)
        active = self._active
        if active not in levels:
            active = None
        if speaking:
            loudest = max(speaking, key=lambda pid: self._level[pid])
            if (
                active not in speaking
                or self._level[loudest] - self._level[active] >= SWITCH_MARGIN_DB
            ):
                active = loudest
            self._active_until = now + ACTIVE_HOLD_S
        elif now > self._active_until:
            active = None
        self._active = active
        state = Speakers(active, tuple(speaking))
        if state == self._shown:
            return None
        self._shown = state
        return state

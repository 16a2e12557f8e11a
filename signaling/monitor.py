"""Watching a live hearing: the active speaker for everyone, each subscriber's media fitted to
its link, connection quality for the court."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from media.speakers import ActiveSpeaker

if TYPE_CHECKING:
    from signaling.hearing import LiveHearing

log = logging.getLogger(__name__)

SPEAKERS_WINDOW_S = 0.25
QUALITY_REPORT_S = 2.0
# A participant on the record whose audio stopped arriving this long: the recording has a gap
# (a connection that died, a browser that stopped sending). The court is told as it happens.
RECORDING_GAP_S = 3.0


class Monitor:
    def __init__(self, hearing: LiveHearing) -> None:
        self.hearing = hearing
        self._speakers = ActiveSpeaker()
        self._task: asyncio.Task[None] | None = None
        self._gaps: dict[str, float] = {}  # participant -> wall time their gap began

    def start(self) -> None:
        if self._task is None:
            self._task = self.hearing.tasks.spawn(
                self._watch(), name=f"monitor-{self.hearing.id[:8]}",
                context=self.hearing.context)

    async def _watch(self) -> None:
        """The active speaker a few times a second, connection quality every 2 s."""
        loop = asyncio.get_running_loop()
        next_quality = loop.time() + QUALITY_REPORT_S
        while True:
            await asyncio.sleep(SPEAKERS_WINDOW_S)
            try:
                self._update_speakers(loop.time())
                self.hearing.media.adapt(self._speakers.active)
                if loop.time() >= next_quality:
                    next_quality = loop.time() + QUALITY_REPORT_S
                    await self._report_quality()
                await self._watch_gaps()
            except Exception:
                log.exception("hearing %s: monitoring failed", self.hearing.id)

    def _update_speakers(self, now: float) -> None:
        changed = self._speakers.update(self.hearing.media.take_levels(), now)
        if changed is not None:
            self.hearing.broadcast({"type": "speakers", "active": changed.active,
                                    "speaking": list(changed.speaking)})

    async def _watch_gaps(self) -> None:
        """Tell the court, and the audit, when someone's recording stops and starts again."""
        hearing = self.hearing
        silent = hearing.media.silent_on_record(RECORDING_GAP_S)
        now = time.time()
        for pid, quiet in silent.items():
            if pid in self._gaps:
                continue
            began = self._gaps[pid] = now - quiet
            seat = hearing.seats.get(pid)
            # In the audit first: what the court is told is already on the record.
            await self._audited("recording.gap_started", participant_id=pid, wall=began)
            hearing.tell_court({
                "type": "alert", "code": "recording_gap", "participant_id": pid,
                "since": began,
                "message": f"nothing has been recorded from {seat.name if seat else pid} "
                           f"for {quiet:.0f} s",
            })
        for pid in [p for p in self._gaps if p not in silent]:
            began = self._gaps.pop(pid)
            # Back, or no longer to be recorded (left, muted, the recording stopped).
            back = hearing.media.recording_of(pid)
            await self._audited("recording.gap_ended", participant_id=pid, wall=now,
                                began=began, seconds=round(now - began, 1),
                                reason="audio back" if back else "no longer recorded")
            if back:
                hearing.tell_court({"type": "alert", "code": "recording_gap_ended",
                                    "participant_id": pid, "since": began,
                                    "seconds": round(now - began, 1),
                                    "message": f"recording again after {now - began:.0f} s"})

    async def _audited(self, action: str, **data: object) -> None:
        try:
            await self.hearing.registry.record(self.hearing.hearing_uuid, "system", action,
                                               **data)
        except Exception:
            log.exception("hearing %s: %s could not be audited", self.hearing.id, action)

    async def _report_quality(self) -> None:
        qualities = await self.hearing.media.quality()
        if qualities:
            self.hearing.tell_court({"type": "quality", "participants": qualities})

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

"""The live-state bus: seats of each hearing and fan-out of messages to its participants.

Handlers only talk to `LiveBus`. `InProcessBus` serves one process; a Redis implementation
(several processes) provides the same operations.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Seat:
    """A participant's place in a live hearing; kept while they are away, for a rejoin."""

    participant_id: str
    name: str
    role: str
    location: str
    present: bool = False
    admitted: bool = False
    muted_by_court: bool = False
    muted_self: bool = False
    camera_off: bool = False
    hand_raised: bool = False
    screen_sharing: bool = False
    # None, or a private consultation asked for or under way:
    # {"state": "requested" | "active", "with": participant id, "id": consultation id | None,
    #  "since": ISO time}
    consultation: dict[str, Any] | None = None
    connection: str = "new"

    @property
    def muted(self) -> bool:
        return self.muted_by_court or self.muted_self

    @property
    def consulting(self) -> str | None:
        """The id of the private consultation this participant is in, if any."""
        c = self.consultation
        return str(c["id"]) if c is not None and c.get("state") == "active" else None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["muted"] = self.muted
        return data


class LiveBus(abc.ABC):
    """Shared live state of hearings and the channel their participants listen on."""

    @abc.abstractmethod
    async def publish(self, hearing_id: str, message: dict[str, Any]) -> None:
        """Deliver `message` to every listener of the hearing (in every process)."""

    @abc.abstractmethod
    def listen(self, hearing_id: str, listener: Listener) -> Callable[[], None]:
        """Register a listener; returns the function that removes it."""

    @abc.abstractmethod
    async def seat(self, hearing_id: str, participant_id: str) -> Seat | None: ...

    @abc.abstractmethod
    async def seats(self, hearing_id: str) -> list[Seat]:
        """All seats of the hearing, in the order participants first arrived."""

    @abc.abstractmethod
    async def put_seat(self, hearing_id: str, seat: Seat) -> None: ...

    async def update_seat(self, hearing_id: str, participant_id: str, **changes: Any) -> Seat:
        seat = await self.seat(hearing_id, participant_id)
        if seat is None:
            raise KeyError(participant_id)
        seat = replace(seat, **changes)
        await self.put_seat(hearing_id, seat)
        return seat

    @abc.abstractmethod
    async def forget(self, hearing_id: str) -> None:
        """Drop the hearing's live state (it closed)."""

    async def aclose(self) -> None:
        return None


class InProcessBus(LiveBus):
    """The embedded default: dictionaries and direct calls."""

    def __init__(self) -> None:
        self._seats: dict[str, dict[str, Seat]] = {}
        self._listeners: dict[str, list[Listener]] = {}

    async def publish(self, hearing_id: str, message: dict[str, Any]) -> None:
        for listener in tuple(self._listeners.get(hearing_id, ())):
            try:
                listener(message)
            except Exception:
                log.exception("listener of hearing %s failed", hearing_id)

    def listen(self, hearing_id: str, listener: Listener) -> Callable[[], None]:
        self._listeners.setdefault(hearing_id, []).append(listener)

        def remove() -> None:
            listeners = self._listeners.get(hearing_id, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._listeners.pop(hearing_id, None)

        return remove

    async def seat(self, hearing_id: str, participant_id: str) -> Seat | None:
        return self._seats.get(hearing_id, {}).get(participant_id)

    async def seats(self, hearing_id: str) -> list[Seat]:
        return list(self._seats.get(hearing_id, {}).values())

    async def put_seat(self, hearing_id: str, seat: Seat) -> None:
        self._seats.setdefault(hearing_id, {})[seat.participant_id] = seat

    async def forget(self, hearing_id: str) -> None:
        self._seats.pop(hearing_id, None)

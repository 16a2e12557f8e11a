"""The live-state bus: seats of each hearing and fan-out of messages to its participants.

Handlers only talk to `LiveBus`. `InProcessBus` serves one process; `RedisBus` several
processes sharing one Redis (see `signaling.cluster`).
"""

from __future__ import annotations

import abc
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from redis.exceptions import RedisError

from signaling.cluster import Cluster, seats_key
from signaling.listeners import HearingListeners, Listener

log = logging.getLogger(__name__)



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

    async def hold(self, hearing_id: str) -> None:
        """This process took up the hearing: it alone writes its seats from now on."""
        return None

    async def release(self, hearing_id: str) -> None:
        """This process let the hearing go (the seats stay for whoever takes it up)."""
        return None

    async def aclose(self) -> None:
        return None


class InProcessBus(LiveBus):
    """The embedded default: dictionaries and direct calls."""

    def __init__(self) -> None:
        self._seats: dict[str, dict[str, Seat]] = {}
        self._listeners = HearingListeners()

    async def publish(self, hearing_id: str, message: dict[str, Any]) -> None:
        self._listeners.deliver(hearing_id, message)

    def listen(self, hearing_id: str, listener: Listener) -> Callable[[], None]:
        return self._listeners.add(hearing_id, listener)

    async def seat(self, hearing_id: str, participant_id: str) -> Seat | None:
        return self._seats.get(hearing_id, {}).get(participant_id)

    async def seats(self, hearing_id: str) -> list[Seat]:
        return list(self._seats.get(hearing_id, {}).values())

    async def put_seat(self, hearing_id: str, seat: Seat) -> None:
        self._seats.setdefault(hearing_id, {})[seat.participant_id] = seat

    async def forget(self, hearing_id: str) -> None:
        self._seats.pop(hearing_id, None)


class RedisBus(LiveBus):
    """Live state in Redis, for several processes.

    A hearing's seats are written only by the process holding the hearing, which keeps them in
    memory too: reads there cost nothing, and the seats are written back should Redis restart
    empty. Other processes (the API listing who is present) read Redis. Events reach this
    process's listeners at once and other processes' through the hearing's channel.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._seats: dict[str, dict[str, Seat]] = {}
        cluster.on_reconnected = self.restore

    async def publish(self, hearing_id: str, message: dict[str, Any]) -> None:
        self.cluster.listeners.deliver(hearing_id, message)
        try:
            await self.cluster.publish_hearing(hearing_id, message)
        except (RedisError, OSError) as e:
            log.warning("hearing %s: event not shared with other processes (%s)", hearing_id, e)

    def listen(self, hearing_id: str, listener: Listener) -> Callable[[], None]:
        return self.cluster.listeners.add(hearing_id, listener)

    async def _load(self, hearing_id: str) -> dict[str, Seat]:
        raw = await self.cluster.redis.hgetall(seats_key(hearing_id))
        rows = sorted((json.loads(v) for v in raw.values()), key=lambda r: r["order"])
        return {r["participant_id"]: Seat(**{k: v for k, v in r.items() if k != "order"})
                for r in rows}

    async def seat(self, hearing_id: str, participant_id: str) -> Seat | None:
        held = self._seats.get(hearing_id)
        if held is not None:
            return held.get(participant_id)
        return (await self._load(hearing_id)).get(participant_id)

    async def seats(self, hearing_id: str) -> list[Seat]:
        held = self._seats.get(hearing_id)
        if held is not None:
            return list(held.values())
        return list((await self._load(hearing_id)).values())

    async def hold(self, hearing_id: str) -> None:
        self._seats[hearing_id] = await self._load(hearing_id)

    async def release(self, hearing_id: str) -> None:
        self._seats.pop(hearing_id, None)

    async def put_seat(self, hearing_id: str, seat: Seat) -> None:
        held = self._seats.get(hearing_id)
        if held is None:
            held = self._seats[hearing_id] = await self._load(hearing_id)
        held[seat.participant_id] = seat
        await self._write(hearing_id, [seat])

    async def _write(self, hearing_id: str, seats: list[Seat]) -> None:
        order = {pid: n for n, pid in enumerate(self._seats.get(hearing_id, {}))}
        fields: dict[Any, Any] = {
            s.participant_id: json.dumps({**asdict(s), "order": order[s.participant_id]},
                                         ensure_ascii=False)
            for s in seats
        }
        try:
            await self.cluster.redis.hset(seats_key(hearing_id), mapping=fields)
        except (RedisError, OSError) as e:
            # Kept in memory and written back when Redis returns (`restore`).
            log.warning("hearing %s: seats not saved to Redis (%s)", hearing_id, e)

    async def restore(self) -> None:
        """Redis came back (perhaps empty): write back the seats of the hearings held here."""
        for hearing_id, seats in list(self._seats.items()):
            await self._write(hearing_id, list(seats.values()))

    async def forget(self, hearing_id: str) -> None:
        self._seats.pop(hearing_id, None)
        try:
            await self.cluster.redis.delete(seats_key(hearing_id))
        except (RedisError, OSError) as e:
            log.warning("hearing %s: seats not removed from Redis (%s)", hearing_id, e)

"""The live-state bus: what crosses processes about a hearing.

It carries state changes made outside the holding process (the REST API in another worker),
and persists each hearing's seats for other processes' read-only views and for whoever takes
the hearing up next (after everyone left, a restart or a failover). The process holding a
hearing owns its seats in memory (`LiveHearing.seats`) and writes them through here; nothing
reads them back while it holds the hearing.

`InProcessBus` serves one process; `RedisBus` several processes sharing one Redis (see
`signaling.cluster`).
"""

from __future__ import annotations

import abc
import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from signaling.cluster import Cluster, seats_key
from signaling.listeners import HearingListeners, Listener
from signaling.seats import Seat

log = logging.getLogger(__name__)


class LiveBus(abc.ABC):
    """Hearing events across processes and the stored seats of each hearing."""

    @abc.abstractmethod
    async def publish(self, hearing_id: str, event: dict[str, Any]) -> None:
        """Deliver `event` to every listener of the hearing (in every process)."""

    @abc.abstractmethod
    def listen(self, hearing_id: str, listener: Listener) -> Callable[[], None]:
        """Register a listener; returns the function that removes it."""

    @abc.abstractmethod
    async def load_seats(self, hearing_id: str) -> list[Seat]:
        """The hearing's stored seats, in the order participants first arrived."""

    @abc.abstractmethod
    async def store_seats(self, hearing_id: str, seats: Sequence[Seat],
                          order: dict[str, int]) -> bool:
        """Store changed `seats`; `order` gives each participant's place in arrival order.
        False when they were not stored (the caller writes them again)."""

    @abc.abstractmethod
    async def forget(self, hearing_id: str) -> None:
        """Drop the hearing's stored seats (it closed)."""

    async def aclose(self) -> None:
        return None


class InProcessBus(LiveBus):
    """The embedded default: direct calls, and each hearing's seats in a JSON file under
    `directory`, so that a restarted server carries on with them (who was admitted, who is
    muted, which consultation is under way)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._seats: dict[str, dict[str, Seat]] = {}
        self._listeners = HearingListeners()

    async def publish(self, hearing_id: str, event: dict[str, Any]) -> None:
        self._listeners.deliver(hearing_id, event)

    def listen(self, hearing_id: str, listener: Listener) -> Callable[[], None]:
        return self._listeners.add(hearing_id, listener)

    def _path(self, hearing_id: str) -> Path | None:
        if self._directory is None:
            return None
        return self._directory / f"{uuid.UUID(hearing_id)}.json"  # a UUID: no path tricks

    async def load_seats(self, hearing_id: str) -> list[Seat]:
        seats = self._seats.get(hearing_id)
        if seats is None:
            path = self._path(hearing_id)
            seats = {}
            if path is not None and path.exists():
                seats = {r["participant_id"]: Seat.stored(r)
                         for r in json.loads(path.read_text())}
            self._seats[hearing_id] = seats
        return list(seats.values())

    async def store_seats(self, hearing_id: str, seats: Sequence[Seat],
                          order: dict[str, int]) -> bool:
        stored = {s.participant_id: s for s in await self.load_seats(hearing_id)}
        stored.update((s.participant_id, s) for s in seats)
        ordered = self._seats[hearing_id] = dict(
            sorted(stored.items(), key=lambda kv: order.get(kv[0], len(order))))
        path = self._path(hearing_id)
        if path is not None:
            # Small and rare (a seat change): written in place of the old file, atomically.
            # A full disk must not stop the hearing (the roster would no longer follow the
            # media): the seats are kept here, and the next write stores them all.
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                scratch = path.with_suffix(".tmp")
                scratch.write_text(json.dumps([asdict(s) for s in ordered.values()],
                                              ensure_ascii=False))
                os.replace(scratch, path)
            except OSError as e:
                log.warning("hearing %s: seats not saved to %s (%s)", hearing_id, path, e)
        return True

    async def forget(self, hearing_id: str) -> None:
        self._seats.pop(hearing_id, None)
        path = self._path(hearing_id)
        if path is not None:
            path.unlink(missing_ok=True)


class RedisBus(LiveBus):
    """Live state in Redis, for several processes. Events reach this process's listeners at
    once and other processes' through the hearing's channel. Should Redis restart empty, the
    hub writes back the seats of the hearings it holds (`Cluster.on_reconnected`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def publish(self, hearing_id: str, event: dict[str, Any]) -> None:
        self.cluster.listeners.deliver(hearing_id, event)
        try:
            await self.cluster.publish_hearing(hearing_id, event)
        except (RedisError, OSError) as e:
            log.warning("hearing %s: event not shared with other processes (%s)", hearing_id, e)

    def listen(self, hearing_id: str, listener: Listener) -> Callable[[], None]:
        return self.cluster.listeners.add(hearing_id, listener)

    async def load_seats(self, hearing_id: str) -> list[Seat]:
        raw = await self.cluster.redis.hgetall(seats_key(hearing_id))
        rows = sorted((json.loads(v) for v in raw.values()), key=lambda r: r["order"])
        return [Seat.stored(r) for r in rows]

    async def store_seats(self, hearing_id: str, seats: Sequence[Seat],
                          order: dict[str, int]) -> bool:
        if not seats:
            return True
        fields: dict[Any, Any] = {
            s.participant_id: json.dumps({**asdict(s), "order": order[s.participant_id]},
                                         ensure_ascii=False)
            for s in seats
        }
        try:
            held = await self.cluster.store_held(hearing_id, fields)
        except (RedisError, OSError) as e:
            # Kept by the holder, which writes them again.
            log.warning("hearing %s: seats not saved to Redis (%s)", hearing_id, e)
            return False
        if not held:
            # Another process took the hearing over (this one learns it at its next lease
            # renewal and lets it go): its seats are that process's to write.
            log.warning("hearing %s: seats not saved, another process holds it", hearing_id)
        return True

    async def forget(self, hearing_id: str) -> None:
        try:
            await self.cluster.redis.delete(seats_key(hearing_id))
        except (RedisError, OSError) as e:
            log.warning("hearing %s: seats not removed from Redis (%s)", hearing_id, e)

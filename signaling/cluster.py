"""Several Tingshen processes sharing one Redis: who is alive, which process holds each
hearing's media, and the pipes that carry a participant's signaling to that process.

Every process serves the API and accepts WebSockets. A hearing's media (peers, recording,
transcription) lives in exactly one process, its holder, recorded in Redis as a lease that the
holder renews. A participant whose WebSocket reaches another process is relayed: that process
(the front) passes frames both ways over Redis pub/sub; the holder runs the participant's session
as if the socket were its own. When a holder dies, its lease lapses, the fronts close their
relayed sockets with `CLOSE_HOLDER_LOST`, the clients reconnect, and the first process to see the
hearing again takes its lease and resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from socket import gethostname
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from signaling.errors import SignalingError
from signaling.listeners import HearingListeners
from signaling.tasks import TaskSet

log = logging.getLogger(__name__)

PREFIX = "tingshen"
HEARTBEAT_S = 1.0
PROCESS_TTL_MS = 4000
LEASE_TTL_MS = 5000
RELAY_INBOX = 256
# A relayed socket closed because the process holding the hearing stopped or lost it: the
# client reconnects (any code but 4000-4002 makes the page reconnect).
CLOSE_HOLDER_LOST = 4503
CLOSE_CLUSTER_UNAVAILABLE = 1013

# Take a hearing's lease if free, ours, or held by a process that stopped heartbeating.
# KEYS[1] lease; ARGV: me, ttl ms, process key prefix. Returns the holder after the call.
_CLAIM = """
local cur = redis.call('get', KEYS[1])
if (not cur) or cur == ARGV[1] or redis.call('exists', ARGV[3] .. cur) == 0 then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return cur
"""
# Renew our leases; a lease lost to another process is reported (0), a lapsed one retaken.
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('get', key)
  if (not cur) or cur == ARGV[1] then
    redis.call('set', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
# Write a hearing's seats only while we hold its lease: a process whose loop stalled past its
# process key's expiry may have been taken over without knowing it yet, and its late writes
# must not overwrite the new holder's seats. KEYS: seats, lease; ARGV: me, field, value, ...
_STORE_HELD = """
if redis.call('get', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[1], unpack(ARGV, 2))
return 1
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class ClusterUnavailable(SignalingError):
    def __init__(self, detail: str) -> None:
        super().__init__("cluster_unavailable",
                         f"the hearing's live state cannot be reached now ({detail}); retry")


def hearing_channel(hearing_id: str) -> str:
    return f"{PREFIX}:hearing:{hearing_id}"


def seats_key(hearing_id: str) -> str:
    return f"{PREFIX}:seats:{hearing_id}"


def _lease_key(hearing_id: str) -> str:
    return f"{PREFIX}:lease:{hearing_id}"


def _process_key(process_id: str) -> str:
    return f"{PREFIX}:process:{process_id}"


def _process_channel(process_id: str) -> str:
    return f"{PREFIX}:to:{process_id}"


class RelayedSocket:
    """The holder's end of a relayed participant: a socket whose frames travel over Redis."""

    def __init__(self, cluster: Cluster, sid: str, front: str) -> None:
        self.cluster, self.sid, self.front = cluster, sid, front
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue(RELAY_INBOX)
        self.closed = False

    def deliver(self, text: str | None) -> None:
        try:
            self._inbox.put_nowait(text)
        except asyncio.QueueFull:
            # The front rate-limits, so this is a stuck session: end it.
            log.warning("relayed session %s is not keeping up; ending it", self.sid)
            self.closed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self._inbox.get_nowait()
            self._inbox.put_nowait(None)

    def end(self) -> None:
        """The front went away: the session reads the end of its socket."""
        self.closed = True
        self.deliver(None)

    async def receive(self, wait_s: float | None = None) -> str | bytes | None:
        if self.closed and self._inbox.empty():
            return None
        return await asyncio.wait_for(self._inbox.get(), wait_s)

    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        try:
            heard = await self.cluster.send(self.front,
                                            {"t": "out", "sid": self.sid, "text": text})
        except (RedisError, OSError) as e:
            raise ConnectionResetError(f"relay to {self.front} lost: {e}") from e
        if not heard:
            raise ConnectionResetError(f"relay front {self.front} is not listening")

    @property
    def close_code(self) -> int | None:
        return None  # the front knows; over the relay a lost front reads as a lost network

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        await self.cluster.send(self.front,
                                {"t": "close", "sid": self.sid, "code": code, "reason": reason})
        self.deliver(None)


class RelayLink:
    """The front's end of a relayed participant: what the holder sends, and the close."""

    def __init__(self, cluster: Cluster, sid: str, holder: str) -> None:
        self.cluster, self.sid, self.holder = cluster, sid, holder
        self.outbound: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue(RELAY_INBOX)

    def deliver(self, item: str | tuple[int, str]) -> None:
        try:
            self.outbound.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("relayed client %s is not reading; closing", self.sid)
            with contextlib.suppress(asyncio.QueueEmpty):
                self.outbound.get_nowait()
            self.outbound.put_nowait((1008, "not reading messages"))

    async def send(self, text: str) -> None:
        try:
            heard = await self.cluster.send(self.holder,
                                            {"t": "in", "sid": self.sid, "text": text})
        except (RedisError, OSError) as e:
            raise ConnectionResetError(f"relay to {self.holder} lost: {e}") from e
        if not heard:
            raise ConnectionResetError(f"the hearing's holder {self.holder} is not listening")


RelayOpened = Callable[[RelayedSocket], Awaitable[None]]


class Cluster:
    """This process's membership of the cluster."""

    def __init__(self, url: str, process_id: str | None = None) -> None:
        self.url = url
        self.id = process_id or uuid.uuid4().hex[:12]
        self.redis: aioredis.Redis = aioredis.from_url(
            url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0,
        )
        self._claim = self.redis.register_script(_CLAIM)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._store_held = self.redis.register_script(_STORE_HELD)
        self.held: set[str] = set()  # hearings whose lease this process holds
        self._sockets: dict[str, RelayedSocket] = {}
        self._links: dict[str, RelayLink] = {}
        self.listeners = HearingListeners()  # this process's, of every hearing
        self.on_relay: RelayOpened | None = None
        self.on_lease_lost: Callable[[str], None] = lambda hearing_id: None
        self.on_reconnected: Callable[[], Awaitable[None]] | None = None
        # The heartbeat, the subscription and the relayed sessions run here.
        self._tasks = TaskSet("cluster")
        self.connected = False
        self._subscribed = asyncio.Event()

    # -- life -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join: fails at once when Redis cannot be reached (the server must not start)."""
        await self.redis.ping()
        await self._beat()
        self.connected = True
        self._tasks.spawn(self._heartbeat(), name="cluster-heartbeat")
        self._tasks.spawn(self._listen(), name="cluster-listen")
        await asyncio.wait_for(self._subscribed.wait(), 10.0)

    async def aclose(self) -> None:
        await self._tasks.cancel()
        with contextlib.suppress(RedisError, OSError):
            for hearing_id in list(self.held):
                await self._release(keys=[_lease_key(hearing_id)], args=[self.id])
            await self.redis.delete(_process_key(self.id))
        await self.redis.aclose()

    async def store_held(self, hearing_id: str, fields: dict[str, str]) -> bool:
        """Write `fields` into the hearing's seats if this process holds its lease; False
        when another does (raises RedisError or OSError when Redis cannot be reached)."""
        args = [self.id]
        for field, value in fields.items():
            args += [field, value]
        stored = await self._store_held(keys=[seats_key(hearing_id), _lease_key(hearing_id)],
                                        args=args)
        return bool(stored)

    async def _beat(self) -> None:
        # The value says where the process runs, for operators (and the failover tests).
        await self.redis.set(_process_key(self.id), f"{os.getpid()}@{gethostname()}",
                             px=PROCESS_TTL_MS)

    async def _heartbeat(self) -> None:
        """Say we are alive, renew our leases, and end relays whose other end stopped."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._beat()
                if self.held:
                    held = sorted(self.held)
                    kept = await self._renew(keys=[_lease_key(h) for h in held],
                                             args=[self.id, LEASE_TTL_MS])
                    for hearing_id, ok in zip(held, kept, strict=True):
                        if not ok and hearing_id in self.held:
                            log.error("hearing %s was taken over by another process",
                                      hearing_id)
                            self.held.discard(hearing_id)
                            self.on_lease_lost(hearing_id)
                await self._end_orphaned_relays()
                if not self.connected:
                    self.connected = True
                    log.warning("Redis is back; live state restored")
                    if self.on_reconnected is not None:
                        await self.on_reconnected()
            except (RedisError, OSError) as e:
                if self.connected:
                    log.error("Redis unreachable (%s); hearings go on, new joins wait", e)
                self.connected = False

    async def _end_orphaned_relays(self) -> None:
        peers = {s.front for s in self._sockets.values()} | {
            link.holder for link in self._links.values()}
        peers.discard(self.id)
        if not peers:
            return
        ordered = sorted(peers)
        alive = await self.redis.mget([_process_key(p) for p in ordered])
        dead = {p for p, a in zip(ordered, alive, strict=True) if a is None}
        if dead:
            self._end_relays(CLOSE_HOLDER_LOST, "the hearing's media server stopped; reconnect",
                             dead)

    def _cut_relays(self, reason: str) -> None:
        """Relayed frames may have been lost (Redis went away): end every relay; the clients
        reconnect and rejoin with a clean state."""
        self._end_relays(CLOSE_CLUSTER_UNAVAILABLE, reason)

    def _end_relays(self, code: int, reason: str, peers: set[str] | None = None) -> None:
        """End the relays whose other end is one of `peers` (all when None)."""
        for sid, socket in list(self._sockets.items()):
            if peers is None or socket.front in peers:
                self._sockets.pop(sid, None)
                socket.end()
        for sid, link in list(self._links.items()):
            if peers is None or link.holder in peers:
                self._links.pop(sid, None)
                link.deliver((code, reason))

    # -- messages -------------------------------------------------------------------------

    async def _listen(self) -> None:
        """One subscription per process: its own channel and every hearing's channel."""
        backoff = 0.2
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(_process_channel(self.id))
                await pubsub.psubscribe(hearing_channel("*"))
                if self._subscribed.is_set():
                    self._cut_relays("the live-state connection was interrupted; reconnect")
                self._subscribed.set()
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except (RedisError, OSError) as e:
                log.warning("Redis subscription lost (%s); resubscribing", e)
                self._cut_relays("the live-state connection was interrupted; reconnect")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = str(message.get("channel", ""))
        try:
            if message.get("type") == "pmessage":
                hearing_id = channel.rsplit(":", 1)[-1]
                if hearing_id not in self.listeners:
                    return
                event = json.loads(message["data"])
                if event.get("from") == self.id:
                    return  # delivered locally when published
                self.listeners.deliver(hearing_id, event["event"])
            elif message.get("type") == "message":
                self._direct(json.loads(message["data"]))
        except Exception:
            log.exception("bad cluster message on %s", channel)

    def _direct(self, data: dict[str, Any]) -> None:
        kind, sid = data["t"], data["sid"]
        if kind == "open":
            socket = RelayedSocket(self, sid, data["front"])
            socket.deliver(data["text"])
            self._sockets[sid] = socket
            if self.on_relay is not None:
                self._tasks.spawn(self._run_relayed(socket), name=f"relayed-{sid[:8]}")
        elif kind == "in":
            relayed = self._sockets.get(sid)
            if relayed is not None:
                relayed.deliver(data["text"])
        elif kind == "gone":
            relayed = self._sockets.pop(sid, None)
            if relayed is not None:
                relayed.end()
        elif kind == "out":
            link = self._links.get(sid)
            if link is not None:
                link.deliver(data["text"])
        elif kind == "close":
            link = self._links.pop(sid, None)
            if link is not None:
                link.deliver((int(data["code"]), str(data["reason"])))

    async def _run_relayed(self, socket: RelayedSocket) -> None:
        assert self.on_relay is not None
        try:
            await self.on_relay(socket)
        except Exception:
            log.exception("relayed session %s failed", socket.sid)
        finally:
            self._sockets.pop(socket.sid, None)
            if not socket.closed:
                with contextlib.suppress(RedisError, OSError):
                    await socket.close(1011, "session ended")

    async def send(self, process_id: str, data: dict[str, Any]) -> int:
        """Publish to a process; returns how many subscriptions heard it (0: not listening)."""
        return int(await self.redis.publish(_process_channel(process_id),
                                            json.dumps(data, ensure_ascii=False)))

    # -- hearing channels (the Redis live-state bus) --------------------------------------

    async def publish_hearing(self, hearing_id: str, event: dict[str, Any]) -> None:
        await self.redis.publish(hearing_channel(hearing_id),
                                 json.dumps({"from": self.id, "event": event}, ensure_ascii=False))

    # -- leases ---------------------------------------------------------------------------

    async def claim(self, hearing_id: str) -> str:
        """The process that holds the hearing's media after this call: this one if the
        hearing was free or its holder is dead."""
        try:
            holder = str(await self._claim(keys=[_lease_key(hearing_id)],
                                           args=[self.id, LEASE_TTL_MS, f"{PREFIX}:process:"]))
        except (RedisError, OSError) as e:
            raise ClusterUnavailable(type(e).__name__) from e
        if holder == self.id:
            self.held.add(hearing_id)
        return holder

    async def holder(self, hearing_id: str) -> str | None:
        """The living process holding the hearing, if any."""
        current = await self.redis.get(_lease_key(hearing_id))
        if current is None or not await self.redis.exists(_process_key(str(current))):
            return None
        return str(current)

    async def release(self, hearing_id: str) -> None:
        self.held.discard(hearing_id)
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[_lease_key(hearing_id)], args=[self.id])

    # -- relays (front side) --------------------------------------------------------------

    async def open_relay(self, holder: str, join_text: str) -> RelayLink:
        sid = uuid.uuid4().hex
        link = RelayLink(self, sid, holder)
        self._links[sid] = link
        try:
            heard = await self.send(holder, {"t": "open", "sid": sid, "front": self.id,
                                             "text": join_text})
        except (RedisError, OSError) as e:
            self._links.pop(sid, None)
            raise ClusterUnavailable(type(e).__name__) from e
        if not heard:
            # The holder died (its lease not lapsed yet) or is resubscribing after a Redis
            # restart: the client retries shortly.
            self._links.pop(sid, None)
            raise ClusterUnavailable("the hearing's server is not listening")
        return link

    async def close_relay(self, link: RelayLink) -> None:
        if self._links.pop(link.sid, None) is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.send(link.holder, {"t": "gone", "sid": link.sid})

    @property
    def relayed_sessions(self) -> int:
        return len(self._sockets)

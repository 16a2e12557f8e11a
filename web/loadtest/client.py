"""One load client: a participant's signaling connection, which joins, keeps its seat and
counts what it sees into the run's `Tally`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from web.loadtest.peer import EncodedMedia, MediaPeer
from web.loadtest.plan import LoadPlan

log = logging.getLogger(__name__)

LEAVE_WAIT_S = 5.0


@dataclass(frozen=True)
class Invitation:
    """A participant the tool invited, with the join token the API showed once."""

    hearing_id: str
    participant_id: str
    role: str
    token: str


@dataclass
class Tally:
    """Counters every client of a run adds to (one event loop: no locking)."""

    join_s: list[float] = field(default_factory=list)
    first_connect: float | None = None
    last_welcome: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    disconnections: Counter[str] = field(default_factory=Counter)
    pings: int = 0
    pong_s: list[float] = field(default_factory=list)
    in_flight: int = 0  # pings not yet answered by held clients
    all_answered: asyncio.Event = field(default_factory=asyncio.Event)
    offers: int = 0
    # The server's `media_failed`, by reason; each answered with a `media_restart`.
    media_failures: Counter[str] = field(default_factory=Counter)
    frames: Counter[str] = field(default_factory=Counter)
    captions: int = 0
    lags_s: list[float] = field(default_factory=list)  # each report of the record's lag


class LoadClient:
    """One participant's signaling connection: join, then keep the seat until told to leave."""

    def __init__(
        self,
        invitation: Invitation,
        session: aiohttp.ClientSession,
        ws_url: str,
        plan: LoadPlan,
        tally: Tally,
        media: EncodedMedia | None,
        speaks: bool = True,
        on_settled: Callable[[], None] = lambda: None,
    ) -> None:
        self.invitation = invitation
        self._on_settled = on_settled
        self._session = session
        self._ws_url = ws_url
        self._plan = plan
        self._tally = tally
        self.peer = MediaPeer(media, speaks, tally.frames) if media is not None else None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.joined = False
        self.dropped = False
        self.settled = asyncio.Event()  # the join succeeded or failed
        self.slots: list[dict[str, Any]] = []  # what each received m-section carries
        self._leaving = False
        self.pinging = True
        self.pings: dict[str, float] = {}  # ref -> when sent, until the pong

    @property
    def held(self) -> bool:
        return self.joined and not self.dropped and self.ws is not None and not self.ws.closed

    def _settle(self) -> None:
        if not self.settled.is_set():
            self.settled.set()
            self._on_settled()

    async def run(self) -> None:
        try:
            if await self._join():
                await self._hold()
        except Exception as e:
            # Counted, not raised: one client's failure is a measurement, not the end of a run.
            log.debug("load client failed", exc_info=True)
            self._tally.errors[f"client_{type(e).__name__}"] += 1
            self.dropped = self.joined
        finally:
            self._settle()
            if self.peer is not None:
                await self.peer.aclose()
            if self.ws is not None and not self.ws.closed:
                await self.ws.close()

    async def _join(self) -> bool:
        """Connect and join; True once the server's `welcome` proves the seat."""
        tally = self._tally
        started = time.monotonic()
        if tally.first_connect is None:
            tally.first_connect = started
        try:
            async with asyncio.timeout(self._plan.join_timeout_s):
                try:
                    self.ws = await self._session.ws_connect(self._ws_url, autoping=True)
                except (aiohttp.ClientError, OSError) as e:
                    tally.errors[f"connect_{type(e).__name__}"] += 1
                    return False
                await self._send({"type": "join", "v": 1, "token": self.invitation.token})
                while True:
                    msg = await self.ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        tally.errors[f"closed_before_welcome_{self.ws.close_code}"] += 1
                        return False
                    data = json.loads(msg.data)
                    if data.get("type") == "welcome":
                        break
                    if data.get("type") == "error":
                        tally.errors[str(data.get("code"))] += 1
                        return False
        except TimeoutError:
            tally.errors["join_timeout"] += 1
            return False
        finally:
            self._settle()
        now = time.monotonic()
        tally.join_s.append(now - started)
        tally.last_welcome = now if tally.last_welcome is None else max(tally.last_welcome, now)
        self.joined = True
        return True

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def _hold(self) -> None:
        """Read everything the server sends (aiohttp answers its heartbeats as it reads)."""
        assert self.ws is not None
        ping_s = self._plan.ping_s
        # Spread the pings: clients that joined together must not ping together.
        next_ping = time.monotonic() + random.uniform(0.1, 1.0) * ping_s if ping_s else None
        while True:
            wait = None if next_ping is None else max(0.0, next_ping - time.monotonic())
            try:
                msg = await self.ws.receive(timeout=wait)
            except TimeoutError:
                if self.pinging:
                    await self._ping()
                assert next_ping is not None
                next_ping = time.monotonic() + ping_s
                continue
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self._on_message(json.loads(msg.data))
                continue
            if not self._leaving:
                self.dropped = True
                self._tally.disconnections[str(self.ws.close_code)] += 1
                self._forget_pings(len(self.pings))
            return

    def _forget_pings(self, count: int) -> None:
        tally = self._tally
        tally.in_flight -= count
        if tally.in_flight <= 0:
            tally.all_answered.set()

    async def _ping(self) -> None:
        ref = uuid.uuid4().hex[:12]
        self.pings[ref] = time.monotonic()
        self._tally.pings += 1
        self._tally.in_flight += 1
        self._tally.all_answered.clear()
        await self._send({"type": "ping", "ref": ref})

    async def _on_message(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "pong":
            sent = self.pings.pop(str(data.get("ref")), None)
            if sent is not None:
                self._tally.pong_s.append(time.monotonic() - sent)
                self._forget_pings(1)
        elif kind == "error":
            self._tally.errors[str(data.get("code"))] += 1
        elif kind == "slots":
            self.slots = list(data.get("slots") or [])
        elif kind == "offer":
            self.slots = list(data.get("slots") or [])
            if self.peer is None:
                self._tally.errors["unexpected_offer"] += 1
                return
            answer = await self.peer.answer(str(data["sdp"]))
            self._tally.offers += 1
            await self._send({"type": "answer", "sdp": answer})
        elif kind == "media_failed":
            # As the page does: a new peer connection, same seat (the server offers again).
            self._tally.media_failures[str(data.get("reason"))] += 1
            if self.peer is not None:
                await self.peer.aclose()
            await self._send({"type": "media_restart"})
        elif kind == "caption" and data.get("final"):
            self._tally.captions += 1
        elif kind == "transcription":
            lag = data.get("lag_seconds")
            if isinstance(lag, int | float):
                self._tally.lags_s.append(float(lag))

    async def leave(self, task: asyncio.Task[None]) -> None:
        """Say `leave` and let the server close the socket; close it ourselves if it does not."""
        self._leaving = True
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
                await self._send({"type": "leave"})
        done, _ = await asyncio.wait({task}, timeout=LEAVE_WAIT_S)
        if not done and self.ws is not None:
            await self.ws.close()

"""`tingshen loadtest`: many signaling clients (and aiortc media clients) against a server.

The tool schedules hearings through the REST API with the admin token, invites participants,
and connects one WebSocket per participant speaking protocol version 1 (docs/signaling.md):
`join`, then answer the server's WebSocket heartbeats, send an occasional `ping`, and keep
the seat. With media every participant is admitted and answers the server's offers with an
aiortc peer that sends looped speech (or a tone) and a small test card, counting the frames
it receives.

Bounded: at most `max_clients` clients, each join within `join_timeout_s`, held for
`duration_s`; at the end every client leaves, every task is cancelled and awaited, and the
hearings are cancelled (or closed, when they were put in session) so the server is left clean.

Signaling only, participants wait in the lobby (`auto_admit` off, no judge or clerk): an
admitted participant gets a server-side peer connection (UDP sockets, ICE gathering), which
is media, not signaling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import logging
import math
import os
import random
import resource
import sys
import time
import uuid
import wave
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import av
import numpy as np
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy

from web.errors import LoadTestError

log = logging.getLogger(__name__)
T = TypeVar("T")

API = "/api/v1"
# Signaling only: roles that wait in the lobby. The judge and clerk (and observers) are
# admitted at once, and an admitted participant gets a peer connection.
LOBBY_ROLES = ("defendant", "lawyer", "prosecutor", "party", "witness", "interpreter")
# With media: a hearing's first four are judge, clerk, defendant and lawyer.
COURT_ROLES = ("judge", "clerk", "defendant", "lawyer", "prosecutor", "party", "witness",
               "interpreter")
LOCATIONS = {"judge": "courtroom", "clerk": "courtroom", "prosecutor": "courtroom"}
HEARING_LENGTH = timedelta(hours=4)
# Scheduled a little in the past: the join window is open whatever the clocks' skew.
SCHEDULE_LEAD = timedelta(minutes=5)
REST_IN_FLIGHT = 8
LEAVES_IN_FLIGHT = 200
LEAVE_WAIT_S = 5.0
PONG_WAIT_S = 2.0  # for pings in flight when a run ends, before they count as unanswered
LIVE_PAGE = 200
AUDIO_FRAME_MS = 20
TONE_HZ = 440
TONE_RATE = 16_000
TONE_AMPLITUDE = 6_000
VIDEO_WIDTH, VIDEO_HEIGHT = 160, 120
VIDEO_FPS = 15
VIDEO_CLOCK_HZ = 90_000
# File descriptors beyond one per client: the process's own, the REST pool, logs.
SPARE_FDS = 256
# With media each client holds a few more: UDP sockets for ICE, the DTLS transport.
FDS_PER_MEDIA_CLIENT = 8


# -- the plan and the report -----------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """What to run: `hearings` hearings of `participants` participants each, against `url`."""

    url: str
    admin_token: str
    hearings: int
    participants: int
    media: bool = False
    speech: Path | None = None
    duration_s: float = 10.0
    ramp_per_s: float = 0.0  # 0: as fast as `concurrency` joins in flight allow
    concurrency: int = 50
    max_clients: int = 10_000
    in_session: bool = False
    language: str | None = None
    ping_s: float = 30.0  # 0: no protocol pings (the server's heartbeats still run)
    join_timeout_s: float = 30.0
    baseline_probes: int = 0
    # How many participants of each hearing speak (the rest send silence); None: everyone.
    # In court one person speaks at a time; everyone talking at once is the worst case.
    speakers: int | None = None

    @property
    def clients(self) -> int:
        return self.hearings * self.participants

    def check(self) -> None:
        """Refuse a plan that cannot run, naming the problem."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LoadTestError(f"--url must be http(s)://host:port, not {self.url!r}")
        if self.hearings < 1 or self.participants < 1:
            raise LoadTestError("--hearings and --participants must be at least 1")
        if self.clients > self.max_clients:
            raise LoadTestError(f"{self.hearings} hearings x {self.participants} participants "
                                f"= {self.clients} clients, over --max-clients {self.max_clients}")
        if self.duration_s < 0 or self.ramp_per_s < 0 or self.ping_s < 0:
            raise LoadTestError("--duration, --ramp and --ping must not be negative")
        if self.concurrency < 1 or self.join_timeout_s <= 0:
            raise LoadTestError("--concurrency and --join-timeout must be positive")
        if self.in_session and not self.media:
            raise LoadTestError("--in-session needs --media: the lobby is not in session")
        if self.speech is not None and not self.media:
            raise LoadTestError("--speech needs --media")
        if self.speakers is not None and not 0 <= self.speakers <= self.participants:
            raise LoadTestError("--speakers must be between 0 and --participants")


@dataclass(frozen=True)
class Spread:
    """A distribution of times in milliseconds (nearest-rank percentiles)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Spread:
        if not seconds:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        ordered = sorted(seconds)

        def rank(q: float) -> float:
            index = min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1
            return round(ordered[index] * 1000, 2)

        return cls(len(ordered), rank(0.50), rank(0.95), rank(0.99),
                   round(ordered[-1] * 1000, 2))


@dataclass
class LoadReport:
    """What a run measured; `held` is checked against the server's own count, `server_present`."""

    url: str
    hearings: int
    clients: int
    media: bool
    joined: int = 0
    join: Spread = field(default_factory=lambda: Spread.of([]))
    join_seconds: float = 0.0
    joins_per_s: float = 0.0
    baseline: Spread = field(default_factory=lambda: Spread.of([]))
    held: int = 0
    held_seconds: float = 0.0
    server_present: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    disconnections: dict[str, int] = field(default_factory=dict)
    pings: int = 0
    pongs: int = 0
    pong: Spread = field(default_factory=lambda: Spread.of([]))
    offers_answered: int = 0
    peers_connected: int = 0
    frames_received: dict[str, int] = field(default_factory=dict)
    # While held: frames a second on each received slot that carries someone (sent: audio
    # 1000 / AUDIO_FRAME_MS, video VIDEO_FPS); below that, media was lost or late.
    frame_rates: dict[str, float] = field(default_factory=dict)
    client_cpu_percent: float = 0.0  # this process while held, of one core
    captions_received: int = 0  # final trial-record lines, summed over the clients
    max_recognizer_lag_s: float = 0.0  # from the judges' `transcription` messages
    hearings_cleaned: int = 0
    cleanup_errors: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        def spread(s: Spread) -> str:
            return (f"p50 {s.p50:.1f} ms, p95 {s.p95:.1f} ms, p99 {s.p99:.1f} ms, "
                    f"max {s.max:.1f} ms (n={s.count})")

        def counts(c: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        lines = [
            f"tingshen loadtest against {self.url}",
            f"  hearings {self.hearings}, clients {self.clients}"
            f" ({'media' if self.media else 'signaling only, in the lobby'})",
            f"  joined {self.joined}/{self.clients} in {self.join_seconds:.1f} s: "
            f"{self.joins_per_s:.1f} joins/s",
            f"  join time (connect -> welcome): {spread(self.join)}",
        ]
        if self.baseline.count:
            lines.append(f"  baseline (connect -> pong, no join): {spread(self.baseline)}")
        present = "?" if self.server_present is None else str(self.server_present)
        lines += [
            f"  held {self.held} for {self.held_seconds:.1f} s; the server counts {present}"
            " present",
            f"  pings {self.pings}, pongs {self.pongs}: {spread(self.pong)}",
            f"  errors: {counts(self.errors)}",
            f"  disconnections: {counts(self.disconnections)}",
        ]
        if self.media:
            lines.append(f"  media: {self.offers_answered} offers answered, "
                         f"{self.peers_connected} peers connected, frames received "
                         f"{counts(self.frames_received)}")
            rates = ", ".join(f"{k} {v:.1f}/s" for k, v in sorted(self.frame_rates.items()))
            lines.append(f"  frames per received track while held: {rates or 'none'} (sent: "
                         f"audio {1000 // AUDIO_FRAME_MS}/s, video {VIDEO_FPS}/s)")
            lines.append(f"  trial record: {self.captions_received} final captions received, "
                         f"recognizer lag up to {self.max_recognizer_lag_s:.1f} s")
        lines.append(f"  load client CPU while held: {self.client_cpu_percent:.0f}% of a core")
        lines.append(f"  cleanup: {self.hearings_cleaned}/{self.hearings} hearings finished; "
                     f"errors {counts(self.cleanup_errors)}")
        return "\n".join(lines)


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
    frames: Counter[str] = field(default_factory=Counter)
    captions: int = 0
    lag_s: float = 0.0


# -- media -----------------------------------------------------------------------------------


def load_speech(path: Path) -> tuple[np.ndarray, int]:
    """16-bit mono PCM samples of a WAV file and their rate."""
    try:
        with wave.open(str(path)) as f:
            if f.getsampwidth() != 2 or f.getnchannels() != 1:
                raise LoadTestError(f"--speech {path}: needs 16-bit mono WAV")
            rate = f.getframerate()
            samples = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
    except (OSError, EOFError, wave.Error) as e:
        raise LoadTestError(f"--speech {path}: cannot read it as WAV: {e}") from e
    if samples.size < rate * AUDIO_FRAME_MS // 1000:
        raise LoadTestError(f"--speech {path}: shorter than one {AUDIO_FRAME_MS} ms frame")
    return samples, rate


def tone() -> tuple[np.ndarray, int]:
    """One second of a sine at `TONE_HZ`: a whole number of cycles, so it loops seamlessly."""
    t = np.arange(TONE_RATE) / TONE_RATE
    return (np.sin(2 * np.pi * TONE_HZ * t) * TONE_AMPLITUDE).astype(np.int16), TONE_RATE


class LoopedAudio(AudioStreamTrack):
    """Samples looped in real time, a 20 ms frame at a time, from `offset`."""

    def __init__(self, samples: np.ndarray, rate: int, offset: int = 0) -> None:
        super().__init__()
        self.samples, self.rate = samples, rate
        self._position = offset % samples.size
        self._pts = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        count = self.rate * AUDIO_FRAME_MS // 1000
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._t0 + self._pts / self.rate - time.monotonic()))
        chunk = np.take(self.samples, np.arange(self._position, self._position + count),
                        mode="wrap")
        self._position = (self._position + count) % self.samples.size
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += count
        return frame


class TestCard(VideoStreamTrack):
    """A small moving test card: cheap to encode, yet real VP8 for the server to forward."""

    def __init__(self) -> None:
        super().__init__()
        self._index = 0
        self._t0: float | None = None
        x = np.arange(VIDEO_WIDTH, dtype=np.uint16)
        self._luma = np.tile((x * 255 // VIDEO_WIDTH).astype(np.uint8), (VIDEO_HEIGHT, 1))

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._t0 + self._index / VIDEO_FPS - time.monotonic()))
        image = np.full((VIDEO_HEIGHT * 3 // 2, VIDEO_WIDTH), 128, dtype=np.uint8)
        image[:VIDEO_HEIGHT] = self._luma
        bar = (self._index * 4) % VIDEO_WIDTH
        image[:VIDEO_HEIGHT, bar:bar + 8] = 235  # a moving bar: every frame differs
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = self._index * VIDEO_CLOCK_HZ // VIDEO_FPS
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
        self._index += 1
        return frame


class MediaPeer:
    """A participant's aiortc peer: answers the server's offers, publishes, counts frames."""

    def __init__(self, audio: tuple[np.ndarray, int], frames: Counter[str]) -> None:
        self._audio = audio
        self._frames = frames
        self.pc: RTCPeerConnection | None = None
        self._pulls: set[asyncio.Task[None]] = set()

    async def answer(self, sdp: str) -> str:
        """The answer to the server's offer; a new connection when the last one failed."""
        if self.pc is None or self.pc.connectionState in ("closed", "failed"):
            await self._new_pc()
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def _new_pc(self) -> None:
        await self.aclose()
        pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        samples, rate = self._audio
        # Speakers start at different points of the recording, as people do.
        pc.addTrack(LoopedAudio(samples, rate, random.randrange(samples.size)))
        pc.addTrack(TestCard())

        @pc.on("track")
        def on_track(track: Any) -> None:
            task = asyncio.create_task(self._pull(track))
            self._pulls.add(task)
            task.add_done_callback(self._pulls.discard)

        self.pc = pc

    async def _pull(self, track: Any) -> None:
        # Frames must be taken: aiortc queues received frames without bound otherwise.
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self._frames[track.kind] += 1

    @property
    def connected(self) -> bool:
        return self.pc is not None and self.pc.connectionState == "connected"

    async def aclose(self) -> None:
        if self.pc is not None:
            for sender in self.pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
            await self.pc.close()
            self.pc = None
        for task in list(self._pulls):
            task.cancel()
        for task in list(self._pulls):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# -- one client ------------------------------------------------------------------------------


class LoadClient:
    """One participant's signaling connection: join, then keep the seat until told to leave."""

    def __init__(
        self,
        invitation: Invitation,
        session: aiohttp.ClientSession,
        ws_url: str,
        plan: LoadPlan,
        tally: Tally,
        audio: tuple[np.ndarray, int] | None,
        on_settled: Callable[[], None] = lambda: None,
    ) -> None:
        self.invitation = invitation
        self._on_settled = on_settled
        self._session = session
        self._ws_url = ws_url
        self._plan = plan
        self._tally = tally
        self.peer = MediaPeer(audio, tally.frames) if audio is not None else None
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
        elif kind == "caption" and data.get("final"):
            self._tally.captions += 1
        elif kind == "transcription":
            lag = data.get("lag_seconds")
            if isinstance(lag, int | float):
                self._tally.lag_s = max(self._tally.lag_s, float(lag))

    async def leave(self, task: asyncio.Task[None]) -> None:
        """Say `leave` and let the server close the socket; close it ourselves if it does not."""
        self._leaving = True
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
                await self._send({"type": "leave"})
        done, _ = await asyncio.wait({task}, timeout=LEAVE_WAIT_S)
        if not done and self.ws is not None:
            await self.ws.close()


# -- a run -----------------------------------------------------------------------------------


class CourtApi:
    """The few REST calls the tool makes, with the admin token."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/") + API
        self._headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with self._session.request(method, self._base + path, json=body,
                                             headers=self._headers) as r:
                text = await r.text()
                if r.status >= 400:
                    try:
                        error = json.loads(text)["error"]
                        detail = f"{error['code']}: {error['message']}"
                    except (ValueError, KeyError, TypeError):
                        detail = text[:200]
                    raise LoadTestError(f"{method} {API}{path} -> {r.status} {detail}")
                return json.loads(text) if text else None
        except (aiohttp.ClientError, OSError) as e:
            raise LoadTestError(f"{method} {API}{path}: {type(e).__name__}: {e}") from e


def cpu_seconds() -> float:
    """This process's CPU time, all threads (aiortc encodes and decodes in threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_fd_limit(needed: int) -> int:
    """Raise this process's open-file limit toward `needed`; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


class LoadRun:
    """One run, in stages: `schedule()`, `join()`, `hold()`, `finish()`; leaving the context
    (`async with`) always makes every client leave and cleans the hearings up."""

    def __init__(self, plan: LoadPlan) -> None:
        plan.check()
        self.plan = plan
        self.tally = Tally()
        self.invitations: list[Invitation] = []
        self.hearing_ids: list[str] = []
        self.clients: list[LoadClient] = []
        self._tasks: dict[LoadClient, asyncio.Task[None]] = {}
        self._audio = None
        if plan.media:
            self._audio = load_speech(plan.speech) if plan.speech is not None else tone()
        self._report = LoadReport(plan.url, plan.hearings, plan.clients, plan.media)
        self._rest: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientSession | None = None
        self._cleaned = False
        self._held_frames: Counter[str] = Counter()
        self._held_cpu = 0.0
        parts = urlsplit(plan.url)
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        self.ws_url = f"{ws_scheme}://{parts.netloc}/ws"

    async def __aenter__(self) -> LoadRun:
        per_client = 1 + (FDS_PER_MEDIA_CLIENT if self.plan.media else 0)
        needed = self.plan.clients * per_client + self.plan.concurrency + SPARE_FDS
        limit = raise_fd_limit(needed)
        if limit < needed:
            raise LoadTestError(f"{self.plan.clients} clients need about {needed} open files; "
                                f"this process may open {limit} (ulimit -n)")
        self._rest = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=REST_IN_FLIGHT))
        self._ws = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self._cleanup()
        finally:
            for session in (self._ws, self._rest):
                if session is not None:
                    await session.close()

    @property
    def _api(self) -> CourtApi:
        assert self._rest is not None, "use LoadRun as `async with`"
        return CourtApi(self._rest, self.plan.url, self.plan.admin_token)

    @staticmethod
    async def _bounded(calls: Iterable[Awaitable[T]]) -> list[T]:
        """Await REST calls at most `REST_IN_FLIGHT` at a time; results in order."""
        gate = asyncio.Semaphore(REST_IN_FLIGHT)

        async def one(call: Awaitable[T]) -> T:
            async with gate:
                return await call

        return list(await asyncio.gather(*(one(c) for c in calls)))

    # -- stages ---------------------------------------------------------------------------

    async def schedule(self) -> list[Invitation]:
        """Schedule the hearings, open them (in session, with `in_session`), invite everyone."""
        plan, api = self.plan, self._api
        run = uuid.uuid4().hex[:8]
        now = datetime.now(UTC)
        # Admitted at once with media (peers for everyone); the lobby without.
        roles = COURT_ROLES if plan.media else LOBBY_ROLES

        async def hearing(n: int) -> str:
            body: dict[str, Any] = {
                "case_number": f"(load){run}-{n}", "title": f"Load test {run} hearing {n}",
                "kind": "trial", "auto_admit": plan.media,
                "scheduled_start": (now - SCHEDULE_LEAD).isoformat(),
                "scheduled_end": (now + HEARING_LENGTH).isoformat(),
            }
            if plan.language is not None:
                body["language"] = plan.language
            created = await api.call("POST", "/hearings", body)
            hearing_id = str(created["id"])
            self.hearing_ids.append(hearing_id)
            return hearing_id

        ids = await self._bounded(hearing(n) for n in range(plan.hearings))

        async def invite(hearing_id: str, n: int, k: int) -> Invitation:
            role = roles[k % len(roles)]
            # Judges are named per hearing: one judge in two hearings at once is a conflict.
            person = {"name": f"{role.capitalize()} {n}-{k}", "role": role,
                      "location": LOCATIONS.get(role, "remote")}
            made = await api.call("POST", f"/hearings/{hearing_id}/participants", person)
            return Invitation(hearing_id, str(made["id"]), role, str(made["token"]))

        self.invitations = await self._bounded(
            invite(h, n, k) for n, h in enumerate(ids) for k in range(plan.participants)
        )
        actions = ["open", "start"] if plan.in_session else ["open"]
        for action in actions:
            await self._bounded(api.call("POST", f"/hearings/{h}/{action}") for h in ids)
        return self.invitations

    async def baseline(self, probes: int) -> Spread:
        """Bare round trips to the same server: WebSocket connect, `ping`, `pong`, close, with
        as many in flight as joins; what a join costs beyond the connection itself."""
        assert self._ws is not None
        session, gate, times = self._ws, asyncio.Semaphore(self.plan.concurrency), []

        async def probe() -> None:
            async with gate:
                started = time.monotonic()
                try:
                    async with asyncio.timeout(self.plan.join_timeout_s), \
                            session.ws_connect(self.ws_url) as ws:
                        await ws.send_str(json.dumps({"type": "ping", "ref": "baseline"}))
                        msg = await ws.receive()
                        if msg.type == aiohttp.WSMsgType.TEXT and \
                                json.loads(msg.data).get("type") == "pong":
                            times.append(time.monotonic() - started)
                            return
                    self.tally.errors["baseline_no_pong"] += 1
                except (TimeoutError, aiohttp.ClientError, OSError) as e:
                    self.tally.errors[f"baseline_{type(e).__name__}"] += 1

        await asyncio.gather(*(probe() for _ in range(probes)))
        self._report.baseline = Spread.of(times)
        return self._report.baseline

    async def join(self) -> None:
        """Connect every invited participant, `concurrency` joins in flight, paced by `ramp`."""
        assert self._ws is not None
        plan = self.plan
        gate = asyncio.Semaphore(plan.concurrency)
        loop = asyncio.get_running_loop()
        started = loop.time()
        seated: Counter[str] = Counter()
        silence = None if self._audio is None else (
            np.zeros(self._audio[0].size, dtype=np.int16), self._audio[1])
        for i, invitation in enumerate(self.invitations):
            seated[invitation.hearing_id] += 1
            speaks = plan.speakers is None or seated[invitation.hearing_id] <= plan.speakers
            if plan.ramp_per_s:
                await asyncio.sleep(max(0.0, started + i / plan.ramp_per_s - loop.time()))
            await gate.acquire()
            client = LoadClient(invitation, self._ws, self.ws_url, plan, self.tally,
                                self._audio if speaks else silence, on_settled=gate.release)
            self.clients.append(client)
            self._tasks[client] = asyncio.create_task(client.run(), name=f"load-client-{i}")
        await asyncio.gather(*(c.settled.wait() for c in self.clients))
        tally, report = self.tally, self._report
        report.joined = len(tally.join_s)
        report.join = Spread.of(tally.join_s)
        if tally.first_connect is not None and tally.last_welcome is not None:
            report.join_seconds = round(tally.last_welcome - tally.first_connect, 3)
            if report.join_seconds > 0:
                report.joins_per_s = round(report.joined / report.join_seconds, 1)

    async def hold(self, seconds: float | None = None) -> None:
        """Keep every joined client for `seconds` (the plan's duration by default)."""
        seconds = self.plan.duration_s if seconds is None else seconds
        frames, cpu, started = Counter(self.tally.frames), cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        self._held_frames += self.tally.frames - frames
        self._held_cpu += cpu_seconds() - cpu
        self._report.held_seconds += round(time.monotonic() - started, 3)

    async def server_present(self) -> int:
        """Participants the server itself shows present in this run's hearings."""
        ours, present, offset = set(self.hearing_ids), 0, 0
        while True:
            page = await self._api.call("GET", f"/hearings/live?limit={LIVE_PAGE}&offset={offset}")
            for item in page["items"]:
                if item["hearing"]["id"] in ours:
                    present += int(item["present"]) + int(item["observers"])
            offset += LIVE_PAGE
            if offset >= int(page["total"]):
                return present

    async def finish(self) -> LoadReport:
        """Count what is held (by the clients and by the server), then clean everything up."""
        report, tally = self._report, self.tally
        for client in self.clients:
            client.pinging = False
        if tally.in_flight > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.all_answered.wait(), PONG_WAIT_S)
        report.held = sum(c.held for c in self.clients)
        try:
            report.server_present = await self.server_present()
        except LoadTestError as e:
            log.warning("could not ask the server who is present: %s", e)
        report.peers_connected = sum(c.peer is not None and c.peer.connected
                                     for c in self.clients)
        carried = Counter(str(s.get("kind")) for c in self.clients if c.held
                          for s in c.slots if s.get("participant_id"))
        if report.held_seconds > 0:
            report.frame_rates = {
                kind: round(self._held_frames[kind] / n / report.held_seconds, 1)
                for kind, n in carried.items()
            }
            report.client_cpu_percent = round(self._held_cpu / report.held_seconds * 100, 1)
        await self._cleanup()
        report.errors = dict(tally.errors)
        report.disconnections = dict(tally.disconnections)
        report.pings, report.pongs = tally.pings, len(tally.pong_s)
        report.pong = Spread.of(tally.pong_s)
        report.offers_answered = tally.offers
        report.frames_received = dict(tally.frames)
        report.captions_received = tally.captions
        report.max_recognizer_lag_s = round(tally.lag_s, 2)
        return report

    async def _cleanup(self) -> None:
        """Every client leaves (its tasks cancelled and awaited), then the hearings finish."""
        if self._cleaned:
            return
        self._cleaned = True
        gate = asyncio.Semaphore(LEAVES_IN_FLIGHT)

        async def leave(client: LoadClient, task: asyncio.Task[None]) -> None:
            async with gate:
                await client.leave(task)

        await asyncio.gather(*(leave(c, t) for c, t in self._tasks.items()),
                             return_exceptions=True)
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._rest is None or not self.hearing_ids:
            return
        action = "close" if self.plan.in_session else "cancel"
        errors: Counter[str] = Counter()

        async def finish(hearing_id: str) -> bool:
            try:
                await self._api.call("POST", f"/hearings/{hearing_id}/{action}")
                return True
            except LoadTestError as e:
                errors[str(e).split(" -> ", 1)[-1][:60]] += 1
                return False

        done = await self._bounded(finish(h) for h in self.hearing_ids)
        self._report.hearings_cleaned = sum(done)
        self._report.cleanup_errors = dict(errors)


async def run_load(plan: LoadPlan) -> LoadReport:
    """Schedule, join, hold for the plan's duration, report, clean up."""
    async with LoadRun(plan) as run:
        await run.schedule()
        if plan.baseline_probes:
            await run.baseline(plan.baseline_probes)
        await run.join()
        await run.hold()
        return await run.finish()


# -- the command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `tingshen loadtest` options."""
    parser.add_argument("--url", default="http://127.0.0.1:8080",
                        help="the server's base URL (default http://127.0.0.1:8080)")
    parser.add_argument("--token", default=os.environ.get("TINGSHEN_ADMIN_TOKEN"),
                        help="the admin (API) token (default: $TINGSHEN_ADMIN_TOKEN)")
    parser.add_argument("--hearings", type=int, required=True, metavar="N")
    parser.add_argument("--participants", type=int, required=True, metavar="K",
                        help="participants per hearing")
    parser.add_argument("--media", action="store_true",
                        help="admit everyone and run aiortc peers sending audio and video "
                             "(default: signaling only, everyone in the lobby)")
    parser.add_argument("--speech", type=Path, default=None,
                        help="16-bit mono WAV looped as every participant's audio "
                             "(default: a tone)")
    parser.add_argument("--in-session", action="store_true",
                        help="with --media: start the hearings, so the server records and "
                             "transcribes (closing them afterwards renders the composites)")
    parser.add_argument("--language", default=None,
                        help="the hearings' language (default: the server's)")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="seconds to hold the clients after the joins (default 10)")
    parser.add_argument("--ramp", type=float, default=0.0, metavar="JOINS_PER_S",
                        help="start joins at this rate (default 0: as fast as --concurrency "
                             "allows)")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="joins in flight at once (default 50)")
    parser.add_argument("--max-clients", type=int, default=10_000, metavar="M",
                        help="refuse plans of more clients (default 10000)")
    parser.add_argument("--ping", type=float, default=30.0, metavar="S",
                        help="each client pings this often (default 30; 0: never)")
    parser.add_argument("--join-timeout", type=float, default=30.0, metavar="S")
    parser.add_argument("--speakers", type=int, default=None, metavar="K",
                        help="with --media, only the first K participants of each hearing "
                             "speak; the others send silence (default: everyone speaks)")
    parser.add_argument("--baseline", type=int, default=0, metavar="N",
                        help="first time N bare connect+ping round trips (default 0)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the report as JSON")


def main(args: argparse.Namespace) -> int:
    """Run `tingshen loadtest`; 0 when every client joined and was held, 1 otherwise."""
    if not args.token:
        print("tingshen loadtest: --token (or TINGSHEN_ADMIN_TOKEN) is required",
              file=sys.stderr)
        return 2
    plan = LoadPlan(
        url=args.url, admin_token=args.token, hearings=args.hearings,
        participants=args.participants, media=args.media, speech=args.speech,
        duration_s=args.duration, ramp_per_s=args.ramp, concurrency=args.concurrency,
        max_clients=args.max_clients, in_session=args.in_session, language=args.language,
        ping_s=args.ping, join_timeout_s=args.join_timeout, baseline_probes=args.baseline,
        speakers=args.speakers,
    )
    try:
        report = asyncio.run(run_load(plan))
    except LoadTestError as e:
        print(f"tingshen loadtest: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # asyncio.run cancelled the run first: the clients left and the hearings were ended.
        print("tingshen loadtest: interrupted; the clients left and the hearings were ended",
              file=sys.stderr)
        return 130
    print(report.summary())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.held == report.clients else 1

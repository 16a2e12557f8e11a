"""A load run, in stages: schedule the hearings, join every client, hold them, report, and
always clean up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from web.errors import LoadTestError
from web.loadtest.client import Invitation, LoadClient, Tally
from web.loadtest.court_api import CourtApi
from web.loadtest.peer import EncodedMedia, load_speech, tone
from web.loadtest.plan import LoadPlan, LoadReport, Spread

log = logging.getLogger(__name__)
T = TypeVar("T")

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
PONG_WAIT_S = 2.0  # for pings in flight when a run ends, before they count as unanswered
LIVE_PAGE = 200
VIDEO_SAMPLE_S = 1.0
# File descriptors beyond one per client: the process's own, the REST pool, logs.
SPARE_FDS = 256
# With media each client holds a few more: UDP sockets for ICE, the DTLS transport.
FDS_PER_MEDIA_CLIENT = 8


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
            self._audio = load_speech(plan.speech, plan.speaking_share) \
                if plan.speech is not None else tone()
        self._media: EncodedMedia | None = None
        self._report = LoadReport(plan.url, plan.hearings, plan.clients, plan.media,
                                  video_fps=plan.video.fps if plan.media else 0)
        self._rest: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientSession | None = None
        self._cleaned = False
        self._held_frames: Counter[str] = Counter()
        self._held_cpu = 0.0
        self._video_samples: tuple[list[float], list[float]] = ([], [])
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
        if self._audio is not None:
            # Encoded once, off the event loop, before anyone joins.
            with ThreadPoolExecutor(1, thread_name_prefix="load-encode") as encoder:
                self._media = await asyncio.get_running_loop().run_in_executor(
                    encoder, EncodedMedia.encode, self._audio, self.plan.video)
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
        for i, invitation in enumerate(self.invitations):
            seated[invitation.hearing_id] += 1
            speaks = plan.speakers is None or seated[invitation.hearing_id] <= plan.speakers
            if plan.ramp_per_s:
                await asyncio.sleep(max(0.0, started + i / plan.ramp_per_s - loop.time()))
            await gate.acquire()
            client = LoadClient(invitation, self._ws, self.ws_url, plan, self.tally,
                                self._media, speaks, on_settled=gate.release)
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
        sampler = asyncio.create_task(self._sample_videos())
        try:
            await asyncio.sleep(seconds)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        held, reduced = self._video_samples
        if held:
            self._report.videos_held = round(sum(held) / len(held), 3)
            self._report.videos_reduced = round(sum(reduced) / len(reduced), 3)
        self._held_frames += self.tally.frames - frames
        self._held_cpu += cpu_seconds() - cpu
        self._report.held_seconds += round(time.monotonic() - started, 3)

    async def _sample_videos(self) -> None:
        """Each second, what share of the received videos is held back or reduced."""
        held, reduced = self._video_samples
        while True:
            await asyncio.sleep(VIDEO_SAMPLE_S)
            videos = [s for c in self.clients if c.held for s in c.slots
                      if s.get("kind") == "video" and s.get("participant_id")]
            if videos:
                held.append(sum(bool(s.get("held")) for s in videos) / len(videos))
                reduced.append(sum(bool(s.get("reduced")) for s in videos) / len(videos))

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
        report.media_failures = dict(tally.media_failures)
        report.frames_received = dict(tally.frames)
        report.captions_received = tally.captions
        report.max_recognizer_lag_s = round(max(tally.lags_s, default=0.0), 2)
        report.recognizer_lag = Spread.of(tally.lags_s)
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

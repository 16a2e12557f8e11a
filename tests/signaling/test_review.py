"""Review composites: their own bounded pool, a timeline capped by the hearing, a deadline,
cancelling, and what readiness learns. The render itself is replaced by a stand-in that holds
its thread as a long render does (the real render is tested in tests/media/test_composite.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import signaling.review as review
from courtrooms.recordings import FileOutcome, Recordings
from courtrooms.registry import Registry
from media.composite import CompositeResult
from media.errors import CompositeCancelled
from media.stamp import Stamp
from signaling.review import CompositeJobs
from tests.courtrooms.builders import add_judge, make_hearing

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ZONE = ZoneInfo("Asia/Shanghai")


class StandIn:
    """`render_composite` holding its thread until released or cancelled."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = 0
        self.most = 0
        self.timelines: list[float] = []
        self.stamps: list[Stamp] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, sources: Any, output: Path, *, timeline_end: float, recesses: Any,
                 stamp: Stamp, on_progress: Any, cancel: threading.Event) -> CompositeResult:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.timelines.append(timeline_end)
            self.stamps.append(stamp)
            self.threads.add(threading.current_thread().name)
        try:
            while not self.release.wait(0.01):
                if cancel.is_set():
                    raise CompositeCancelled("cancelled")
            output.write_bytes(b"mp4")
            return CompositeResult(output, timeline_end, (), 0.0)
        finally:
            with self._lock:
                self.running -= 1


async def recorded_hearing(registry: Registry, recordings: Recordings, seconds: float,
                           claimed: float) -> uuid.UUID:
    """A hearing recorded for `seconds` of wall-clock time whose one file claims `claimed`
    seconds (what a participant jumping its timestamps made before they were checked)."""
    recorded_hearing.count += 1  # type: ignore[attr-defined]
    start = 3 * recorded_hearing.count  # type: ignore[attr-defined]
    hearing = await make_hearing(registry, start, start + 2)
    judge = await add_judge(registry, hearing)
    now = time.time()
    _origin, index = await recordings.begin_segment(hearing.id, now - seconds)
    await recordings.end_segment(hearing.id, index, seconds)
    path = f"recordings/{hearing.id}/{judge.participant.id}-0.webm"
    (recordings.data_dir / path).parent.mkdir(parents=True, exist_ok=True)
    (recordings.data_dir / path).write_bytes(b"webm")
    await recordings.file_started(hearing.id, judge.participant.id, index, path, 0.0)
    await recordings.file_finished(path, FileOutcome(duration=claimed, codecs="vp8,opus"))
    return hearing.id


recorded_hearing.count = 0  # type: ignore[attr-defined]


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    fake = StandIn()
    monkeypatch.setattr(review, "render_composite", fake)
    return fake


async def wait_for(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_six_renders_leave_the_default_executor_free(registry: Registry, tmp_path: Path,
                                                           standin: StandIn) -> None:
    # The default executor of a 2-core machine: min(32, cores + 4) threads.
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(6))
    recordings = Recordings(registry.db, registry.clock, tmp_path)
    hearings = [await recorded_hearing(registry, recordings, 60, 60) for _ in range(6)]
    jobs = CompositeJobs(registry, recordings, zone=ZONE)
    for hearing_id in hearings:
        jobs.start(hearing_id)
    await wait_for(lambda: standin.running == review.RENDER_WORKERS)
    await asyncio.sleep(0.1)
    # Departures and rejoins use the default executor: it still answers at once.
    began = time.monotonic()
    await asyncio.wait_for(loop.run_in_executor(None, int), 1.0)
    assert time.monotonic() - began < 0.5
    assert standin.most == review.RENDER_WORKERS  # the cap holds
    assert all(name.startswith("composite") for name in standin.threads)
    assert jobs.running == review.RENDER_WORKERS and jobs.queued == 6 - review.RENDER_WORKERS
    assert all(jobs.status(h).state == "rendering" for h in hearings)
    # Cancelling a queued render and a running one.
    assert jobs.cancel(hearings[0]) and jobs.cancel(hearings[-1])
    assert not jobs.cancel(uuid.uuid4())
    await wait_for(lambda: jobs.status(hearings[-1]).state == "idle")
    await wait_for(lambda: jobs.status(hearings[0]).state == "idle")
    standin.release.set()
    await wait_for(lambda: all(jobs.status(h).state == "done" for h in hearings[1:-1]))
    assert standin.most == review.RENDER_WORKERS
    assert not jobs.stuck()
    await jobs.aclose()


async def test_the_composite_never_runs_past_the_hearings_wall_clock_time(
        registry: Registry, tmp_path: Path, standin: StandIn) -> None:
    recordings = Recordings(registry.db, registry.clock, tmp_path)
    hearing_id = await recorded_hearing(registry, recordings, 14, 12.4 * 3600)
    jobs = CompositeJobs(registry, recordings, zone=ZONE)
    standin.release.set()
    jobs.start(hearing_id)
    await wait_for(lambda: jobs.status(hearing_id).state == "done")
    assert standin.timelines == [pytest.approx(14 + review.TIMELINE_MARGIN_S, abs=0.01)]
    await jobs.aclose()


async def test_the_composite_carries_the_case_number_and_the_courts_clock(
        registry: Registry, tmp_path: Path, standin: StandIn) -> None:
    recordings = Recordings(registry.db, registry.clock, tmp_path)
    hearing_id = await recorded_hearing(registry, recordings, 10, 10)
    hearing = await registry.get_hearing(hearing_id)
    berlin = ZoneInfo("Europe/Berlin")  # `court_time_zone`, whatever it is set to
    jobs = CompositeJobs(registry, recordings, zone=berlin)
    standin.release.set()
    jobs.start(hearing_id)
    await wait_for(lambda: jobs.status(hearing_id).state == "done")
    assert hearing.timeline_origin is not None
    assert standin.stamps == [Stamp(hearing.case_number, hearing.timeline_origin, berlin)]
    await jobs.aclose()


async def test_a_render_past_its_deadline_is_cancelled_and_a_stuck_one_reported(
        registry: Registry, tmp_path: Path, standin: StandIn,
        monkeypatch: pytest.MonkeyPatch) -> None:
    recordings = Recordings(registry.db, registry.clock, tmp_path)
    hearing_id = await recorded_hearing(registry, recordings, 10, 10)
    monkeypatch.setattr(review, "DEADLINE_BASE_S", 0.2)
    monkeypatch.setattr(review, "DEADLINE_PER_SECOND", 0.0)
    jobs = CompositeJobs(registry, recordings, zone=ZONE)
    jobs.start(hearing_id)
    await wait_for(lambda: jobs.status(hearing_id).state == "failed")
    assert "too long" in (jobs.status(hearing_id).error or "")
    # A render that ignores its cancel (a hung ffmpeg) is reported stuck after the deadline.
    stubborn = threading.Event()

    def hung(_sources: Any, output: Path, **_kwargs: Any) -> CompositeResult:
        stubborn.wait(5)
        raise CompositeCancelled("at last")

    monkeypatch.setattr(review, "render_composite", hung)
    other = await recorded_hearing(registry, recordings, 10, 10)
    jobs.start(other)
    await wait_for(lambda: jobs.status(other).deadline is not None)
    assert not jobs.stuck()
    assert jobs.stuck(time.monotonic() + 0.3 + review.CLOSE_TIMEOUT_S)
    # Queued longer than allowed: stuck too.
    monkeypatch.setattr(review, "QUEUE_STUCK_S", 0.0)
    busy = CompositeJobs(registry, recordings, zone=ZONE, workers=1)
    busy.start(hearing_id)
    busy.start(other)
    await wait_for(lambda: busy.queued == 1)
    assert busy.stuck()
    stubborn.set()
    await jobs.aclose()
    await busy.aclose()


async def test_stopping_the_server_stops_six_renders_at_once(registry: Registry, tmp_path: Path,
                                                             standin: StandIn) -> None:
    """SIGTERM once hung behind six renders on the default executor."""
    recordings = Recordings(registry.db, registry.clock, tmp_path)
    hearings = [await recorded_hearing(registry, recordings, 60, 60) for _ in range(6)]
    jobs = CompositeJobs(registry, recordings, zone=ZONE)
    for hearing_id in hearings:
        jobs.start(hearing_id)
    await wait_for(lambda: standin.running == review.RENDER_WORKERS)
    began = time.monotonic()
    await jobs.aclose()
    assert time.monotonic() - began < 2.0
    assert standin.running == 0 and jobs.running == 0 and jobs.queued == 0
    # The pool's idle threads end as soon as they see the shutdown.
    await wait_for(lambda: not [t for t in threading.enumerate()
                                if t.name.startswith("composite")], within=1.0)


async def test_a_render_asked_for_while_one_runs_runs_again_after_it(
        registry: Registry, tmp_path: Path, standin: StandIn) -> None:
    """A recess's composite still rendering when the hearing closes: the close's render is not
    lost (it would hold the files finished since), and cancelling drops it."""
    recordings = Recordings(registry.db, registry.clock, tmp_path)
    hearing_id = await recorded_hearing(registry, recordings, 10, 10)
    jobs = CompositeJobs(registry, recordings, zone=ZONE)
    jobs.start(hearing_id)
    await wait_for(lambda: standin.running == 1)
    jobs.start(hearing_id)
    jobs.start(hearing_id)  # asked twice meanwhile: once more, not twice
    standin.release.set()
    await jobs.settled()
    assert len(standin.timelines) == 2 and jobs.status(hearing_id).state == "done"

    standin.release.clear()
    jobs.start(hearing_id)
    await wait_for(lambda: standin.running == 1)
    jobs.start(hearing_id)
    assert jobs.cancel(hearing_id)
    await jobs.settled()
    assert len(standin.timelines) == 3 and jobs.status(hearing_id).state == "idle"
    await jobs.aclose()

"""Review composites: one MP4 per hearing rendered in the background from its recordings.

Renders run in the composites' own thread pool, a few at a time (`RENDER_WORKERS`), never on
the event loop's default executor: a render holds its thread for as long as the hearing
lasts, and the live hearings' departures, rejoins and file hashing need that executor. Each
render's timeline is capped by the hearing's wall-clock time (a participant's timestamps
cannot make a 14 s session into hours), and a render past its deadline is cancelled. Every
composite carries the case number and the court's wall clock (`stamp_of`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from courtrooms.labels import ROLE_ZH
from courtrooms.models import (
    Hearing,
    Participant,
    Recording,
    RecordingSegment,
    RecordingStatus,
)
from courtrooms.recordings import FileOutcome, Recordings
from courtrooms.registry import Registry
from media.composite import render_composite
from media.composite_sources import CompositeSource
from media.errors import CompositeCancelled, CompositeError
from media.stamp import Stamp
from signaling.tasks import TaskSet

log = logging.getLogger(__name__)

COMPOSITE_DIR = Path("composites")
CLOSE_TIMEOUT_S = 10.0
# Renders at once: each is an ffmpeg encoding the whole hearing, with a thread of ours
# feeding it audio; more than two at once on a small server only slows them all.
RENDER_WORKERS = 2
# A composite covers the hearing's recorded wall-clock time and at most this much more.
TIMELINE_MARGIN_S = 5.0
# A render may take this long plus this many seconds per second of hearing before it is
# cancelled as stuck (measured: a 4-party composite renders several times faster than real
# time on 2 cores; six at once at about real time).
DEADLINE_BASE_S = 600.0
DEADLINE_PER_SECOND = 4.0
# A render waiting this long for a worker means the queue is stuck (readiness says so).
QUEUE_STUCK_S = 3_600.0
# A half-written render nobody has written to for this long was left by a dead process.
PARTIAL_STALE_S = 120.0


@dataclass
class CompositeProgress:
    state: str = "idle"  # idle, rendering (queued or running), done, failed
    progress: float = 0.0
    error: str | None = None
    queued_at: float = field(default_factory=time.monotonic, repr=False)
    started_at: float | None = field(default=None, repr=False)
    deadline: float | None = field(default=None, repr=False)


class NothingToRender(CompositeError):
    """The hearing has no recorded file yet."""


def recesses_of(segments: list[RecordingSegment]) -> list[tuple[float, float]]:
    """The gaps between recorded segments, on the hearing timeline."""
    ordered = sorted(segments, key=lambda s: s.index)
    return [
        (before.end, after.start)
        for before, after in itertools.pairwise(ordered)
        if before.end is not None and after.start > before.end
    ]


def timeline_limit(segments: list[RecordingSegment], now: float | None) -> float | None:
    """The end of the hearing's recorded wall-clock time plus the margin: no composite runs
    longer, whatever its files' timestamps claim. `now` (on the hearing timeline) ends a
    segment still open; None when the hearing has no segment."""
    ends = [s.end if s.end is not None else (now if now is not None else s.start)
            for s in segments]
    return max(ends) + TIMELINE_MARGIN_S if ends else None


def stamp_of(hearing: Hearing, zone: ZoneInfo) -> Stamp:
    """What the hearing's composite carries burned in: its case number, and the wall clock
    from its timeline's origin in the court's zone (`court_time_zone`)."""
    return Stamp(case_number=hearing.case_number, origin=hearing.timeline_origin, zone=zone)


async def render_hearing(
    registry: Registry,
    recordings: Recordings,
    hearing_id: uuid.UUID,
    on_progress: Callable[[float], None],
    cancel: threading.Event,
    *,
    zone: ZoneInfo,
    executor: concurrent.futures.Executor | None = None,
    on_timeline: Callable[[float], None] | None = None,
) -> Path:
    """Render the hearing's composite (in a thread of `executor`, the default one only for
    the command line) and enter it in the record. `on_timeline` learns its length first;
    `zone` is the court's, in which the composite's clock shows the time."""
    files, segments = await recordings.of_hearing(hearing_id)
    hearing = await registry.get_hearing(hearing_id)
    people = {p.id: p for p in await registry.list_participants(hearing_id)}
    usable = [f for f in files if f.kind == "participant" and f.status != RecordingStatus.RECORDING
              and f.duration > 0 and recordings.path_of(f).is_file()]
    if not usable:
        raise NothingToRender("the hearing has no finished recording to render")
    sources = [_source(recordings, f, people) for f in usable]
    timeline_end = max(f.offset + f.duration for f in usable)
    now = time.time() - hearing.timeline_origin if hearing.timeline_origin else None
    limit = timeline_limit(segments, now)
    if limit is not None and timeline_end > limit:
        log.warning("hearing %s: its files claim %.0f s, the hearing was recorded for %.0f s; "
                    "the composite stops there", hearing_id, timeline_end, limit)
        timeline_end = limit
    if on_timeline is not None:
        on_timeline(timeline_end)
    relative = COMPOSITE_DIR / f"{hearing_id}.mp4"
    output = recordings.data_dir / relative
    output.parent.mkdir(parents=True, exist_ok=True)
    render = functools.partial(
        render_composite, sources, output, timeline_end=timeline_end,
        recesses=recesses_of(segments), stamp=stamp_of(hearing, zone),
        on_progress=on_progress, cancel=cancel,
    )
    result = await asyncio.get_running_loop().run_in_executor(executor, render)
    await recordings.add_composite(
        hearing_id, relative.as_posix(), FileOutcome(result.duration, codecs="h264,aac")
    )
    return output


def _source(
    recordings: Recordings, file: Recording, people: dict[uuid.UUID, Participant]
) -> CompositeSource:
    person = people[file.participant_id] if file.participant_id in people else None
    caption = f"{ROLE_ZH[person.role.value]} {person.name}" if person else "?"
    return CompositeSource(
        path=recordings.path_of(file),
        participant_id=str(file.participant_id),
        caption=caption,
        offset=file.offset,
        duration=file.duration,
    )


class CompositeJobs:
    """Owns the background renders of this process: at most one per hearing, at most
    `workers` at once in a pool of their own, each cancelled past its deadline."""

    def __init__(self, registry: Registry, recordings: Recordings, *, zone: ZoneInfo,
                 workers: int = RENDER_WORKERS) -> None:
        self.registry = registry
        self.recordings = recordings
        self.zone = zone  # the court's: the composites' clock shows its time
        self._progress: dict[uuid.UUID, CompositeProgress] = {}
        self._cancels: dict[uuid.UUID, threading.Event] = {}  # one render per hearing
        self._jobs: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Asked for again while rendering: files finished since (a recess's render still
        # running when the hearing closes) are in the next one.
        self._again: set[uuid.UUID] = set()
        self._closing = False
        self._tasks = TaskSet("composites")
        self._pool = concurrent.futures.ThreadPoolExecutor(workers,
                                                           thread_name_prefix="composite")
        self._slots = asyncio.Semaphore(workers)

    def clean_partials(self, *, older_than_s: float = 0.0) -> int:
        """Delete renders a killed server left half-written (`.partial` files) that were not
        written to for `older_than_s` (other processes' renders are being written now).
        Returns how many were deleted."""
        removed = 0
        folder = self.recordings.data_dir / COMPOSITE_DIR
        if not folder.is_dir():
            return 0
        for partial in folder.glob(".*.partial"):
            try:
                if time.time() - partial.stat().st_mtime >= older_than_s:
                    partial.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished or removed meanwhile
        if removed:
            log.warning("deleted %d composite render(s) left unfinished", removed)
        return removed

    def status(self, hearing_id: uuid.UUID) -> CompositeProgress:
        return self._progress.get(hearing_id, CompositeProgress())

    def start(self, hearing_id: uuid.UUID) -> CompositeProgress:
        """Render the hearing's composite; when a render is already queued or running, once
        more after it (it may not have the files finished since)."""
        if hearing_id in self._cancels:
            self._again.add(hearing_id)
            return self.status(hearing_id)
        progress = CompositeProgress(state="rendering")
        self._progress[hearing_id] = progress
        cancel = threading.Event()
        loop = asyncio.get_running_loop()

        def report(fraction: float) -> None:  # called from the render thread
            loop.call_soon_threadsafe(setattr, progress, "progress", fraction)

        self._cancels[hearing_id] = cancel
        task = self._tasks.spawn(self._run(hearing_id, progress, report, cancel),
                                 name=f"composite-{hearing_id}")
        self._jobs[hearing_id] = task

        def done(_task: asyncio.Task[None]) -> None:
            self._cancels.pop(hearing_id, None)
            self._jobs.pop(hearing_id, None)
            if hearing_id in self._again and not self._closing:
                self._again.discard(hearing_id)
                self.start(hearing_id)

        task.add_done_callback(done)
        return progress

    def cancel(self, hearing_id: uuid.UUID) -> bool:
        """Stop the hearing's render (queued or running); False when there is none."""
        cancel = self._cancels.get(hearing_id)
        if cancel is None:
            return False
        self._again.discard(hearing_id)
        cancel.set()  # a running render's thread sees it between frames
        progress = self._progress[hearing_id]
        if progress.started_at is None:  # still waiting for a worker
            self._jobs[hearing_id].cancel()
            progress.state, progress.progress = "idle", 0.0
        return True

    @property
    def queued(self) -> int:
        """Renders waiting for a worker."""
        return sum(p.state == "rendering" and p.started_at is None
                   for h, p in self._progress.items() if h in self._cancels)

    @property
    def running(self) -> int:
        return sum(p.state == "rendering" and p.started_at is not None
                   for h, p in self._progress.items() if h in self._cancels)

    def stuck(self, now: float | None = None) -> bool:
        """A render still running after its deadline (its cancel did not take), or one
        waiting for a worker longer than `QUEUE_STUCK_S`."""
        now = time.monotonic() if now is None else now
        for hearing_id, progress in self._progress.items():
            if hearing_id not in self._cancels or progress.state != "rendering":
                continue
            if progress.started_at is None and now - progress.queued_at > QUEUE_STUCK_S:
                return True
            if progress.deadline is not None and now > progress.deadline + CLOSE_TIMEOUT_S:
                return True
        return False

    async def _run(self, hearing_id: uuid.UUID, progress: CompositeProgress,
                   report: Callable[[float], None], cancel: threading.Event) -> None:
        timer: asyncio.TimerHandle | None = None
        loop = asyncio.get_running_loop()

        def deadline(timeline_end: float) -> None:
            nonlocal timer
            allowed = DEADLINE_BASE_S + DEADLINE_PER_SECOND * timeline_end
            progress.deadline = time.monotonic() + allowed
            timer = loop.call_later(allowed, cancel.set)

        try:
            async with self._slots:
                if cancel.is_set():
                    raise CompositeCancelled("the composite render was cancelled")
                progress.started_at = time.monotonic()
                await render_hearing(self.registry, self.recordings, hearing_id, report,
                                     cancel, zone=self.zone, executor=self._pool,
                                     on_timeline=deadline)
        except CompositeCancelled:
            if progress.deadline is not None and time.monotonic() >= progress.deadline:
                progress.state, progress.error = "failed", "the render took too long"
                log.warning("composite of hearing %s cancelled at its deadline", hearing_id)
            else:
                progress.state, progress.progress = "idle", 0.0  # cancelled, or stopping
            return
        except CompositeError as e:
            progress.state, progress.error = "failed", str(e)
            log.warning("composite of hearing %s failed: %s", hearing_id, e)
            return
        finally:
            if timer is not None:
                timer.cancel()
        progress.state, progress.progress = "done", 1.0

    async def settled(self) -> None:
        """Wait until no render is queued or running."""
        await self._tasks.finish()

    async def aclose(self) -> None:
        """Stop every render (the thread checks `cancel` between frames) and wait for it."""
        self._closing = True
        for cancel in list(self._cancels.values()):
            cancel.set()
        try:
            await asyncio.wait_for(self._tasks.finish(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning("a composite render did not stop in %.0f s", CLOSE_TIMEOUT_S)
            await self._tasks.cancel()
        # The threads have seen `cancel`: nothing waits for one that is still unwinding.
        self._pool.shutdown(wait=False, cancel_futures=True)

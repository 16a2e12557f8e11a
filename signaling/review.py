"""Review composites: one MP4 per hearing rendered in the background from its recordings."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from courtrooms.labels import ROLE_ZH
from courtrooms.models import Participant, Recording, RecordingSegment, RecordingStatus
from courtrooms.recordings import FileOutcome, Recordings
from courtrooms.service import Registry
from media.composite import (
    CompositeCancelled,
    CompositeError,
    CompositeSource,
    render_composite,
)

log = logging.getLogger(__name__)

COMPOSITE_DIR = Path("composites")
CLOSE_TIMEOUT_S = 10.0


@dataclass
class CompositeProgress:
    state: str = "idle"  # idle, rendering, done, failed
    progress: float = 0.0
    error: str | None = None


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


async def render_hearing(
    registry: Registry,
    recordings: Recordings,
    hearing_id: uuid.UUID,
    on_progress: Callable[[float], None],
    cancel: threading.Event,
) -> Path:
    """Render the hearing's composite (in a worker thread) and enter it in the record."""
    files, segments = await recordings.of_hearing(hearing_id)
    people = {p.id: p for p in await registry.list_participants(hearing_id)}
    usable = [f for f in files if f.kind == "participant" and f.status != RecordingStatus.RECORDING
              and f.duration > 0 and recordings.path_of(f).is_file()]
    if not usable:
        raise NothingToRender("the hearing has no finished recording to render")
    sources = [_source(recordings, f, people) for f in usable]
    timeline_end = max(f.offset + f.duration for f in usable)
    relative = COMPOSITE_DIR / f"{hearing_id}.mp4"
    output = recordings.data_dir / relative
    output.parent.mkdir(parents=True, exist_ok=True)
    result = await asyncio.to_thread(
        render_composite, sources, output, timeline_end=timeline_end,
        recesses=recesses_of(segments), on_progress=on_progress, cancel=cancel,
    )
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
    """Owns the background renders of this process: at most one per hearing."""

    def __init__(self, registry: Registry, recordings: Recordings) -> None:
        self.registry = registry
        self.recordings = recordings
        self._progress: dict[uuid.UUID, CompositeProgress] = {}
        self._tasks: dict[uuid.UUID, tuple[asyncio.Task[None], threading.Event]] = {}

    def status(self, hearing_id: uuid.UUID) -> CompositeProgress:
        return self._progress.get(hearing_id, CompositeProgress())

    def start(self, hearing_id: uuid.UUID) -> CompositeProgress:
        """Render the hearing's composite unless a render is already running."""
        if hearing_id in self._tasks:
            return self.status(hearing_id)
        progress = CompositeProgress(state="rendering")
        self._progress[hearing_id] = progress
        cancel = threading.Event()
        loop = asyncio.get_running_loop()

        def report(fraction: float) -> None:  # called from the render thread
            loop.call_soon_threadsafe(setattr, progress, "progress", fraction)

        task = asyncio.create_task(self._run(hearing_id, progress, report, cancel),
                                   name=f"composite-{hearing_id}")
        self._tasks[hearing_id] = (task, cancel)
        task.add_done_callback(lambda _t: self._tasks.pop(hearing_id, None))
        return progress

    async def _run(self, hearing_id: uuid.UUID, progress: CompositeProgress,
                   report: Callable[[float], None], cancel: threading.Event) -> None:
        try:
            await render_hearing(self.registry, self.recordings, hearing_id, report, cancel)
        except CompositeCancelled:
            progress.state, progress.progress = "idle", 0.0  # the server is stopping
            return
        except CompositeError as e:
            progress.state, progress.error = "failed", str(e)
            log.warning("composite of hearing %s failed: %s", hearing_id, e)
            return
        progress.state, progress.progress = "done", 1.0

    async def aclose(self) -> None:
        """Stop every render (the thread checks `cancel` between frames) and wait for it."""
        running = list(self._tasks.values())
        for _, cancel in running:
            cancel.set()
        for task, _ in running:
            try:
                await asyncio.wait_for(task, CLOSE_TIMEOUT_S)
            except (asyncio.CancelledError, TimeoutError, Exception):
                pass

"""The review composite: one MP4 per hearing, every participant's recording on one timeline.

A grid of all participants' video (each tile captioned, a placeholder card while a participant
has no picture), a mix of all their audio, a recess card during recesses, and burned in along
the bottom the case number and the court's wall clock (`media.stamp`), rendered from the
per-participant Matroska/WebM recording files. Video goes through the Debian `ffmpeg` CLI (one
`-filter_complex` graph, `media.filtergraph`, H.264 out); audio is decoded with PyAV and mixed
in Python (`media.audiomix`), placing every decoded frame at its own timestamp, then piped to
the same ffmpeg for AAC. The sources and what probing finds in them: `media.composite_sources`.

`render_composite` blocks for the whole render: run it in a worker thread or process.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from config.files import sync_directory, sync_file
from media.audiomix import AUDIO_CHANNELS, AUDIO_RATE, AudioFeeder
from media.composite_sources import (
    CompositeSource,
    Probe,
    merge_windows,
    participants_of,
    probe_source,
)
from media.errors import CompositeCancelled, CompositeError
from media.filtergraph import FilterGraph, chinese_font
from media.stamp import Stamp

KEYFRAME_INTERVAL_S = 2  # seeking in the review player lands within this
X264_PRESET = "veryfast"
# Subpixel refinement as in `superfast`: measured on a 4-party composite, a third less encoder
# CPU than `veryfast` alone for 5% more bytes (`superfast` itself doubles the bytes).
X264_PARAMS = "subme=1"
X264_CRF = 23
AAC_BITRATE = "128k"
PROGRESS_POLL_S = 0.1
RENDER_NICENESS = 10
STDERR_TAIL_CHARS = 2_000

ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class CompositeResult:
    """A finished composite."""

    path: Path
    duration: float
    participants: tuple[str, ...]  # tile order: first appearance in the sources
    elapsed: float  # wall seconds the render took


def render_composite(
    sources: Sequence[CompositeSource],
    output: Path,
    *,
    timeline_end: float,
    recesses: Sequence[tuple[float, float]] = (),
    size: tuple[int, int] = (1280, 720),
    fps: int = 25,
    stamp: Stamp | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> CompositeResult:
    """Render the hearing timeline 0..`timeline_end` into one MP4 (H.264 + AAC, faststart).

    With a `stamp`, a band along the bottom carries the case number and, when the stamp has an
    origin, the wall-clock time of every frame in the stamp's zone.

    Blocks until done. `on_progress` is called from this thread with fractions rising to 1.0.
    Setting `cancel` stops the render and raises `CompositeCancelled`; on any error nothing is
    left at `output` (the render writes a temporary file beside it and renames it at the end).
    """
    began = time.monotonic()
    if cancel is None:
        cancel = threading.Event()
    _check_arguments(sources, output, timeline_end, recesses, size, fps, stamp)
    font = chinese_font()
    recess_windows = merge_windows([(max(0.0, a), min(timeline_end, b)) for a, b in recesses])
    recess_windows = [(a, b) for a, b in recess_windows if b > a]
    participants = participants_of(sources)
    progress = _Progress(on_progress)
    progress.report(0.0)

    probes = []
    for source in sources:
        if cancel.is_set():
            raise CompositeCancelled("the composite render was cancelled")
        probes.append(probe_source(source, timeline_end))

    output = output.absolute()
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.partial")
    with tempfile.TemporaryDirectory(prefix="tingshen-composite-") as work:
        graph = FilterGraph(Path(work), size, fps, timeline_end, font, stamp)
        script = graph.build(participants, probes, recess_windows)
        inputs = [p for p in probes if p.video_windows]
        command = _ffmpeg_command(inputs, script, partial, timeline_end, fps)
        try:
            _run(command, probes, timeline_end, progress, cancel, Path(work) / "ffmpeg.log")
            # On the disk before it is renamed into place, hashed and entered in the record.
            sync_file(partial)
            os.replace(partial, output)
            sync_directory(output.parent)
        except OSError as e:
            raise CompositeError(f"cannot write the composite {output}: {e}") from e
        finally:
            partial.unlink(missing_ok=True)
    progress.report(1.0)
    return CompositeResult(
        path=output,
        duration=timeline_end,
        participants=tuple(p.participant_id for p in participants),
        elapsed=time.monotonic() - began,
    )


# -- arguments ---------------------------------------------------------------------------------


def _check_arguments(
    sources: Sequence[CompositeSource],
    output: Path,
    timeline_end: float,
    recesses: Sequence[tuple[float, float]],
    size: tuple[int, int],
    fps: int,
    stamp: Stamp | None,
) -> None:
    if not math.isfinite(timeline_end) or timeline_end <= 0:
        raise CompositeError(f"timeline_end must be a positive number of seconds: {timeline_end}")
    width, height = size
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise CompositeError(f"size must be even and at least 64x64: {width}x{height}")
    if not 1 <= fps <= 60:
        raise CompositeError(f"fps must be between 1 and 60: {fps}")
    if not sources:
        raise CompositeError("a composite needs at least one recording file")
    if stamp is not None and stamp.origin is not None and not (
        math.isfinite(stamp.origin) and stamp.origin >= 0
    ):
        raise CompositeError(f"the stamp's origin must be a Unix time: {stamp.origin}")
    if not output.parent.is_dir():
        raise CompositeError(f"the composite's directory does not exist: {output.parent}")
    for start, end in recesses:
        if not (math.isfinite(start) and math.isfinite(end) and start < end):
            raise CompositeError(f"a recess must end after it starts: {start}..{end}")
    for s in sources:
        if not (math.isfinite(s.offset) and s.offset >= 0):
            raise CompositeError(f"{s.path.name}: offset must be >= 0: {s.offset}")
        if not (math.isfinite(s.duration) and s.duration >= 0):
            raise CompositeError(f"{s.path.name}: duration must be >= 0: {s.duration}")
        if not s.path.is_file():
            raise CompositeError(f"recording file not found: {s.path}")


# -- running ffmpeg ----------------------------------------------------------------------------


def _ffmpeg_command(
    video_inputs: Sequence[Probe], script: Path, partial: Path, end: float, fps: int
) -> list[str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise CompositeError("ffmpeg is not installed (Debian package ffmpeg)")
    command = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats",
        "-progress", "pipe:1",
        # Timestamps as the recorder wrote them: by default ffmpeg would shift each file so
        # that it starts at 0, moving late-starting streams off the timeline.
        "-copyts",
        "-f", "f32le", "-ar", str(AUDIO_RATE), "-ac", str(AUDIO_CHANNELS), "-i", "pipe:0",
    ]
    for probe in video_inputs:
        # reinit_filter 0: a picture size change mid-file goes to `scale`, which adapts;
        # rebuilding the whole graph instead would restart its sources at time 0 and run the
        # timeline again up to the change.
        # One decoder thread each: a long hearing has many files open at once.
        command += ["-reinit_filter", "0", "-threads", "1", "-i", f"file:{probe.source.path}"]
    command += [
        "-filter_complex_script", str(script),
        "-map", "[vout]", "-map", "0:a",
        "-c:v", "libx264", "-preset", X264_PRESET, "-x264-params", X264_PARAMS,
        "-crf", str(X264_CRF),
        "-pix_fmt", "yuv420p", "-g", str(KEYFRAME_INTERVAL_S * fps),
        "-c:a", "aac", "-b:a", AAC_BITRATE,
        "-t", f"{end:.3f}", "-movflags", "+faststart", "-f", "mp4", f"file:{partial}",
    ]
    return command


class _Progress:
    """Reports rising fractions only, and 1.0 only when the file is in place."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.last = -1.0

    def report(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction > self.last and self.callback is not None:
            self.last = fraction
            self.callback(fraction)


def _run(
    command: list[str],
    probes: Sequence[Probe],
    end: float,
    progress: _Progress,
    cancel: threading.Event,
    log_path: Path,
) -> None:
    with log_path.open("w+b") as stderr:
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        except OSError as e:
            raise CompositeError(f"cannot start ffmpeg: {e}") from e
        # Below the server's live work: a render may take longer, a hearing may not wait.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, process.pid, RENDER_NICENESS)
        assert process.stdin is not None and process.stdout is not None
        feeder = AudioFeeder(probes, end, process.stdin)
        times: queue.SimpleQueue[float] = queue.SimpleQueue()
        reader = threading.Thread(target=_read_progress, args=(process.stdout, times),
                                  name="composite-progress", daemon=True)
        try:
            feeder.start()
            reader.start()
            while process.poll() is None:
                if cancel.is_set() or feeder.error is not None:
                    process.kill()
                    break
                with contextlib.suppress(queue.Empty):
                    # Stays below 1.0: faststart still rewrites the file after the last frame.
                    progress.report(min(times.get(timeout=PROGRESS_POLL_S) / end, 0.999))
            process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            feeder.stop()
            feeder.join()
            reader.join(timeout=5)
            process.stdout.close()
        if cancel.is_set():
            raise CompositeCancelled("the composite render was cancelled")
        if feeder.error is not None:
            raise CompositeError(f"mixing the audio failed: {feeder.error}") from feeder.error
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:].strip()
            raise CompositeError(f"ffmpeg failed (exit {process.returncode}): {tail}")
        while not times.empty():  # ffmpeg's last report, written as it finished
            progress.report(min(times.get() / end, 0.999))


def _read_progress(stdout: IO[bytes], times: queue.SimpleQueue[float]) -> None:
    """`-progress` output: key=value lines; out_time_us is how far the output has got."""
    for line in stdout:
        key, _, value = line.decode("ascii", "replace").strip().partition("=")
        if key == "out_time_us" and value.lstrip("-").isdigit():
            times.put(int(value) / 1e6)

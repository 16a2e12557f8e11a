"""The review composite: one MP4 per hearing, every participant's recording on one timeline.

A grid of all participants' video (each tile captioned, a placeholder card while a participant
has no picture), a mix of all their audio, and a recess card during recesses, rendered from the
per-participant Matroska/WebM recording files. Video goes through the Debian `ffmpeg` CLI (one
`-filter_complex` graph, H.264 out); audio is decoded with PyAV and mixed here, placing every
decoded frame at its own timestamp, then piped to the same ffmpeg for AAC. Mixing here rather
than in the graph keeps memory bounded across gaps in a file's audio: ffmpeg's `aresample`
fills a gap with one frame of silence as long as the gap (400 MB for a 20-minute gap).

`render_composite` blocks for the whole render: run it in a worker thread or process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import av
import numpy as np

from media.errors import MediaError

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_CHANNELS = 2
MIX_CHUNK_SAMPLES = AUDIO_RATE // 2
# A participant's audio frame starting this close after the previous one's end is joined to it:
# jitter in recorded timestamps must not leave clicks of silence or double a few samples.
AUDIO_SNAP_SAMPLES = AUDIO_RATE // 50
# A pause in a participant's video longer than this (a camera turned off) shows the placeholder
# card instead of the last picture frozen.
VIDEO_GAP_S = 1.0
VIDEO_FRAME_S = 1 / 30  # how long the last frame before a pause stays when its rate is unknown
GUTTER_PX = 4
VIDEO_ASPECT = 16 / 9
KEYFRAME_INTERVAL_S = 2  # seeking in the review player lands within this
X264_PRESET = "veryfast"
# Subpixel refinement as in `superfast`: measured on a 4-party composite, a third less encoder
# CPU than `veryfast` alone for 5% more bytes (`superfast` itself doubles the bytes).
X264_PARAMS = "subme=1"
X264_CRF = 23
AAC_BITRATE = "128k"
PROGRESS_POLL_S = 0.1
STDERR_TAIL_CHARS = 2_000

BACKGROUND = "0x101418"
CARD = "0x2b2f36"
CAPTION_BAND = "0x000000"
RECESS_CARD = "0x1d2b3a"
RECESS_TITLE = "休庭 Recess"
FONT_PATTERN = "sans-serif:lang=zh-cn"

ProgressCallback = Callable[[float], None]
Rect = tuple[int, int, int, int]  # x, y, width, height in output pixels
Window = tuple[float, float]  # start, end in seconds on the hearing timeline


class CompositeError(MediaError):
    """The composite could not be rendered (bad input, unreadable file, ffmpeg failure)."""


class CompositeCancelled(CompositeError):
    """The render was cancelled; nothing was left at the output path."""


@dataclass(frozen=True)
class CompositeSource:
    """One recording file: a participant's audio and/or video during one session segment.

    A packet at pts `t` seconds in the file belongs at hearing time `offset + t`; anything past
    `duration` seconds of file time is left out. `caption` is what the tile shows (for example
    "审判长 张三"); the first caption given for a participant is used.
    """

    path: Path
    participant_id: str
    caption: str
    offset: float
    duration: float


@dataclass(frozen=True)
class CompositeResult:
    """A finished composite."""

    path: Path
    duration: float
    participants: tuple[str, ...]  # tile order: first appearance in the sources
    elapsed: float  # wall seconds the render took


@dataclass(frozen=True)
class Tile:
    """Where one participant appears: the picture area and the caption band below it."""

    video: Rect
    caption: Rect


def tile_layout(count: int, size: tuple[int, int]) -> list[Tile]:
    """Tiles for `count` participants on a `size` canvas, in reading order.

    The grid is the one that gives 16:9 pictures the most area; an incomplete last row is
    centred. Every coordinate is even, as 4:2:0 video needs.
    """
    if count < 1:
        raise CompositeError("a composite needs at least one participant")
    width, height = size
    best: tuple[float, int, int, int] | None = None
    for cols in range(1, count + 1):
        rows = math.ceil(count / cols)
        band = _caption_band(height, rows)
        cell_w, cell_h = width // cols, height // rows
        area_w, area_h = cell_w - GUTTER_PX, cell_h - GUTTER_PX - band
        if area_w <= 0 or area_h <= 0:
            continue
        picture = min(area_w, area_h * VIDEO_ASPECT) * min(area_h, area_w / VIDEO_ASPECT)
        candidate = (picture, -(rows * cols), cols, rows)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise CompositeError(f"{count} tiles do not fit a {width}x{height} picture")
    _, _, cols, rows = best
    band = _caption_band(height, rows)
    cell_w, cell_h = _even(width // cols), _even(height // rows)
    top = _even((height - rows * cell_h) // 2)
    tiles = []
    for i in range(count):
        row, col = divmod(i, cols)
        in_row = min(cols, count - row * cols)
        left = _even((width - in_row * cell_w) // 2)
        x = left + col * cell_w + GUTTER_PX // 2
        y = top + row * cell_h + GUTTER_PX // 2
        w, h = cell_w - GUTTER_PX, cell_h - GUTTER_PX
        tiles.append(Tile(video=(x, y, w, h - band), caption=(x, y + h - band, w, band)))
    return tiles


def render_composite(
    sources: Sequence[CompositeSource],
    output: Path,
    *,
    timeline_end: float,
    recesses: Sequence[tuple[float, float]] = (),
    size: tuple[int, int] = (1280, 720),
    fps: int = 25,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> CompositeResult:
    """Render the hearing timeline 0..`timeline_end` into one MP4 (H.264 + AAC, faststart).

    Blocks until done. `on_progress` is called from this thread with fractions rising to 1.0.
    Setting `cancel` stops the render and raises `CompositeCancelled`; on any error nothing is
    left at `output` (the render writes a temporary file beside it and renames it at the end).
    """
    began = time.monotonic()
    if cancel is None:
        cancel = threading.Event()
    _check_arguments(sources, output, timeline_end, recesses, size, fps)
    font = _chinese_font()
    recess_windows = _merge([(max(0.0, a), min(timeline_end, b)) for a, b in recesses])
    recess_windows = [(a, b) for a, b in recess_windows if b > a]
    participants = _participants(sources)
    progress = _Progress(on_progress)
    progress.report(0.0)

    probes = []
    for source in sources:
        if cancel.is_set():
            raise CompositeCancelled("the composite render was cancelled")
        probes.append(_probe(source, timeline_end))

    output = output.absolute()
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.partial")
    with tempfile.TemporaryDirectory(prefix="tingshen-composite-") as work:
        graph = _Graph(Path(work), size, fps, timeline_end, font)
        script = graph.build(participants, probes, recess_windows)
        inputs = [p for p in probes if p.video_windows]
        command = _ffmpeg_command(inputs, script, partial, timeline_end, fps)
        try:
            _run(command, probes, timeline_end, progress, cancel, Path(work) / "ffmpeg.log")
            os.replace(partial, output)
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


@dataclass(frozen=True)
class _Participant:
    participant_id: str
    caption: str


def _check_arguments(
    sources: Sequence[CompositeSource],
    output: Path,
    timeline_end: float,
    recesses: Sequence[tuple[float, float]],
    size: tuple[int, int],
    fps: int,
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


def _participants(sources: Sequence[CompositeSource]) -> list[_Participant]:
    seen: dict[str, _Participant] = {}
    for s in sources:
        if s.participant_id not in seen:
            # One line of printable text: drawtext breaks lines at newlines.
            caption = " ".join("".join(c for c in s.caption if c.isprintable() or c.isspace())
                               .split())
            seen[s.participant_id] = _Participant(s.participant_id, caption)
    return list(seen.values())


def _merge(windows: Sequence[Window]) -> list[Window]:
    merged: list[Window] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(windows: Sequence[Window], holes: Sequence[Window]) -> list[Window]:
    out = list(windows)
    for hole_start, hole_end in holes:
        cut: list[Window] = []
        for start, end in out:
            if hole_end <= start or end <= hole_start:
                cut.append((start, end))
                continue
            if start < hole_start:
                cut.append((start, hole_start))
            if hole_end < end:
                cut.append((hole_end, end))
        out = cut
    return out


# -- probing -----------------------------------------------------------------------------------


@dataclass
class _Probe:
    source: CompositeSource
    has_audio: bool
    video_windows: list[Window] = field(default_factory=list)  # on the hearing timeline


def _probe(source: CompositeSource, timeline_end: float) -> _Probe:
    """Which streams a file really holds, and when its video has pictures.

    The recorder declares both streams even when one never gets a packet, so packets are what
    count. A video stream without any is left out of the graph: ffmpeg configures the graph
    only once every input has given a frame or ended, so it would first read the whole file.
    """
    try:
        container = av.open(str(source.path))
    except (av.FFmpegError, OSError) as e:
        raise CompositeError(f"cannot read recording {source.path.name}: {e}") from e
    with container:
        has_audio = bool(container.streams.audio)
        spans: list[Window] = []
        if container.streams.video:
            stream = container.streams.video[0]
            last: float | None = None
            step = VIDEO_FRAME_S
            try:
                for packet in container.demux(stream):
                    if packet.pts is None or packet.time_base is None:
                        continue  # the demuxer's end-of-stream marker
                    t = float(packet.pts * packet.time_base)
                    if last is not None and 0 < t - last <= VIDEO_GAP_S:
                        step = t - last
                    if last is None or t - last > VIDEO_GAP_S:
                        spans.append((t, t))
                    spans[-1] = (spans[-1][0], max(spans[-1][1], t))
                    last = max(t, last if last is not None else t)
            except (av.FFmpegError, EOFError) as e:
                # A file cut short (a crash before repair): what was read is shown.
                log.warning("%s: video readable up to %.1f s: %s", source.path.name, last or 0, e)
            spans = [(a, b + step) for a, b in spans]
    windows = [
        (source.offset + max(a, 0.0), source.offset + min(b, source.duration))
        for a, b in spans
    ]
    windows = [(max(a, 0.0), min(b, timeline_end)) for a, b in windows]
    return _Probe(source, has_audio, [(a, b) for a, b in windows if b > a])


# -- the video graph ---------------------------------------------------------------------------


def _value(text: str) -> str:
    """Escape a filter option value for a filtergraph (ffmpeg-filters, "Notes on filtergraph
    escaping"): once for the option parser, once more for the graph parser."""
    text = re.sub(r"([\\':])", r"\\\1", text)
    return re.sub(r"([\\'\[\],;])", r"\\\1", text)


def _enable(windows: Sequence[Window]) -> str:
    return "+".join(f"between(t,{a:.3f},{b:.3f})" for a, b in windows) or "0"


def _caption_band(height: int, rows: int) -> int:
    return _even(min(48, max(20, height // (10 * rows))))


def _even(value: float) -> int:
    return int(value) // 2 * 2


def _text_em(text: str) -> float:
    """Rough rendered width in ems: CJK glyphs are square, Latin ones about half as wide."""
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.6 for c in text)


class _Graph:
    """Writes the `-filter_complex_script` and the caption files it reads."""

    def __init__(
        self, work: Path, size: tuple[int, int], fps: int, end: float, font: Path
    ) -> None:
        self.work = work
        self.width, self.height = size
        self.fps = fps
        self.end = end
        self.font = font
        self._texts = 0

    def _text_file(self, text: str) -> Path:
        # Captions are read from files: no escaping of user text, no %{} expansion either.
        self._texts += 1
        path = self.work / f"text{self._texts}.txt"
        path.write_text(text, encoding="utf-8")
        return path

    def _drawtext(self, text: str, box: Rect, size: float, *, centre: bool) -> str:
        x, y, w, h = box
        fit = (w - 2 * max(4, w // 40)) / max(_text_em(text), 1.0)
        fontsize = max(8, int(min(size, fit)))
        left = f"{x}+({w}-tw)/2" if centre else f"{x}+{max(4, w // 40)}"
        options = {
            "fontfile": str(self.font),
            "textfile": str(self._text_file(text)),
            "expansion": "none",
            "fontcolor": "white",
            "fontsize": str(fontsize),
            "x": left,
            "y": f"{y}+({h}-{fontsize})/2",
        }
        return "drawtext=" + ":".join(f"{k}={_value(v)}" for k, v in options.items())

    def _still(self, color: str, size: tuple[int, int], texts: Sequence[str]) -> str:
        """A picture drawn once and repeated at the output rate: a chain with no input.

        Repeating one frame costs nothing per frame, where `drawbox` and `drawtext` would
        redraw every frame (a filled `drawbox` costs milliseconds per frame)."""
        return ",".join([
            f"color=c={color}:s={size[0]}x{size[1]}:r={self.fps}",
            "format=yuv420p",
            "trim=end_frame=1",
            *texts,
            "loop=loop=-1:size=1",
            f"setpts=N/({self.fps}*TB)",
        ])

    def _card_text(self, caption: str, box: Rect) -> list[str]:
        """The placeholder's text: the caption, large, in the middle of the picture area."""
        return [self._drawtext(caption, box, box[3] * 0.12, centre=True)] if caption else []

    def build(
        self,
        participants: Sequence[_Participant],
        probes: Sequence[_Probe],
        recesses: Sequence[Window],
    ) -> Path:
        tiles = tile_layout(len(participants), (self.width, self.height))
        video_inputs = [p for p in probes if p.video_windows]
        covered = {
            person.participant_id: _merge([w for p in video_inputs for w in p.video_windows
                                           if p.source.participant_id == person.participant_id])
            for person in participants
        }
        # The background: caption bands, and for each participant either the placeholder card
        # (never any picture) or black (letterbox bars), drawn once.
        background = []
        for person, tile in zip(participants, tiles, strict=True):
            if covered[person.participant_id]:
                background.append(_drawbox(tile.video, "black"))
            else:
                background.append(_drawbox(tile.video, CARD))
                background += self._card_text(person.caption, tile.video)
            background.append(_drawbox(tile.caption, CAPTION_BAND))
            if person.caption:
                background.append(self._drawtext(person.caption, tile.caption,
                                                 tile.caption[3] * 0.6, centre=False))
        chains = [self._still(BACKGROUND, (self.width, self.height), background)
                  + f",trim=end={self.end:.3f}[base0]"]
        main, step = "base0", 0

        def overlay(layer: str, x: int | str, y: int | str, enable: str, extra: str = "") -> None:
            nonlocal main, step
            step += 1
            chains.append(f"[{main}][{layer}]overlay=x={x}:y={y}{extra}"
                          f":enable={_value(enable)}[base{step}]")
            main = f"base{step}"

        for person, tile in zip(participants, tiles, strict=True):
            windows = covered[person.participant_id]
            if not windows:
                continue
            x, y, w, h = tile.video
            uncovered = _subtract([(0.0, self.end)], windows)
            if uncovered:
                card = self._card_text(person.caption, (0, 0, w, h))
                chains.append(self._still(CARD, (w, h), card) + f"[card{step}]")
                # shortest: a still never ends, so the background's end is the output's.
                overlay(f"card{step}", x, y, _enable(uncovered), ":shortest=1")
            for probe in video_inputs:
                if probe.source.participant_id != person.participant_id:
                    continue
                index = video_inputs.index(probe) + 1  # input 0 is the audio pipe
                chains.append(
                    f"[{index}:v:0]setpts=PTS+{probe.source.offset:.6f}/TB,"
                    f"trim=end={self.end:.3f},"  # a file running past the end would extend it
                    f"scale=w={w}:h={h}:force_original_aspect_ratio=decrease"
                    f":force_divisible_by=2:flags=bilinear,setsar=1[pic{index}]"
                )
                # Centred, whatever size the scaled picture has (it may change mid-file).
                overlay(f"pic{index}", f"{x}+({w}-w)/2", f"{y}+({h}-h)/2",
                        _enable(probe.video_windows), ":eof_action=pass")
        for number, (start, end) in enumerate(recesses):
            title = (0, self.height // 2 - self.height // 8, self.width, self.height // 6)
            when = (0, self.height // 2 + self.height // 12, self.width, self.height // 12)
            texts = [
                self._drawtext(RECESS_TITLE, title, self.height / 9, centre=True),
                self._drawtext(f"{_clock(start)} – {_clock(end)}", when, self.height / 24,
                               centre=True),
            ]
            chains.append(self._still(RECESS_CARD, (self.width, self.height), texts)
                          + f"[recess{number}]")
            overlay(f"recess{number}", 0, 0, _enable([(start, end)]), ":shortest=1")
        chains.append(f"[{main}]null[vout]")
        script = self.work / "graph.txt"
        script.write_text(";\n".join(chains) + "\n", encoding="utf-8")
        return script


def _drawbox(box: Rect, color: str) -> str:
    x, y, w, h = box
    return f"drawbox=x={x}:y={y}:w={w}:h={h}:color={color}:t=fill"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@functools.lru_cache(maxsize=1)
def _chinese_font() -> Path:
    try:
        found = subprocess.run(
            ["fc-list", "--format=%{file}\n", ":lang=zh-cn"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.split()
        best = subprocess.run(
            ["fc-match", "--format=%{file}", FONT_PATTERN],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise CompositeError(f"fontconfig is not usable (fc-list, fc-match): {e}") from e
    if not found:
        raise CompositeError("no font with Chinese glyphs; install fonts-wqy-microhei")
    return Path(best if best in found else found[0])


# -- running ffmpeg ----------------------------------------------------------------------------


def _ffmpeg_command(
    video_inputs: Sequence[_Probe], script: Path, partial: Path, end: float, fps: int
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
    probes: Sequence[_Probe],
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
        assert process.stdin is not None and process.stdout is not None
        feeder = _AudioFeeder(probes, end, process.stdin)
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


# -- the audio mix -----------------------------------------------------------------------------


class _AudioFeeder(threading.Thread):
    """Mixes every file's audio onto the timeline and writes it to ffmpeg as f32le stereo."""

    def __init__(self, probes: Sequence[_Probe], end: float, sink: IO[bytes]) -> None:
        super().__init__(name="composite-audio", daemon=True)
        self.sources = [p.source for p in probes if p.has_audio]
        self.total = round(end * AUDIO_RATE)
        self.sink = sink
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            with contextlib.closing(_mix(self.sources, self.total)) as chunks:
                for chunk in chunks:
                    if self._stop_event.is_set():
                        return
                    try:
                        self.sink.write(chunk.tobytes())
                    except (BrokenPipeError, ValueError):
                        return  # ffmpeg is gone (killed, or failed: its exit status tells why)
        except Exception as e:
            self.error = e
        finally:
            with contextlib.suppress(OSError, ValueError):
                self.sink.close()


def _mix(sources: Sequence[CompositeSource], total: int) -> Generator[np.ndarray, None, None]:
    """The timeline's audio, `MIX_CHUNK_SAMPLES` at a time: the sum of every file's frames at
    their own timestamps, silence where no one has audio. Files are opened when reached."""
    waiting = sorted(sources, key=lambda s: s.offset)
    active: list[_Cursor] = []
    try:
        for start in range(0, total, MIX_CHUNK_SAMPLES):
            stop = min(start + MIX_CHUNK_SAMPLES, total)
            while waiting and waiting[0].offset * AUDIO_RATE < stop:
                active.append(_Cursor(_audio_blocks(waiting.pop(0))))
            chunk = np.zeros((stop - start, AUDIO_CHANNELS), dtype=np.float32)
            for cursor in active:
                cursor.add_into(chunk, start, stop)
            for cursor in [c for c in active if c.done]:
                active.remove(cursor)
            np.clip(chunk, -1.0, 1.0, out=chunk)
            yield chunk
    finally:
        for cursor in active:
            cursor.blocks.close()


_Blocks = Generator[tuple[int, np.ndarray], None, None]


class _Cursor:
    """One file's decoded audio, consumed chunk by chunk."""

    def __init__(self, blocks: _Blocks) -> None:
        self.blocks = blocks
        self.head: tuple[int, np.ndarray] | None = None
        self.done = False

    def add_into(self, chunk: np.ndarray, start: int, stop: int) -> None:
        while not self.done:
            if self.head is None:
                self.head = next(self.blocks, None)
                if self.head is None:
                    self.done = True
                    return
            first, samples = self.head
            last = first + len(samples)
            if first >= stop:
                return
            lo, hi = max(first, start), min(last, stop)
            if hi > lo:
                chunk[lo - start:hi - start] += samples[lo - first:hi - first]
            if last > stop:
                return
            self.head = None


def _audio_blocks(source: CompositeSource) -> _Blocks:
    """Decoded audio of one file as (first sample on the timeline, float32 stereo samples)."""
    limit = round((source.offset + source.duration) * AUDIO_RATE)
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=AUDIO_RATE)
    written: int | None = None  # timeline sample after the last one given out
    with av.open(str(source.path)) as container:
        stream = container.streams.audio[0]
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as e:
                    log.warning("%s: audio packet skipped: %s", source.path.name, e)
                    continue
                for decoded in frames:
                    for frame in resampler.resample(decoded):
                        if frame.pts is None or frame.time_base is None:
                            first = written if written is not None else 0
                        else:
                            at = source.offset + float(frame.pts * frame.time_base)
                            first = round(at * AUDIO_RATE)
                        samples = frame.to_ndarray().reshape(-1, AUDIO_CHANNELS)
                        if written is not None and 0 < first - written <= AUDIO_SNAP_SAMPLES:
                            first = written
                        if first >= limit:
                            return
                        if written is not None and first < written:
                            samples = samples[written - first:]
                            first = written
                        samples = samples[:max(0, limit - first)]
                        if first < 0:
                            samples, first = samples[-first:], 0
                        if len(samples):
                            yield first, samples
                            written = first + len(samples)
        except (av.FFmpegError, EOFError) as e:
            log.warning("%s: audio readable up to %.1f s: %s", source.path.name,
                        (written or 0) / AUDIO_RATE, e)

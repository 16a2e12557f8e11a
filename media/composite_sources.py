"""The review composite's sources: recording files placed on the hearing timeline, what
probing finds in them, and arithmetic on windows of that timeline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av

from media.errors import CompositeError
from media.stamp import one_line

log = logging.getLogger(__name__)

# A pause in a participant's video longer than this (a camera turned off) shows the placeholder
# card instead of the last picture frozen.
VIDEO_GAP_S = 1.0
VIDEO_FRAME_S = 1 / 30  # how long the last frame before a pause stays when its rate is unknown

Window = tuple[float, float]  # start, end in seconds on the hearing timeline


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
class Participant:
    """Whose tile it is, and the caption it shows."""

    participant_id: str
    caption: str


def participants_of(sources: Sequence[CompositeSource]) -> list[Participant]:
    """One per participant, in order of first appearance: the tiles' order."""
    seen: dict[str, Participant] = {}
    for s in sources:
        if s.participant_id not in seen:
            seen[s.participant_id] = Participant(s.participant_id, one_line(s.caption))
    return list(seen.values())


def merge_windows(windows: Sequence[Window]) -> list[Window]:
    merged: list[Window] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract_windows(windows: Sequence[Window], holes: Sequence[Window]) -> list[Window]:
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


@dataclass
class Probe:
    source: CompositeSource
    has_audio: bool
    video_windows: list[Window] = field(default_factory=list)  # on the hearing timeline


def probe_source(source: CompositeSource, timeline_end: float) -> Probe:
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
    return Probe(source, has_audio, [(a, b) for a, b in windows if b > a])

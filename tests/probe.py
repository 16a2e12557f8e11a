"""What ffprobe and PyAV say about a media file: the ground truth for recording tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np


def ffprobe(path: Path) -> dict[str, Any]:
    """Streams and format of `path`; raises if ffprobe cannot read it."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
         str(path)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def codecs(path: Path) -> list[str]:
    return sorted(s["codec_name"] for s in ffprobe(path)["streams"])


def duration(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])


def decoded_frames(path: Path) -> dict[str, int]:
    """Decode every packet of every stream; raises on the first one that does not decode."""
    counts: dict[str, int] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            for _frame in packet.decode():
                kind = packet.stream.type
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def playable_seconds(path: Path) -> float:
    """How far into `path` decoding reaches, even for a file cut short (no duration header)."""
    end = 0.0
    with av.open(str(path)) as container:
        try:
            for packet in container.demux():
                if packet.pts is None:
                    continue
                if packet.decode() or packet.stream.type == "audio":
                    end = max(end, float(packet.pts * packet.time_base))
        except (av.FFmpegError, EOFError):
            pass  # the cut-off end
    return end


def first_loud_instant(path: Path, threshold: float = 0.3) -> float | None:
    """Seconds from the file's time zero to the first audio sample louder than `threshold`."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            samples = frame.to_ndarray()
            if samples.dtype != np.float32:
                samples = samples.astype(np.float32) / 32768.0
            loud = np.flatnonzero(np.abs(samples).max(axis=0) > threshold)
            if loud.size:
                return float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
    return None

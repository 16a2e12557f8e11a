"""The recording writer alone: the CPU of muxing one participant's media into a file, on one
thread with nothing else."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import av

from media.recording import (
    CLUSTER_MS,
    TIME_BASE,
    _MatroskaWriter,
    _Packet,
)
from tests.bench.forwarding.loops import AUDIO_FRAME_MS, FPS, HEIGHT, WIDTH, MediaLoops

WRITER_MEDIA_S = 60  # seconds of media the writer measurement muxes per repetition
WRITER_REPEATS = 5


class CountingFile:
    """An unbuffered file that counts the writes FFmpeg makes through it."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb", buffering=0)
        self.writes = 0

    def write(self, data: bytes) -> int | None:
        self.writes += 1
        return self.file.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


def writer_packets(loops: MediaLoops, seconds: int) -> list[_Packet]:
    """`seconds` of one participant's frames, as the recorder's writer thread receives them."""
    timed = []
    for i in range(seconds * FPS):
        data, keyframe = loops.video[i % len(loops.video)]
        timed.append(_Packet("video", "VP8", data, i * 1000 // FPS, keyframe))
    for i in range(seconds * 1000 // AUDIO_FRAME_MS):
        data = loops.audio[i % len(loops.audio)]
        timed.append(_Packet("audio", "opus", data, i * AUDIO_FRAME_MS, True))
    return sorted(timed, key=lambda packet: packet.pts_ms)


def mux_plainly(target: Any, packets: list[_Packet]) -> None:
    """The recorder's muxing (same container options, same packets) into `target`: a file
    name (FFmpeg's own I/O) or a Python file object."""
    container = av.open(
        target, "w", format="webm",
        options={"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"},
    )
    video: Any = container.add_stream("libvpx", rate=FPS)
    video.width, video.height = WIDTH, HEIGHT
    video.time_base = TIME_BASE
    audio: Any = container.add_stream("libopus", rate=48_000)
    audio.time_base = TIME_BASE
    streams = {"video": video, "audio": audio}
    for packet in packets:
        out = av.Packet(packet.data)
        out.stream = streams[packet.kind]
        out.pts = out.dts = packet.pts_ms
        out.time_base = TIME_BASE
        out.is_keyframe = packet.keyframe
        container.mux(out)
    container.close()


def measure_writer(loops: MediaLoops, directory: Path) -> dict[str, Any]:
    """CPU of muxing one participant's media into a file, on one thread with nothing else:
    the recorder's writer as it is (an unbuffered Python file, so that a full disk raises at
    once), and the same muxing into FFmpeg's own file I/O and into a Python file."""
    directory.mkdir(parents=True, exist_ok=True)
    packets = writer_packets(loops, WRITER_MEDIA_S)

    def recorder_writer(path: Path) -> None:
        writer = _MatroskaWriter(path)
        for packet in packets:
            writer.write(packet)
        writer.close()

    def ffmpeg_io(path: Path) -> None:
        mux_plainly(str(path), packets)

    def python_file(path: Path) -> None:
        with path.open("wb", buffering=0) as file:
            mux_plainly(file, packets)

    variants = {
        "recorder": recorder_writer, "python_file": python_file, "ffmpeg_io": ffmpeg_io,
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    sizes: dict[str, int] = {}
    for repeat in range(WRITER_REPEATS):
        for name, write in variants.items():
            path = directory / f"{name}-{repeat}.webm"
            started = time.thread_time()
            write(path)
            cpu[name].append(time.thread_time() - started)
            sizes[name] = path.stat().st_size
            path.unlink()
    counting = CountingFile(directory / "counted.webm")
    mux_plainly(counting, packets)
    counting.close()
    return {
        "ms_per_media_s": {
            name: statistics.median(values) * 1000 / WRITER_MEDIA_S
            for name, values in cpu.items()
        },
        "sizes": sizes,
        "writes_per_media_s": counting.writes / WRITER_MEDIA_S,
    }

"""The review composite's sound: every file's audio decoded with PyAV and mixed onto the
hearing timeline, then written to ffmpeg as f32le stereo for AAC.

Mixing here rather than in ffmpeg's graph keeps memory bounded across gaps in a file's audio:
ffmpeg's `aresample` fills a gap with one frame of silence as long as the gap (400 MB for a
20-minute gap).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Generator, Sequence
from typing import IO

import av
import numpy as np

from media.composite_sources import CompositeSource, Probe

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_CHANNELS = 2
MIX_CHUNK_SAMPLES = AUDIO_RATE // 2
# A participant's audio frame starting this close after the previous one's end is joined to it:
# jitter in recorded timestamps must not leave clicks of silence or double a few samples.
AUDIO_SNAP_SAMPLES = AUDIO_RATE // 50


class AudioFeeder(threading.Thread):
    """Mixes every file's audio onto the timeline and writes it to ffmpeg as f32le stereo."""

    def __init__(self, probes: Sequence[Probe], end: float, sink: IO[bytes]) -> None:
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
            with contextlib.closing(mix(self.sources, self.total)) as chunks:
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


def mix(sources: Sequence[CompositeSource], total: int) -> Generator[np.ndarray, None, None]:
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

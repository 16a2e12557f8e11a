"""The audio tap: each participant's Opus is decoded exactly once, off the event loop, into
16 kHz mono PCM for transcription and into audio levels for the active speaker."""

from __future__ import annotations

import asyncio
import logging
import math
import queue
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from media.forwarding import EncodedFrame
from media.threads import put_end, start_thread

log = logging.getLogger(__name__)

TAP_RATE = 16_000
TAP_QUEUE_FRAMES = 1_500  # 30 s of 20 ms Opus frames: the decoder thread never lags that much
SILENCE_DBFS = -127.0


@dataclass(frozen=True, slots=True)
class PcmChunk:
    """Decoded audio: int16 mono samples at 16 kHz, starting at `timestamp` (48 kHz RTP clock)."""

    samples: np.ndarray
    timestamp: int
    level_dbfs: float


PcmConsumer = Callable[[PcmChunk], None]


def level_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float32) / 32768.0))))
    return max(SILENCE_DBFS, 20 * math.log10(rms)) if rms > 0 else SILENCE_DBFS


class AudioTap:
    """Decodes one participant's audio in its own thread; consumers are called on the loop."""

    def __init__(self, participant_id: str) -> None:
        self.participant_id = participant_id
        self.level = SILENCE_DBFS
        self._peak = SILENCE_DBFS
        self.frames_decoded = 0
        self.frames_lost = 0
        self.decode_errors = 0
        self._consumers: list[PcmConsumer] = []
        self._queue: queue.Queue[EncodedFrame | None] = queue.Queue(maxsize=TAP_QUEUE_FRAMES)
        self._thread: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_consumer(self, consumer: PcmConsumer) -> None:
        self._consumers.append(consumer)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = start_thread(self._run, f"audio-tap-{self.participant_id[:8]}")

    def push(self, frame: EncodedFrame) -> None:
        """A `Publication` tap: queue an Opus frame for decoding."""
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.frames_lost += 1

    async def aclose(self) -> None:
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        await put_end(self._queue)
        await thread

    def take_peak(self) -> float:
        """The loudest chunk since the last call (for the active speaker), then start again."""
        peak, self._peak = self._peak, SILENCE_DBFS
        return peak

    def _deliver(self, chunk: PcmChunk) -> None:
        self.level = chunk.level_dbfs
        self._peak = max(self._peak, chunk.level_dbfs)
        for consumer in self._consumers:
            try:
                consumer(chunk)
            except Exception:
                log.exception("audio consumer failed for %s", self.participant_id)

    def _run(self) -> None:
        decoder = av.CodecContext.create("opus", "r")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=TAP_RATE)
        loop = self._loop
        assert loop is not None
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            try:
                decoded = decoder.decode(av.Packet(frame.data))
                pcm = [
                    r.to_ndarray().reshape(-1)
                    for d in decoded
                    for r in resampler.resample(d)
                ]
            except av.FFmpegError:
                self.decode_errors += 1
                continue
            if not pcm:
                continue
            samples = np.concatenate(pcm).astype(np.int16, copy=False)
            self.frames_decoded += 1
            chunk = PcmChunk(samples, frame.timestamp, level_dbfs(samples))
            try:
                loop.call_soon_threadsafe(self._deliver, chunk)
            except RuntimeError:
                return  # the loop is closed: the server is shutting down

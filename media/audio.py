"""The audio tap: each participant's Opus is decoded exactly once, off the event loop, into
16 kHz mono PCM for transcription and into audio levels for the active speaker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from media.forwarding import EncodedFrame
from media.threads import put_end, put_waiting, start_thread

log = logging.getLogger(__name__)

TAP_RATE = 16_000
# The decoder thread wakes at most this often and decodes what every tap queued meanwhile. A
# thread per participant woken for each 20 ms frame spent 0.3 ms of CPU per frame on wake-ups
# and handing the GIL back and forth (16 participants: 0.28 of a core, 18,000 context switches
# a second), ten times the decoding itself. The tick is at most this late to the voice detector.
DECODE_TICK_S = 0.03
DECODE_QUEUE_FRAMES = 30_000  # 30 s of a 20-participant hearing: never reached unless stuck
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


class AudioDecoder:
    """One thread decoding every tap of a hearing: Opus to 16 kHz mono PCM, a tick at a time;
    each tap's chunks reach its consumers on the loop, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.Queue[_Work | None] = queue.Queue(DECODE_QUEUE_FRAMES)
        self._thread: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.restarts = 0  # times the thread ended by a failure and was started again

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = start_thread(self._run, f"audio-decoder-{self.name[:8]}")

    def submit(self, tap: AudioTap, frame: EncodedFrame) -> bool:
        """Queue one frame of `tap`'s; False when the queue is full (the frame is lost)."""
        if self._thread is not None and self._thread.done():
            # It ended by a failure the decoding did not contain: without a thread, every
            # participant's audio would stop reaching the record, silently and for good.
            self.restarts += 1
            log.error("audio decoder of %s had stopped; started again", self.name)
            self._thread = start_thread(self._run, f"audio-decoder-{self.name[:8]}")
        try:
            self._queue.put_nowait((tap, frame))
        except queue.Full:
            return False
        return True

    async def drain(self, tap: AudioTap) -> None:
        """Until every frame `tap` queued so far has reached its consumers."""
        assert self._loop is not None and self._thread is not None
        thread = self._thread
        done = self._loop.create_future()
        await put_waiting(self._queue, (tap, done))
        # Or until the thread has ended (the server shutting down): nothing would answer.
        await asyncio.wait((done, thread), return_when=asyncio.FIRST_COMPLETED)

    async def aclose(self) -> None:
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        await put_end(self._queue)
        await thread

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        states: dict[AudioTap, _TapDecoder] = {}
        while True:
            first = self._queue.get()
            if first is None:
                return
            time.sleep(DECODE_TICK_S)  # let the tick's frames gather: one wake-up for them all
            items: list[_Work | None] = [first]
            with contextlib.suppress(queue.Empty):
                while True:
                    items.append(self._queue.get_nowait())
            ending = items[-1] is None
            delivered: list[tuple[AudioTap, PcmChunk] | asyncio.Future[None]] = []
            for item in items:
                if item is None:
                    break
                tap, work = item
                if isinstance(work, asyncio.Future):
                    # A tap's end: its decoder state goes, its waiter wakes after its chunks.
                    states.pop(tap, None)
                    delivered.append(work)
                    continue
                try:
                    state = states.get(tap)
                    if state is None:
                        state = states[tap] = _TapDecoder()
                    chunk = state.decode(tap, work)
                except Exception:
                    # Contained to this frame: the participant gets a fresh decoder and the
                    # hearing's other participants are not affected.
                    states.pop(tap, None)
                    tap.decode_errors += 1
                    if tap.decode_errors == 1 or tap.decode_errors % 1000 == 0:
                        log.exception("audio decoding failed for %s", tap.participant_id)
                    continue
                if chunk is not None:
                    delivered.append((tap, chunk))
            if delivered:
                try:
                    loop.call_soon_threadsafe(_deliver, delivered)
                except RuntimeError:
                    return  # the loop is closed: the server is shutting down
            if ending:
                return


_Work = tuple["AudioTap", "EncodedFrame | asyncio.Future[None]"]


class _TapDecoder:
    """One participant's Opus decoder and resampler (used by the decoder thread only)."""

    def __init__(self) -> None:
        self.decoder = av.CodecContext.create("opus", "r")
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=TAP_RATE)

    def decode(self, tap: AudioTap, frame: EncodedFrame) -> PcmChunk | None:
        if not frame.data:
            # An empty packet would put the decoder in draining mode: silent for good after.
            tap.decode_errors += 1
            return None
        try:
            pcm = [
                r.to_ndarray().reshape(-1)
                for d in self.decoder.decode(av.Packet(frame.data))
                for r in self.resampler.resample(d)
            ]
        except (av.FFmpegError, ValueError):
            tap.decode_errors += 1
            return None
        if not pcm:
            return None
        samples = np.concatenate(pcm).astype(np.int16, copy=False)
        tap.frames_decoded += 1
        return PcmChunk(samples, frame.timestamp, level_dbfs(samples))


def _deliver(delivered: list[tuple[AudioTap, PcmChunk] | asyncio.Future[None]]) -> None:
    for item in delivered:
        if isinstance(item, asyncio.Future):
            if not item.done():
                item.set_result(None)
        else:
            item[0].deliver(item[1])


class AudioTap:
    """One participant's decoded audio: frames go to the hearing's `AudioDecoder`, chunks come
    back to the consumers on the loop."""

    def __init__(self, participant_id: str) -> None:
        self.participant_id = participant_id
        self.level = SILENCE_DBFS
        self._peak = SILENCE_DBFS
        self.frames_decoded = 0
        self.frames_lost = 0
        self.decode_errors = 0
        self._consumers: list[PcmConsumer] = []
        self._decoder: AudioDecoder | None = None

    def add_consumer(self, consumer: PcmConsumer) -> None:
        self._consumers.append(consumer)

    def start(self, decoder: AudioDecoder) -> None:
        self._decoder = decoder

    def push(self, frame: EncodedFrame) -> None:
        """A `Publication` tap: queue an Opus frame for decoding."""
        if self._decoder is not None and not self._decoder.submit(self, frame):
            self.frames_lost += 1

    async def aclose(self) -> None:
        """Stop taking frames; return once those already taken reached the consumers."""
        decoder, self._decoder = self._decoder, None
        if decoder is not None and decoder.running:
            await decoder.drain(self)

    def take_peak(self) -> float:
        """The loudest chunk since the last call (for the active speaker), then start again."""
        peak, self._peak = self._peak, SILENCE_DBFS
        return peak

    def deliver(self, chunk: PcmChunk) -> None:
        self.level = chunk.level_dbfs
        self._peak = max(self._peak, chunk.level_dbfs)
        for consumer in self._consumers:
            try:
                consumer(chunk)
            except Exception:
                log.exception("audio consumer failed for %s", self.participant_id)

"""What a load client sends and receives with `--media`: looped speech (or a tone), a small
test card, and an aiortc peer that answers the server's offers and counts the frames it gets."""

from __future__ import annotations

import asyncio
import fractions
import random
import time
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy

from media.aiortc_adapter import capture_encoded
from web.errors import LoadTestError

AUDIO_FRAME_MS = 20
TONE_HZ = 440
TONE_RATE = 16_000
TONE_AMPLITUDE = 6_000
VIDEO_WIDTH, VIDEO_HEIGHT = 160, 120
VIDEO_FPS = 15
VIDEO_CLOCK_HZ = 90_000


def load_speech(path: Path) -> tuple[np.ndarray, int]:
    """16-bit mono PCM samples of a WAV file and their rate."""
    try:
        with wave.open(str(path)) as f:
            if f.getsampwidth() != 2 or f.getnchannels() != 1:
                raise LoadTestError(f"--speech {path}: needs 16-bit mono WAV")
            rate = f.getframerate()
            samples = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
    except (OSError, EOFError, wave.Error) as e:
        raise LoadTestError(f"--speech {path}: cannot read it as WAV: {e}") from e
    if samples.size < rate * AUDIO_FRAME_MS // 1000:
        raise LoadTestError(f"--speech {path}: shorter than one {AUDIO_FRAME_MS} ms frame")
    return samples, rate


def tone() -> tuple[np.ndarray, int]:
    """One second of a sine at `TONE_HZ`: a whole number of cycles, so it loops seamlessly."""
    t = np.arange(TONE_RATE) / TONE_RATE
    return (np.sin(2 * np.pi * TONE_HZ * t) * TONE_AMPLITUDE).astype(np.int16), TONE_RATE


class LoopedAudio(AudioStreamTrack):
    """Samples looped in real time, a 20 ms frame at a time, from `offset`."""

    def __init__(self, samples: np.ndarray, rate: int, offset: int = 0) -> None:
        super().__init__()
        self.samples, self.rate = samples, rate
        self._position = offset % samples.size
        self._pts = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        count = self.rate * AUDIO_FRAME_MS // 1000
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._t0 + self._pts / self.rate - time.monotonic()))
        chunk = np.take(self.samples, np.arange(self._position, self._position + count),
                        mode="wrap")
        self._position = (self._position + count) % self.samples.size
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += count
        return frame


class TestCard(VideoStreamTrack):
    """A small moving test card: cheap to encode, yet real VP8 for the server to forward."""

    def __init__(self) -> None:
        super().__init__()
        self._index = 0
        self._t0: float | None = None
        x = np.arange(VIDEO_WIDTH, dtype=np.uint16)
        self._luma = np.tile((x * 255 // VIDEO_WIDTH).astype(np.uint8), (VIDEO_HEIGHT, 1))

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._t0 + self._index / VIDEO_FPS - time.monotonic()))
        image = np.full((VIDEO_HEIGHT * 3 // 2, VIDEO_WIDTH), 128, dtype=np.uint8)
        image[:VIDEO_HEIGHT] = self._luma
        bar = (self._index * 4) % VIDEO_WIDTH
        image[:VIDEO_HEIGHT, bar:bar + 8] = 235  # a moving bar: every frame differs
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = self._index * VIDEO_CLOCK_HZ // VIDEO_FPS
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
        self._index += 1
        return frame


class MediaPeer:
    """A participant's aiortc peer: answers the server's offers, publishes, counts frames."""

    def __init__(self, audio: tuple[np.ndarray, int], frames: Counter[str]) -> None:
        self._audio = audio
        self._frames = frames
        self.pc: RTCPeerConnection | None = None

    async def answer(self, sdp: str) -> str:
        """The answer to the server's offer; a new connection when the last one failed."""
        if self.pc is None or self.pc.connectionState in ("closed", "failed"):
            await self._new_pc()
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def _new_pc(self) -> None:
        await self.aclose()
        pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        samples, rate = self._audio
        # Speakers start at different points of the recording, as people do.
        pc.addTrack(LoopedAudio(samples, rate, random.randrange(samples.size)))
        pc.addTrack(TestCard())

        @pc.on("track")
        def on_track(track: Any) -> None:
            # Counted as they arrive, encoded, never decoded: decoding every stream every
            # client receives (a thread per stream) kept this process seconds behind reading
            # its sockets at two hearings, and ICE consent checks waited there with the media.
            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
            kind = track.kind
            capture_encoded(receiver, lambda codec, frame: self._count(kind), lambda: None)

        self.pc = pc

    def _count(self, kind: str) -> None:
        self._frames[kind] += 1

    @property
    def connected(self) -> bool:
        return self.pc is not None and self.pc.connectionState == "connected"

    async def aclose(self) -> None:
        if self.pc is not None:
            for sender in self.pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
            await self.pc.close()
            self.pc = None

"""What a load client sends and receives with `--media`: looped speech (or a tone) and a
moving test card, both encoded once before the run (web/loadtest/encoded.py), and an aiortc
peer that answers the server's offers and counts the frames it gets without decoding them."""

from __future__ import annotations

import random
import wave
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy

from media.aiortc_adapter import capture_encoded, on_keyframe_request
from web.errors import LoadTestError
from web.loadtest.encoded import (
    PreEncodedAudio,
    PreEncodedVideo,
    VideoFormat,
    encode_opus,
    encode_video,
)

AUDIO_FRAME_MS = 20
TONE_HZ = 440
TONE_RATE = 16_000
TONE_AMPLITUDE = 6_000


def load_speech(path: Path, speaking_share: float = 1.0) -> tuple[np.ndarray, int]:
    """16-bit mono PCM samples of a WAV file and their rate, followed by the silence that
    makes the recording `speaking_share` of the loop."""
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
    pause = round(samples.size * (1 / speaking_share - 1))
    return np.concatenate([samples, np.zeros(pause, dtype=np.int16)]), rate


def tone() -> tuple[np.ndarray, int]:
    """One second of a sine at `TONE_HZ`: a whole number of cycles, so it loops seamlessly."""
    t = np.arange(TONE_RATE) / TONE_RATE
    return (np.sin(2 * np.pi * TONE_HZ * t) * TONE_AMPLITUDE).astype(np.int16), TONE_RATE


@dataclass(frozen=True)
class EncodedMedia:
    """What every media client replays: a VP8 loop, and the speech and silence as Opus."""

    video: list[tuple[bytes, bool]]
    speech: list[bytes]
    silence: list[bytes]
    fps: int

    @classmethod
    def encode(cls, audio: tuple[np.ndarray, int], video: VideoFormat) -> EncodedMedia:
        """Blocking (about a second of CPU): run it off the event loop."""
        samples, rate = audio
        return cls(encode_video(video), encode_opus(samples, rate),
                   encode_opus(np.zeros(rate, dtype=np.int16), rate), video.fps)


class MediaPeer:
    """A participant's aiortc peer: answers the server's offers, publishes, counts frames."""

    def __init__(self, media: EncodedMedia, speaks: bool, frames: Counter[str]) -> None:
        self._media = media
        self._speaks = speaks
        self._frames = frames
        self.pc: RTCPeerConnection | None = None
        self.video: PreEncodedVideo | None = None

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
        media = self._media
        audio = media.speech if self._speaks else media.silence
        # Speakers start at different points of the recording, as people do.
        pc.addTrack(PreEncodedAudio(audio, random.randrange(len(audio))))
        self.video = PreEncodedVideo(media.video, random.randrange(len(media.video)), media.fps)
        pc.addTrack(self.video)
        # A keyframe request jumps the loop to its next keyframe, as an encoder would make one.
        on_keyframe_request(pc.getSenders()[-1], self.video.request_keyframe)

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

"""The media every publisher replays: a VP8 loop and Opus frames, encoded once before any
process starts (no encoding during the measurement)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from web.loadtest.encoded import VideoFormat, encode_opus, encode_video

WIDTH, HEIGHT, FPS = 640, 360, 30
VIDEO_LOOP_S = 4
KEYFRAME_EVERY = 2 * FPS
VIDEO_BITRATE = 800_000
AUDIO_LOOP_S = 3
AUDIO_FRAME = 960  # 20 ms at 48 kHz
AUDIO_FRAME_MS = 20


@dataclass(frozen=True)
class MediaLoops:
    video: list[tuple[bytes, bool]]  # (VP8 frame, keyframe), one per 1/30 s
    audio: list[bytes]  # Opus frames of 20 ms

    @property
    def video_kbps(self) -> float:
        return sum(len(d) for d, _ in self.video) * 8 / (len(self.video) / FPS) / 1000

    @property
    def audio_kbps(self) -> float:
        return sum(len(d) for d in self.audio) * 8 / (len(self.audio) * AUDIO_FRAME_MS)


def encode_video_loop() -> list[tuple[bytes, bool]]:
    return encode_video(VideoFormat(WIDTH, HEIGHT, FPS, VIDEO_BITRATE), VIDEO_LOOP_S,
                        KEYFRAME_EVERY // FPS)


def encode_audio_loop() -> list[bytes]:
    t = np.arange(48_000 * AUDIO_LOOP_S) / 48_000
    speech_like = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    return encode_opus((speech_like * 32767).astype(np.int16), 48_000)

"""The media every publisher replays: a VP8 loop and Opus frames, encoded once before any
process starts (no encoding during the measurement)."""

from __future__ import annotations

import fractions
from dataclasses import dataclass

import av
import numpy as np

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


def _test_picture(i: int, texture: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A moving blocky texture under a sliding ramp and a white box: motion the encoder works
    for, at a bitrate a webcam at 640x360 produces."""
    dx, dy = (i * 4) % WIDTH, (i * 2) % HEIGHT
    y = (texture[dy : dy + HEIGHT, dx : dx + WIDTH] // 2 + ((xs + i * 8) % 256) // 2).astype(
        np.uint8
    )
    bx = (i * 10) % (WIDTH - 80)
    y[100:180, bx : bx + 80] = 235
    u = (128 + (ys[::2, ::2] + i) % 64).astype(np.uint8)
    v = np.full((HEIGHT // 2, WIDTH // 2), 128, np.uint8)
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(
        HEIGHT * 3 // 2, WIDTH
    )


def encode_video_loop() -> list[tuple[bytes, bool]]:
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS)
    ctx.bit_rate = VIDEO_BITRATE
    ctx.gop_size = KEYFRAME_EVERY
    ctx.qmin, ctx.qmax = 2, 56
    ctx.thread_count = 1
    # aiortc's own VP8 settings (one token partition: its packetizer marks partition 0 only).
    ctx.options = {
        "bufsize": str(VIDEO_BITRATE),
        "minrate": str(VIDEO_BITRATE),
        "maxrate": str(VIDEO_BITRATE),
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
        "overshoot-pct": "15",
    }
    rng = np.random.default_rng(1)
    texture = np.kron(
        rng.integers(0, 256, (HEIGHT // 4, WIDTH // 4), dtype=np.uint8),
        np.ones((8, 8), np.uint8),
    )
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    out: list[tuple[bytes, bool]] = []
    for i in range(VIDEO_LOOP_S * FPS):
        frame = av.VideoFrame.from_ndarray(_test_picture(i, texture, xs, ys), format="yuv420p")
        frame.pts = i
        if i % KEYFRAME_EVERY == 0:
            frame.pict_type = av.video.frame.PictureType.I
        out.extend((bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame))
    out.extend((bytes(p), bool(p.is_keyframe)) for p in ctx.encode(None))
    if len(out) != VIDEO_LOOP_S * FPS or not out[0][1]:
        raise RuntimeError(f"libvpx gave {len(out)} packets, expected {VIDEO_LOOP_S * FPS}")
    return out


def encode_audio_loop() -> list[bytes]:
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = 48_000, "stereo", "s16"
    ctx.bit_rate = 32_000
    ctx.time_base = fractions.Fraction(1, 48_000)
    t = np.arange(48_000 * AUDIO_LOOP_S) / 48_000
    speech_like = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    samples = (speech_like * 32767).astype(np.int16)
    out: list[bytes] = []
    for start in range(0, len(samples), AUDIO_FRAME):
        chunk = np.repeat(samples[start : start + AUDIO_FRAME], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48_000, start
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out[: len(samples) // AUDIO_FRAME]

"""Media encoded once and replayed: what load clients and benchmark publishers send.

Encoding live cost the load tool most of a core at two hearings (aiortc encodes VP8 and Opus
per client), on the same two cores as the server it measures. Here a VP8 loop of a moving test
card and the speech's Opus frames are made once per run; each client replays them as
`av.Packet`s, which aiortc packetizes without encoding (issue 17 part 1).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

OPUS_RATE = 48_000
AUDIO_FRAME = 960  # 20 ms at 48 kHz
AUDIO_FRAME_S = AUDIO_FRAME / OPUS_RATE
VIDEO_CLOCK_HZ = 90_000


@dataclass(frozen=True)
class VideoFormat:
    width: int = 640
    height: int = 360
    fps: int = 30
    bitrate: int = 800_000  # what a browser sends for a 640x360 webcam

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height} VP8 at {self.fps} fps, ~{self.bitrate // 1000} kbit/s"


def _picture(fmt: VideoFormat, i: int, texture: np.ndarray, xs: np.ndarray,
             ys: np.ndarray) -> np.ndarray:
    """A moving blocky texture under a sliding ramp and a white box: motion the encoder works
    for, at about the bitrate a webcam produces."""
    w, h = fmt.width, fmt.height
    dx, dy = (i * 4) % w, (i * 2) % h
    y = (texture[dy:dy + h, dx:dx + w] // 2 + ((xs + i * 8) % 256) // 2).astype(np.uint8)
    box = max(8, w // 8)
    bx = (i * 10) % (w - box)
    y[h // 4:h // 4 + box, bx:bx + box] = 235
    u = (128 + (ys[::2, ::2] + i) % 64).astype(np.uint8)
    v = np.full((h // 2, w // 2), 128, np.uint8)
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)


def encode_video(fmt: VideoFormat, seconds: int = 4, keyframe_every_s: int = 2
                 ) -> list[tuple[bytes, bool]]:
    """`seconds` of the test card as VP8 frames (payload, keyframe), one per 1/fps s, with
    aiortc's own encoder settings (one token partition: its packetizer marks partition 0)."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = fmt.width, fmt.height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, fmt.fps)
    ctx.framerate = fractions.Fraction(fmt.fps)
    ctx.bit_rate = fmt.bitrate
    ctx.gop_size = keyframe_every_s * fmt.fps
    ctx.qmin, ctx.qmax = 2, 56
    ctx.thread_count = 1
    ctx.options = {
        "bufsize": str(fmt.bitrate), "minrate": str(fmt.bitrate), "maxrate": str(fmt.bitrate),
        "cpu-used": "-6", "deadline": "realtime", "lag-in-frames": "0", "partitions": "0",
        "static-thresh": "1", "undershoot-pct": "100", "overshoot-pct": "15",
    }
    rng = np.random.default_rng(1)
    texture = np.kron(rng.integers(0, 256, (fmt.height // 4, fmt.width // 4), dtype=np.uint8),
                      np.ones((8, 8), np.uint8))
    ys, xs = np.mgrid[0:fmt.height, 0:fmt.width]
    count = seconds * fmt.fps
    out: list[tuple[bytes, bool]] = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(_picture(fmt, i, texture, xs, ys), format="yuv420p")
        frame.pts = i
        if i % ctx.gop_size == 0:
            frame.pict_type = av.video.frame.PictureType.I
        out.extend((bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame))
    out.extend((bytes(p), bool(p.is_keyframe)) for p in ctx.encode(None))
    if len(out) != count or not out[0][1]:
        raise RuntimeError(f"libvpx gave {len(out)} packets, expected {count}")
    return out


def encode_opus(samples: np.ndarray, rate: int, bitrate: int = 32_000) -> list[bytes]:
    """16-bit mono PCM at `rate` as 20 ms Opus frames (48 kHz stereo, as browsers send)."""
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE)
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = OPUS_RATE, "stereo", "s16"
    ctx.bit_rate = bitrate
    ctx.time_base = fractions.Fraction(1, OPUS_RATE)
    mono: np.ndarray[Any, np.dtype[np.int16]] = samples.astype(np.int16).reshape(1, -1)
    source = av.AudioFrame.from_ndarray(mono, format="s16", layout="mono")
    source.sample_rate = rate
    stereo = np.concatenate([f.to_ndarray().reshape(-1) for f in resampler.resample(source)]
                            + [f.to_ndarray().reshape(-1) for f in resampler.resample(None)])
    frames = stereo.size // (2 * AUDIO_FRAME)
    out: list[bytes] = []
    for i in range(frames):
        chunk: np.ndarray[Any, np.dtype[np.int16]] = stereo[
            i * 2 * AUDIO_FRAME:(i + 1) * 2 * AUDIO_FRAME].reshape(1, -1).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = OPUS_RATE, i * AUDIO_FRAME
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out[:frames]


class PreEncodedVideo(MediaStreamTrack):
    """Replays a VP8 loop at its frame rate as `av.Packet`s; a keyframe request makes the
    next frame the loop's next keyframe (which keeps the stream decodable)."""

    kind = "video"

    def __init__(self, frames: list[tuple[bytes, bool]], offset: int = 0, fps: int = 30) -> None:
        super().__init__()
        self.frames = frames
        self.fps = fps
        self.keyframes = [i for i, (_, key) in enumerate(frames) if key]
        self.position = offset % len(frames)
        self.sent = 0
        self.started: float | None = None
        self.keyframe_requests = 0
        self._jump = False
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._jump = True

    async def recv(self) -> Any:  # an av.Packet: aiortc sends it without encoding
        now = time.monotonic()
        if self.started is None:
            self.started = now
        else:
            await asyncio.sleep(max(0.0, self.started + self.sent / self.fps - now))
        if self._jump:
            self._jump = False
            if not self.frames[self.position][1]:
                self.position = next(
                    (k for k in self.keyframes if k > self.position), self.keyframes[0])
        data, _ = self.frames[self.position]
        self.position = (self.position + 1) % len(self.frames)
        packet = av.Packet(data)
        packet.pts = self.sent * (VIDEO_CLOCK_HZ // self.fps)
        packet.time_base = self._time_base
        self.sent += 1
        return packet


class PreEncodedAudio(MediaStreamTrack):
    """Replays Opus frames as 20 ms `av.Packet`s, in real time."""

    kind = "audio"

    def __init__(self, frames: list[bytes], offset: int = 0) -> None:
        super().__init__()
        self.frames = frames
        self.position = offset % len(frames)
        self.sent = 0
        self.started: float | None = None
        self._time_base = fractions.Fraction(1, OPUS_RATE)

    async def recv(self) -> Any:  # an av.Packet: aiortc sends it without encoding
        now = time.monotonic()
        if self.started is None:
            self.started = now
        else:
            await asyncio.sleep(max(0.0, self.started + self.sent * AUDIO_FRAME_S - now))
        packet = av.Packet(self.frames[self.position])
        self.position = (self.position + 1) % len(self.frames)
        packet.pts = self.sent * AUDIO_FRAME
        packet.time_base = self._time_base
        self.sent += 1
        return packet

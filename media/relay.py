"""Encoded forwarding: a participant's `Publication` fans frames out to `ForwardedTrack`s.

Frames are never decoded here. A `ForwardedTrack` is one send slot of a subscriber's peer; its
source can be switched between publishers without renegotiation, so it keeps its own RTP
timeline continuous across switches.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.counters import MediaCounters

log = logging.getLogger(__name__)

CLOCK_RATE = {"audio": 48_000, "video": 90_000}
# Timestamp step used when a slot switches source or a publisher's clock jumps implausibly.
NOMINAL_STEP = {"audio": 960, "video": 3_000}  # 20 ms of Opus, one frame at 30 fps
MAX_PLAUSIBLE_GAP_S = 60
SLOT_QUEUE_FRAMES = {"audio": 100, "video": 60}  # about two seconds of each
KEYFRAME_REQUEST_INTERVAL_S = 0.5
STALE_START_S = 0.3


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One reassembled frame as received: codec bitstream and RTP timestamp (codec clock)."""

    kind: str
    codec: str
    data: bytes
    timestamp: int
    keyframe: bool
    received_at: float


VP8_START_CODE = b"\x9d\x01\x2a"


def vp8_keyframe_header(data: bytes) -> bool:
    """RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame, whose header carries the
    start code; a frame that lost its first packets lacks it and is no keyframe."""
    return len(data) >= 10 and (data[0] & 0x01) == 0 and data[3:6] == VP8_START_CODE


def vp8_size(keyframe: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header."""
    if not vp8_keyframe_header(keyframe):
        return None
    width = int.from_bytes(keyframe[6:8], "little") & 0x3FFF
    height = int.from_bytes(keyframe[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def is_keyframe(codec: str, data: bytes) -> bool:
    if codec == "VP8":
        return vp8_keyframe_header(data)
    if codec == "H264":
        return _h264_has_idr(data)
    return True  # audio: every frame stands alone


def _h264_has_idr(data: bytes) -> bool:
    i = 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= len(data):
            return False
        if data[i + 3] & 0x1F in (5, 7):  # IDR slice or SPS
            return True
        i += 3


FrameTap = Callable[[EncodedFrame], None]


class Publication:
    """One participant's audio or video as it arrives at the server."""

    def __init__(self, participant_id: str, kind: str) -> None:
        self.participant_id = participant_id
        self.kind = kind
        self.muted = False
        # In a private consultation: forwarded to the partner only, never recorded or tapped.
        self.private = False
        self.subscribers: set[ForwardedTrack] = set()
        self.taps: list[FrameTap] = []
        self.frames_in = 0
        self.bytes_in = 0
        self.frames_withheld = 0
        self.ended = False
        self._request_keyframe: Callable[[], bool] | None = None
        self._last_keyframe_request = 0.0
        self._keyframe_wanted = False

    def attach_source(self, request_keyframe: Callable[[], bool]) -> None:
        """Called when the publisher's receiver appears; keyframe requests go through it."""
        self._request_keyframe = request_keyframe
        self.ended = False
        if self._keyframe_wanted:
            self.want_keyframe()

    def push(self, frame: EncodedFrame) -> None:
        self.frames_in += 1
        self.bytes_in += len(frame.data)
        if frame.keyframe:
            self._keyframe_wanted = False
        elif self._keyframe_wanted:
            # An earlier request may have gone nowhere (no SSRC known yet, or a lost PLI).
            self.want_keyframe()
        if not self.private:
            for tap in self.taps:
                tap(frame)
        if self.muted:
            self.frames_withheld += 1
            return
        for track in tuple(self.subscribers):
            track.offer(frame)

    def want_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most every 0.5 s."""
        if self.kind != "video":
            return
        self._keyframe_wanted = True
        now = time.monotonic()
        if self._request_keyframe is None or now - self._last_keyframe_request < (
            KEYFRAME_REQUEST_INTERVAL_S
        ):
            return
        if self._request_keyframe():
            self._last_keyframe_request = now

    def end(self) -> None:
        self.ended = True
        self._request_keyframe = None


class ForwardedTrack(MediaStreamTrack):
    """A send slot on a subscriber's peer, fed pre-encoded frames from a `Publication`.

    `recv()` returns `av.Packet`s, which aiortc's sender packetizes without re-encoding.
    A slow subscriber loses the oldest frames (counted), never blocking the publisher.
    """

    def __init__(self, kind: str, counters: MediaCounters | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.source: Publication | None = None
        self._counters = counters if counters is not None else MediaCounters()
        self._queue: collections.deque[EncodedFrame] = collections.deque(
            maxlen=SLOT_QUEUE_FRAMES[kind]
        )
        self._ready = asyncio.Event()
        self._rate = CLOCK_RATE[kind]
        self._time_base = fractions.Fraction(1, self._rate)
        self._out_ts = 0
        self._last_in_ts: int | None = None
        self._need_keyframe = kind == "video"
        self._sending = False
        self.frames_out = 0
        self.frames_dropped = 0

    def set_source(self, publication: Publication | None) -> None:
        if publication is self.source:
            return
        if self.source is not None:
            self.source.subscribers.discard(self)
        self.source = publication
        self._queue.clear()
        self._last_in_ts = None
        self._out_ts += NOMINAL_STEP[self.kind]
        if publication is not None:
            publication.subscribers.add(self)
            if self.kind == "video":
                self._need_keyframe = True
                publication.want_keyframe()

    def request_keyframe(self) -> None:
        """The subscriber lost the picture (PLI/FIR): pass the request to the publisher."""
        if self.source is not None:
            self.source.want_keyframe()

    def offer(self, frame: EncodedFrame) -> None:
        if self._need_keyframe:
            if not frame.keyframe:
                self.frames_dropped += 1
                return
            self._need_keyframe = False
        if len(self._queue) == self._queue.maxlen:
            self.frames_dropped += 1
            if self.kind == "video":
                # Dropping a reference frame breaks every later frame until a keyframe.
                self._queue.clear()
                self._need_keyframe = True
                self.request_keyframe()
                if not frame.keyframe:
                    return
                self._need_keyframe = False
        self._queue.append(frame)
        self._ready.set()

    def _drop_stale(self) -> None:
        """The sender starts once the subscriber is connected; what queued before is old news
        and would arrive as a burst: start from a fresh keyframe instead."""
        if self._queue and time.monotonic() - self._queue[0].received_at > STALE_START_S:
            self.frames_dropped += len(self._queue)
            self._queue.clear()
            if self.kind == "video":
                self._need_keyframe = True
                self.request_keyframe()

    def _next_timestamp(self, in_ts: int) -> int:
        if self._last_in_ts is not None:
            delta = in_ts - self._last_in_ts
            if 0 < delta <= MAX_PLAUSIBLE_GAP_S * self._rate:
                self._out_ts += delta
            elif delta != 0:
                self._out_ts += NOMINAL_STEP[self.kind]
        self._last_in_ts = in_ts
        return self._out_ts

    async def recv(self) -> av.Packet:
        if not self._sending:
            self._sending = True
            self._drop_stale()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame = self._queue.popleft()
        packet = av.Packet(frame.data)
        packet.pts = self._next_timestamp(frame.timestamp)
        packet.time_base = self._time_base
        self.frames_out += 1
        self._counters.frames_forwarded += 1
        self._counters.bytes_forwarded += len(frame.data)
        return packet

    def stop(self) -> None:
        self.set_source(None)
        super().stop()
        self._ready.set()

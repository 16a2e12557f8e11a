"""Encoded forwarding: a participant's `Publication` fans frames out to `ForwardedTrack`s.

Frames are never decoded here. A `ForwardedTrack` is one send slot of a subscriber's peer; its
source can be switched between publishers without renegotiation, so it keeps its own RTP
timeline continuous across switches.

Browsers publish VP8 in three temporal layers (L1T3): the base layer at a quarter of the frame
rate refers only to itself, the second layer adds a quarter and the third the other half. A
slot may forward only the lower layers (`ForwardedTrack.top_layer`): the frames left out are
referred to by no frame that is sent, and aiortc packetizes what is sent with its own
continuous sequence numbers and picture ids, so the subscriber sees a lower frame rate, not a
loss. Going up waits for a frame that refers to nothing of the layer it adds (a layer-sync
frame, or a keyframe). The taps (recording, the audio tap) get every frame.
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
# One subscriber's lost pictures reach the publisher at most this often: a subscriber on a bad
# link must not make every publisher send keyframes (which cost every other subscriber too).
SLOT_KEYFRAME_REQUEST_INTERVAL_S = 2.0
STALE_START_S = 0.3
# A slot whose oldest frame waited this long (the subscriber's link is paced below the video's
# rate) starts again from a keyframe instead of showing ever later pictures.
MAX_VIDEO_DELAY_S = 1.0
RATE_WINDOW_S = 1.0
PAUSE_S = 1.0  # a slot that sent nothing this long (held, muted) resumes after it
LAYERS = 3  # VP8 temporal layers a publisher may send (L1T3); frames without one are layer 0
TOP_LAYER = LAYERS - 1
# What a frame costs on the wire beyond its bytes: RTP, SRTP, UDP and IP headers per packet.
PACKET_BYTES, PACKET_OVERHEAD_BYTES = 1_100, 50


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One reassembled frame as received: codec bitstream and RTP timestamp (codec clock);
    its VP8 temporal layer and whether it is a layer-sync frame (`media.aiortc_adapter`)."""

    kind: str
    codec: str
    data: bytes
    timestamp: int
    keyframe: bool
    received_at: float
    layer: int = 0
    layer_sync: bool = False


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
        # Whether the court hears this publication: only then do the taps (recording, the
        # trial record, speaker levels) receive it. Off until the hearing's routing says so,
        # so that nothing is recorded before the rules have been applied.
        self.on_record = False
        self.subscribers: set[ForwardedTrack] = set()
        self.taps: list[FrameTap] = []
        self.frames_in = 0
        self.bytes_in = 0
        self.bps = 0.0  # on the wire, over the last second or so
        # The same, and frames a second, of each temporal layer (all in layer 0 when the
        # publisher sends no layers).
        self.layer_bps = [0.0] * LAYERS
        self.layer_fps = [0.0] * LAYERS
        self.keyframe_requests = 0  # sent to the publisher
        self.last_frame_at: float | None = None  # monotonic
        self.ended = False
        self._window_start: float | None = None
        self._window_bytes = [0] * LAYERS
        self._window_frames = [0] * LAYERS
        self._request_keyframe: Callable[[], bool] | None = None
        self._last_keyframe_request = 0.0
        self._keyframe_wanted = False
        # Waiting for the next keyframe (a still picture of this moment: media/stills.py).
        self._keyframe_waiters: list[asyncio.Future[EncodedFrame]] = []

    def attach_source(self, request_keyframe: Callable[[], bool]) -> None:
        """Called when the publisher's receiver appears; keyframe requests go through it."""
        self._request_keyframe = request_keyframe
        self.ended = False
        if self._keyframe_wanted:
            self.want_keyframe()

    def push(self, frame: EncodedFrame) -> None:
        self.frames_in += 1
        self.last_frame_at = frame.received_at
        size = len(frame.data)
        self.bytes_in += size
        self._measure(size + PACKET_OVERHEAD_BYTES * (size // PACKET_BYTES + 1),
                      min(frame.layer, TOP_LAYER), frame.received_at)
        if frame.keyframe:
            self._keyframe_wanted = False
            for waiter in self._keyframe_waiters:
                if not waiter.done():
                    waiter.set_result(frame)
            self._keyframe_waiters.clear()
        elif self._keyframe_wanted:
            # An earlier request may have gone nowhere (no SSRC known yet, or a lost PLI).
            self.want_keyframe()
        if self.on_record:
            for tap in self.taps:
                tap(frame)
        for track in tuple(self.subscribers):
            track.offer(frame)

    def _measure(self, wire_bytes: int, layer: int, now: float) -> None:
        if self._window_start is None:
            self._window_start = now
        self._window_bytes[layer] += wire_bytes
        self._window_frames[layer] += 1
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW_S:
            self.layer_bps = [b * 8 / elapsed for b in self._window_bytes]
            self.layer_fps = [n / elapsed for n in self._window_frames]
            self.bps = sum(self.layer_bps)
            self._window_start = now
            self._window_bytes, self._window_frames = [0] * LAYERS, [0] * LAYERS

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
            self.keyframe_requests += 1

    async def next_keyframe(self, wait_s: float) -> EncodedFrame | None:
        """The next keyframe to arrive (one is asked for now), or None after `wait_s`."""
        waiter: asyncio.Future[EncodedFrame] = asyncio.get_running_loop().create_future()
        self._keyframe_waiters.append(waiter)
        self.want_keyframe()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), wait_s)
        except TimeoutError:
            return None
        finally:
            if waiter in self._keyframe_waiters:
                self._keyframe_waiters.remove(waiter)

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
        # Held back: the subscriber's link cannot carry this video now (media.downlink).
        self.held = False
        # The highest temporal layer the subscriber's link carries (media.downlink), and the
        # highest it is sent now: going up waits for a frame that allows it.
        self.top_layer = TOP_LAYER
        self._layer = TOP_LAYER
        self.frames_thinned = 0  # left out for the lower frame rate
        self._last_keyframe_request = float("-inf")
        self.frames_out = 0
        self.frames_dropped = 0
        self.last_sent_at = float("-inf")  # monotonic time of the last frame handed out
        self.sending_since = float("-inf")  # when it last began sending after a pause

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
                if not self.held:  # a held slot sends nothing: no keyframe for everyone
                    publication.want_keyframe()

    def request_keyframe(self) -> None:
        """The subscriber lost the picture (PLI/FIR): pass the request to the publisher, at
        most every 2 s for this slot."""
        now = time.monotonic()
        if self.source is None or self.held or (
            now - self._last_keyframe_request < SLOT_KEYFRAME_REQUEST_INTERVAL_S
        ):
            return
        self._last_keyframe_request = now
        self.source.want_keyframe()

    def hold(self, held: bool) -> None:
        """Hold this video back (nothing is sent), or give it back from a fresh keyframe."""
        if held == self.held or self.kind != "video":
            return
        self.held = held
        self._queue.clear()
        self._need_keyframe = True
        if not held and self.source is not None:
            self.source.want_keyframe()

    def set_top_layer(self, layer: int) -> None:
        """Forward temporal layers up to `layer` only: lower at once, higher from the next
        frame that allows it."""
        self.top_layer = layer
        self._layer = min(self._layer, layer)

    def _thinned(self, frame: EncodedFrame) -> bool:
        """Whether `frame` is left out for the slot's lower frame rate. A keyframe refreshes
        every reference: all layers up to the top may follow it. A layer-sync frame of the
        next layer up refers only to the layers below: its layer may follow."""
        if frame.keyframe:
            self._layer = self.top_layer
        elif frame.layer == self._layer + 1 <= self.top_layer and frame.layer_sync:
            self._layer = frame.layer
        return frame.layer > self._layer

    def offer(self, frame: EncodedFrame) -> None:
        if self.held:
            self.frames_dropped += 1
            return
        if self._need_keyframe:
            if not frame.keyframe:
                self.frames_dropped += 1
                # Asked already, but that request may have been lost or held back by this
                # slot's limit: ask again once the limit allows (a subscriber that lost the
                # picture never recovers without one).
                self.request_keyframe()
                return
            self._need_keyframe = False
        if self._thinned(frame):
            self.frames_thinned += 1
            return
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

    def _skip_to_keyframe(self) -> bool:
        """The oldest frame waited too long: go on from the newest keyframe queued if it is
        fresh enough (True: send it now), else drop everything and wait for a new one."""
        now = time.monotonic()
        keys = [i for i, frame in enumerate(self._queue)
                if frame.keyframe and now - frame.received_at <= MAX_VIDEO_DELAY_S]
        drop = keys[-1] if keys else len(self._queue)
        for _ in range(drop):
            self._queue.popleft()
        self.frames_dropped += drop
        if not keys:
            self._need_keyframe = True
            self.request_keyframe()
        return bool(keys)

    def _next_timestamp(self, in_ts: int) -> int:
        if self._last_in_ts is not None:
            delta = in_ts - self._last_in_ts
            if 0 < delta <= MAX_PLAUSIBLE_GAP_S * self._rate:
                self._out_ts += delta
            elif delta != 0:
                self._out_ts += NOMINAL_STEP[self.kind]
        self._last_in_ts = in_ts
        return self._out_ts

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        if not self._sending:
            self._sending = True
            self._drop_stale()
        while True:
            while not self._queue:
                if self.readyState != "live":
                    raise MediaStreamError
                self._ready.clear()
                await self._ready.wait()
            if self.kind == "video" and (
                time.monotonic() - self._queue[0].received_at > MAX_VIDEO_DELAY_S
            ):
                if not self._skip_to_keyframe():
                    continue  # nothing fresh is left: wait for the keyframe asked for
            break
        frame = self._queue.popleft()
        packet = av.Packet(frame.data)
        packet.pts = self._next_timestamp(frame.timestamp)
        packet.time_base = self._time_base
        self.frames_out += 1
        now = time.monotonic()
        if now - self.last_sent_at > PAUSE_S:
            self.sending_since = now
        self.last_sent_at = now
        self._counters.frames_forwarded += 1
        self._counters.bytes_forwarded += len(frame.data)
        return packet

    def stop(self) -> None:
        self.set_source(None)
        super().stop()
        self._ready.set()

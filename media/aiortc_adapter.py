"""The one place that reaches into aiortc internals. Written for aiortc 1.16 (see pyproject pin).

Why: aiortc has no public way to get a receiver's encoded frames (maintainers: aiortc issues
#449, #55, #859) and no way to pass a subscriber's keyframe request through a sender that
sends pre-encoded packets (the sender only sets a flag its encoder would read). aioice binds
host candidates on every interface but loopback and on random ports, with no setting for either
(aioice issues #75, #487). A forwarding server needs all three, so this module:

- replaces a receiver's decoder queue with a sink that gets each reassembled frame on the event
  loop, and stops aiortc's decoder thread from starting for that receiver (no decoding at all);
- redirects a sender's keyframe requests (PLI/FIR) to a callback;
- asks a receiver's remote sender for a keyframe (RTCP PLI);
- reports the RTCP sender reports a receiver gets (NTP/RTP pairs), which put the encoded frames
  on the sender's wall clock for recording;
- restricts host candidates to configured addresses and UDP ports to a configured range.

Every access is checked at import time so that an incompatible aiortc fails loudly, at once.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
from collections.abc import Callable
from typing import Any

import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver as _receiver_module
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtcpSrPacket

from media.errors import UnsupportedAiortc

SUPPORTED_AIORTC = ("1.16",)
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"

if not aiortc.__version__.startswith(SUPPORTED_AIORTC):
    raise UnsupportedAiortc(
        f"media.aiortc_adapter was written for aiortc {SUPPORTED_AIORTC}, "
        f"found {aiortc.__version__}"
    )
for _owner, _name in (
    (_receiver_module, "decoder_worker"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCRtpSender, "_send_keyframe"),
    (aioice.ice, "get_host_addresses"),
):
    if not hasattr(_owner, _name):
        raise UnsupportedAiortc(f"aiortc/aioice no longer has {_name}")
if not hasattr(_receiver_module.TimestampMapper(), "_origin"):
    raise UnsupportedAiortc("aiortc's TimestampMapper no longer keeps _origin")

EncodedFrameCallback = Callable[[str, JitterFrame], None]


class EncodedFrameSink:
    """Stands in for a receiver's decoder queue: frames go to a callback, on the event loop.

    aiortc puts `(codec, JitterFrame)` here from `_handle_rtp_packet` (on the loop) and `None`
    when the receiver stops.
    """

    def __init__(self, on_frame: EncodedFrameCallback, on_end: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_end = on_end

    def put(self, item: Any) -> None:
        if item is None:
            self._on_end()
            return
        codec, frame = item
        self._on_frame(codec.name, frame)


_original_decoder_worker = _receiver_module.decoder_worker


def _decoder_worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
    if isinstance(input_q, EncodedFrameSink):
        return  # frames are taken encoded; the receiver needs no decoder thread
    _original_decoder_worker(loop, input_q, output_q, decode_error)


_receiver_module.decoder_worker = _decoder_worker


def capture_encoded(
    receiver: RTCRtpReceiver, on_frame: EncodedFrameCallback, on_end: Callable[[], None]
) -> None:
    """Take `receiver`'s frames encoded. Call from the `track` event, before media starts."""
    if getattr(receiver, "_RTCRtpReceiver__started", False):
        raise UnsupportedAiortc("capture_encoded must be called before the receiver starts")
    setattr(receiver, _DECODER_QUEUE, EncodedFrameSink(on_frame, on_end))


_pending_rtcp: set[asyncio.Future[None]] = set()


def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI to the publisher behind `receiver`; False if its SSRC is not known yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    for source in sources:
        task = asyncio.ensure_future(receiver._send_rtcp_pli(source.source))
        _pending_rtcp.add(task)
        task.add_done_callback(_pending_rtcp.discard)
    return True


NTP_UNIX_EPOCH_S = 2_208_988_800
SenderReportCallback = Callable[[float, int], None]


def on_sender_report(receiver: RTCRtpReceiver, callback: SenderReportCallback) -> None:
    """Call `callback(sender_wall_time_s, rtp_timestamp)` for each RTCP sender report.

    The receiver hands frames on with timestamps counted from its first frame's (its
    `TimestampMapper`); the report's RTP timestamp is put on that same count.
    """
    original = receiver._handle_rtcp_packet
    mapper = getattr(receiver, _TIMESTAMP_MAPPER)

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and mapper._origin is not None:
            ntp = packet.sender_info.ntp_timestamp
            wall = (ntp >> 32) - NTP_UNIX_EPOCH_S + (ntp & 0xFFFFFFFF) / 2**32
            callback(wall, packet.sender_info.rtp_timestamp - mapper._origin)
        await original(packet)

    # The DTLS transport looks the handler up on the instance for every packet.
    receiver._handle_rtcp_packet = handle  # type: ignore[method-assign]


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` when the subscriber behind `sender` asks for a keyframe (PLI/FIR)."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


# -- ICE: host addresses and UDP port range ---------------------------------------------------

_original_get_host_addresses = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: list[str] | None) -> None:
    """Offer only `addresses` as host candidates (None: aioice's own choice)."""
    if not addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    fixed = list(addresses)

    def _configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = _configured


class UdpPortRange:
    """Binds aioice's host-candidate sockets (port 0) inside [low, high] on one event loop.

    aioice calls `loop.create_datagram_endpoint(..., local_addr=(address, 0))`; the loop's
    method is wrapped so that port 0 becomes the next free port of the range.
    """

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._next = itertools.cycle(range(low, high + 1))
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        original = loop.create_datagram_endpoint
        span = self.high - self.low + 1

        async def create_datagram_endpoint(
            protocol_factory: Any, local_addr: Any = None, **kwargs: Any
        ) -> Any:
            if local_addr is None or local_addr[1] != 0 or kwargs.get("sock") is not None:
                return await original(protocol_factory, local_addr=local_addr, **kwargs)
            for _ in range(span):
                port = next(self._next)
                try:
                    return await original(
                        protocol_factory, local_addr=(local_addr[0], port), **kwargs
                    )
                except OSError as e:
                    if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                        raise
            raise OSError(errno.EADDRINUSE, f"no free UDP port in {self.low}-{self.high}")

        loop.create_datagram_endpoint = create_datagram_endpoint  # type: ignore[method-assign,assignment]
        self._loop = loop

    def uninstall(self) -> None:
        if self._loop is not None:
            # Dropping the instance attribute brings back the class's own method.
            vars(self._loop).pop("create_datagram_endpoint", None)
            self._loop = None


"""The one place that reaches into aiortc internals. Written for aiortc 1.16 (see pyproject pin).

Why: aiortc has no public way to get a receiver's encoded frames (maintainers: aiortc issues
#449, #55, #859) and no way to pass a subscriber's keyframe request through a sender that
sends pre-encoded packets (the sender only sets a flag its encoder would read). aioice binds
host candidates on every interface but loopback and on random ports, with no setting for either
(aioice issues #75, #487). A forwarding server needs all three, so this module:

- replaces a receiver's decoder queue with a sink that gets each reassembled frame on the event
  loop, and stops aiortc's decoder thread from starting for that receiver (no decoding at all);
- takes a receiver's audio packet by packet, each Opus packet a frame (aiortc's audio jitter
  buffer drops everything after a lost packet until 16 have piled up: aiortc issue #543);
- keeps each VP8 frame's temporal layer, which aiortc's depayloading strips with the payload
  descriptor: a subscriber on a weak link is sent fewer layers (`media.downlink`);
- redirects a sender's keyframe requests (PLI/FIR) to a callback;
- asks a receiver's remote sender for a keyframe (RTCP PLI);
- reports the RTCP sender reports a receiver gets (NTP/RTP pairs), which put the encoded frames
  on the sender's wall clock for recording;
- reports what a subscriber says of its downlink (receiver reports' loss and round trip),
  and lets the server hold a packet to a subscriber before it is encrypted and sent (pacing);
- restricts host candidates to configured addresses and UDP ports to a configured range;
- keeps ICE consent (RFC 7675) for as long as the peer answers within 30 s, however late each
  answer: aioice gives each consent check one try of 0.5 s and drops the connection after six
  misses, so a peer (or this process) a second behind on its socket lost every connection 30 s
  after it was made, media flowing all along.

Every access is checked at import time so that an incompatible aiortc fails loudly, at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import inspect
import itertools
import logging
import random
from collections.abc import Callable
from typing import Any

import aioice.ice
import aioice.stun
import aiortc
import aiortc.rtcrtpreceiver as _receiver_module
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender
from aiortc import clock as aiortc_clock
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import MAX_MISORDER, JitterBuffer, JitterFrame
from aiortc.rtp import (
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
)

from media.errors import UnsupportedAiortc

SUPPORTED_AIORTC = ("1.16",)
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"

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
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCDtlsTransport, "_send_rtp"),
    (aioice.ice, "get_host_addresses"),
    (aioice.ice, "CONSENT_INTERVAL"),
    (aioice.ice, "CONSENT_FAILURES"),
    (aioice.ice.Connection, "query_consent"),
    (aioice.ice.Connection, "build_request"),
):
    if not hasattr(_owner, _name):
        raise UnsupportedAiortc(f"aiortc/aioice no longer has {_name}")
_SENDER_FIELDS = ("_ssrc", "_rtx_ssrc", "__rtx_payload_type", "__rtx_sequence_number",
                  "__rtp_header_extensions_map", "__mid")
if not all(f"self.{name} = " in inspect.getsource(RTCRtpSender)
           for name in _SENDER_FIELDS):
    raise UnsupportedAiortc("aiortc's RTCRtpSender no longer keeps " + ", ".join(_SENDER_FIELDS))
if not hasattr(_receiver_module.TimestampMapper(), "_origin"):
    raise UnsupportedAiortc("aiortc's TimestampMapper no longer keeps _origin")
_receiver_source = inspect.getsource(RTCRtpReceiver)
if not ("self.__jitter_buffer = JitterBuffer(" in _receiver_source
        and "self.__jitter_buffer.add(packet)" in _receiver_source):
    raise UnsupportedAiortc("aiortc's RTCRtpReceiver no longer keeps __jitter_buffer")
if VpxPayloadDescriptor.parse(b"\x80\x20\x60")[0].tid != (1, 1):
    raise UnsupportedAiortc("aiortc's VpxPayloadDescriptor no longer reads the TID as (tid, y)")

if "self._nominated" not in inspect.getsource(aioice.ice.Connection):
    raise UnsupportedAiortc("aioice's Connection no longer keeps _nominated")
if "self._connection = " not in inspect.getsource(aiortc.RTCIceTransport):
    raise UnsupportedAiortc("aiortc's RTCIceTransport no longer keeps _connection")

log = logging.getLogger(__name__)


class CapturedFrame(JitterFrame):
    """A reassembled frame and its VP8 temporal layer: 0 (the base) when the publisher sends
    no layers, or for any other codec; `layer_sync`: it refers to no earlier frame of its own
    layer or above it, so a subscriber may start receiving its layer here."""

    def __init__(self, data: bytes, timestamp: int, layer: int = 0,
                 layer_sync: bool = False) -> None:
        super().__init__(data, timestamp)
        self.layer = layer
        self.layer_sync = layer_sync


EncodedFrameCallback = Callable[[str, CapturedFrame], None]
# Frames whose packets came but which were never completed (lost packets) leave their
# layer here: only this many of the latest are kept.
LAYERS_KEPT = 64


class TemporalLayers:
    """Stands in for a video receiver's jitter buffer: reads each packet's VP8 payload
    descriptor (aiortc's depayloading keeps only the bitstream) for its temporal layer, and
    hands each frame on with it. Every packet of a frame carries the same layer."""

    def __init__(self, buffer: JitterBuffer) -> None:
        self._buffer = buffer
        self._layers: dict[int, tuple[int, bool]] = {}  # RTP timestamp -> (layer, sync)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        try:
            tid = VpxPayloadDescriptor.parse(packet.payload)[0].tid if packet.payload else None
        except ValueError:
            tid = None  # aiortc drops such a packet before it gets here
        if tid is not None and packet.timestamp not in self._layers:
            self._layers[packet.timestamp] = (tid[0], bool(tid[1]))
            if len(self._layers) > LAYERS_KEPT:
                del self._layers[next(iter(self._layers))]
        pli, frame = self._buffer.add(packet)
        if frame is None:
            return pli, None
        layer, sync = self._layers.pop(frame.timestamp, (0, False))
        return pli, CapturedFrame(frame.data, frame.timestamp, layer, sync)


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
        if not isinstance(frame, CapturedFrame) or codec.name != "VP8":
            frame = CapturedFrame(frame.data, frame.timestamp)  # the base layer
        self._on_frame(codec.name, frame)


_original_decoder_worker = _receiver_module.decoder_worker


def _decoder_worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
    if isinstance(input_q, EncodedFrameSink):
        return  # frames are taken encoded; the receiver needs no decoder thread
    _original_decoder_worker(loop, input_q, output_q, decode_error)


_receiver_module.decoder_worker = _decoder_worker


class AudioPackets:
    """Stands in for a receiver's audio jitter buffer: each Opus packet is a whole frame, taken
    as it arrives. aiortc's buffer holds what follows a lost packet until 16 have piled up and
    then drops them all (aiortc issue #543): on a link losing 15 % the record kept a third of
    the speech. Here a loss costs that packet alone; a packet arriving after a later one (or
    twice) comes too late for the frames already passed on and is dropped. One far behind
    (as aiortc's buffer judges it) is the sender starting its sequence again: taken."""

    def __init__(self) -> None:
        self._last: int | None = None
        self.late = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None and not 0 < (seq - self._last) % 65_536 < 32_768 \
                and (self._last - seq) % 65_536 < MAX_MISORDER:
            self.late += 1
            return False, None
        self._last = seq
        return False, JitterFrame(getattr(packet, "_data", b""), packet.timestamp)


def capture_encoded(
    receiver: RTCRtpReceiver, on_frame: EncodedFrameCallback, on_end: Callable[[], None]
) -> None:
    """Take `receiver`'s frames encoded, video with its temporal layer. Call from the `track`
    event, before media starts."""
    if getattr(receiver, "_RTCRtpReceiver__started", False):
        raise UnsupportedAiortc("capture_encoded must be called before the receiver starts")
    setattr(receiver, _DECODER_QUEUE, EncodedFrameSink(on_frame, on_end))
    if receiver.track.kind == "audio":
        setattr(receiver, _JITTER_BUFFER, AudioPackets())
    else:
        setattr(receiver, _JITTER_BUFFER, TemporalLayers(getattr(receiver, _JITTER_BUFFER)))


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


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The SSRCs `sender` sends media and retransmissions with."""
    return sender._ssrc, sender._rtx_ssrc


# Set while a subscriber's RTCP is being handled: what is sent then (a NACK's retransmission,
# with or without RTX) goes from the transport's receive loop, which must never wait.
ANSWERING_FEEDBACK: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "answering_feedback", default=False)


def on_subscriber_feedback(
    sender: RTCRtpSender, on_report: Callable[[int, float, float | None], None],
) -> None:
    """Call `on_report(ssrc, fraction_lost, rtt_s)` for each receiver report on what `sender`
    sends, on its media stream or its retransmission stream (the fraction of its packets lost
    since the previous report, 0-1, and the round trip it measures, None before it can).
    REMB is not read: receivers start it low and raise it slowly (aiortc's stayed near
    400 kbit/s on an unlimited link while 2.4 Mbit/s arrived), so acting on it would hold
    back video from healthy links."""
    original = sender._handle_rtcp_packet
    ssrcs = (sender._ssrc, sender._rtx_ssrc)

    async def handle(packet: Any) -> None:
        token = ANSWERING_FEEDBACK.set(True)
        try:
            await _handle(packet)
        finally:
            ANSWERING_FEEDBACK.reset(token)

    async def _handle(packet: Any) -> None:
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc in ssrcs:
                    # No sender report goes out on the retransmission stream: no round trip.
                    rtt = (_round_trip(report.lsr, report.dlsr) if report.ssrc == ssrcs[0]
                           else None)
                    on_report(report.ssrc, report.fraction_lost / 256, rtt)
        await original(packet)

    # The DTLS transport's router looks the handler up on the instance for every packet.
    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


def _round_trip(lsr: int, dlsr: int) -> float | None:
    """RFC 3550 6.4.1: arrival time less the sender report's time and the receiver's delay,
    all in the middle 32 bits of NTP time (1/65536 s)."""
    if lsr == 0:
        return None
    arrival = (aiortc_clock.current_ntp_time() >> 16) & 0xFFFFFFFF
    rtt = ((arrival - lsr - dlsr) & 0xFFFFFFFF) / 65536
    return rtt if rtt < 60 else None  # a report from before a clock step: no measure


PADDING_BYTES = 255  # the most one RTP packet's padding can say it has


def padding_packet(sender: RTCRtpSender) -> bytes | None:
    """A padding-only packet on `sender`'s retransmission stream, as browsers send to probe
    a link: receivers count it (in their receiver reports and bitrate estimates) and drop
    it. None when no retransmission stream was negotiated. Takes the next RTX sequence
    number, so that it never collides with a real retransmission."""
    payload_type = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
    if payload_type is None:
        return None
    sequence = sender._RTCRtpSender__rtx_sequence_number  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtx_sequence_number = (sequence + 1) & 0xFFFF  # type: ignore[attr-defined]
    packet = RtpPacket(payload_type=payload_type, sequence_number=sequence,
                       ssrc=sender._rtx_ssrc)
    packet.padding_size = PADDING_BYTES
    packet.extensions.abs_send_time = (aiortc_clock.current_ntp_time() >> 14) & 0x00FFFFFF
    packet.extensions.mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
    extensions = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
    return packet.serialize(extensions)


async def send_padding(sender: RTCRtpSender) -> bool:
    """Send one padding packet (see `padding_packet`) on `sender`'s transport; False when
    none can be sent (no retransmission stream, or not connected)."""
    data = padding_packet(sender)
    if data is None:
        return False
    try:
        await sender.transport._send_rtp(data)
    except ConnectionError:
        return False
    return True


def is_padding(data: bytes) -> bool:
    """An RTP packet with the padding bit and nothing but padding after its header: a probe
    (real retransmissions never carry padding here)."""
    return bool(data[0] & 0x20) and len(data) > 12 and data[-1] == PADDING_BYTES


_HOOKED = "_tingshen_before_send"


DROP = False  # what `before_send` returns for a packet that is not to be sent at all


def hook_sends(transport: RTCDtlsTransport, before_send: Callable[[bytes, bool], Any]) -> None:
    """Call `before_send(data, rtcp)` with every RTP and RTCP packet `transport` is about to
    encrypt and send: None sends it now, an awaitable once that is done, DROP not at all.
    Hooking the same transport again replaces the hook.

    Retransmissions are sent from the transport's receive loop (a NACK is answered inline):
    a hook that makes them wait stops everything the participant sends from being read."""
    if getattr(transport, _HOOKED, None) is None:
        original = transport._send_rtp

        async def send(data: bytes) -> None:
            wait = getattr(transport, _HOOKED)(data, is_rtcp(data))
            if wait is DROP:
                return
            if wait is not None:
                await wait
            await original(data)

        transport._send_rtp = send  # type: ignore[method-assign]
    setattr(transport, _HOOKED, before_send)


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



# -- ICE: consent freshness -------------------------------------------------------------------

# A consent check's STUN transaction is sent at 0, 0.5, 1.5 and 3.5 s and ends at 7.5 s: an
# answer up to that late still counts.
CONSENT_RETRANSMISSIONS = 3
_CONSENT_EXPIRED = "_tingshen_consent_expired"


def consent_expired(pc: aiortc.RTCPeerConnection) -> bool:
    """Whether `pc` lost its ICE consent (aiortc then closes the connection: it never says
    failed)."""
    return any(
        getattr(t.sender.transport.transport._connection, _CONSENT_EXPIRED, False)
        for t in pc.getTransceivers() if t.sender.transport is not None
    )


async def _query_consent(self: aioice.ice.Connection) -> None:
    """RFC 7675: a check every 4-6 s; consent expires when no check has been answered for
    30 s (aioice's interval times its failure count), however late each answer came."""
    assert self.remote_password is not None
    key = self.remote_password.encode("utf8")
    interval = aioice.ice.CONSENT_INTERVAL
    expiry = interval * aioice.ice.CONSENT_FAILURES
    loop = asyncio.get_running_loop()
    answered = loop.time()
    checks: set[asyncio.Task[None]] = set()

    async def check(pair: Any, request: Any) -> None:
        nonlocal answered
        try:
            await pair.protocol.request(request, pair.remote_addr, integrity_key=key,
                                        retransmissions=CONSENT_RETRANSMISSIONS)
        except (aioice.stun.TransactionError, ConnectionError):
            return  # no answer, or the connection closed meanwhile
        answered = loop.time()

    try:
        while True:
            await asyncio.sleep(interval * (0.8 + 0.4 * random.random()))
            if loop.time() - answered > expiry:
                log.info("ICE consent expired: no check answered for %.0f s", expiry)
                setattr(self, _CONSENT_EXPIRED, True)
                self._query_consent_task = None
                await self.close()
                return
            for pair in self._nominated.values():
                task = asyncio.create_task(check(pair, self.build_request(pair, nominate=False)))
                checks.add(task)
                task.add_done_callback(checks.discard)
    finally:
        for task in checks:
            task.cancel()


aioice.ice.Connection.query_consent = _query_consent  # type: ignore[method-assign]

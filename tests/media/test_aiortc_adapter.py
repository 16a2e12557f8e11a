"""The adapter to aiortc internals, against real aiortc peers on loopback."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from aiortc.codecs import depayload
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from media.aiortc_adapter import (
    AudioPackets,
    CapturedFrame,
    TemporalLayers,
    UdpPortRange,
    capture_encoded,
    on_keyframe_request,
    request_keyframe,
    restrict_host_addresses,
)
from media.forwarding import is_keyframe


@pytest.fixture(autouse=True)
def loopback_only():
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses(None)


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


async def test_encoded_frames_are_captured_without_a_decoder():
    sender, receiver_pc = new_pc(), new_pc()
    sender.addTrack(VideoStreamTrack())
    frames: list[tuple[str, bytes]] = []
    layers: set[int] = set()
    ended = asyncio.Event()
    receivers = []

    def on_frame(codec: str, frame: CapturedFrame) -> None:
        frames.append((codec, frame.data))
        layers.add(frame.layer)

    @receiver_pc.on("track")
    def on_track(track):
        receiver = next(t.receiver for t in receiver_pc.getTransceivers()
                        if t.receiver.track is track)
        receivers.append(receiver)
        capture_encoded(receiver, on_frame, ended.set)

    try:
        await connect(sender, receiver_pc)
        for _ in range(100):
            if len(frames) > 20:
                break
            await asyncio.sleep(0.1)
        assert len(frames) > 20
        assert {codec for codec, _ in frames} == {"VP8"}
        # aiortc sends no temporal layers: every frame is of the base layer.
        assert layers == {0}
        assert is_keyframe("VP8", frames[0][1])
        thread = receivers[0]._RTCRtpReceiver__decoder_thread
        assert thread is not None and not thread.is_alive()  # started, returned at once
        keyframes_before = sum(is_keyframe("VP8", d) for _, d in frames)
        assert request_keyframe(receivers[0]) is True
        for _ in range(50):
            if sum(is_keyframe("VP8", d) for _, d in frames) > keyframes_before:
                break
            await asyncio.sleep(0.1)
        assert sum(is_keyframe("VP8", d) for _, d in frames) > keyframes_before
    finally:
        await sender.close()
        await receiver_pc.close()
    assert ended.is_set()


VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)


def vp8_packets(sequence: int, timestamp: int, layer: int | None, sync: bool,
                data: bytes) -> list[RtpPacket]:
    """A frame as a browser sends it, in two packets, as aiortc's receiver has them when they
    reach its jitter buffer: parsed from the wire, the bitstream depayloaded."""
    packets = []
    for i, part in enumerate((data[:5], data[5:])):
        descriptor = VpxPayloadDescriptor(
            partition_start=int(i == 0), partition_id=0, picture_id=sequence,
            tl0picidx=None if layer is None else 7,
            tid=None if layer is None else (layer, int(sync)))
        wire = RtpPacket(payload_type=96, sequence_number=sequence + i, timestamp=timestamp,
                         marker=int(i == 1), payload=bytes(descriptor) + part).serialize()
        packet = RtpPacket.parse(wire)
        packet._data = depayload(VP8, packet.payload)  # type: ignore[attr-defined]
        packets.append(packet)
    return packets


def test_each_vp8_frame_keeps_its_temporal_layer_and_layer_sync():
    layers = TemporalLayers(JitterBuffer(capacity=512, is_video=True))
    # (layer, layer-sync) of L1T3 frames, then a publisher that sends no layers.
    sent = [(0, False), (2, True), (1, True), (2, False), (0, False), (None, False),
            (None, False)]
    frames: list[CapturedFrame] = []
    for i, (layer, sync) in enumerate(sent):
        for packet in vp8_packets(2 * i, 3000 * i, layer, sync, bytes([i]) * 10):
            _, frame = layers.add(packet)
            if frame is not None:
                assert isinstance(frame, CapturedFrame)
                frames.append(frame)
    # Each frame is handed on once the next begins: all but the last.
    assert [(f.layer, f.layer_sync) for f in frames] == [
        (0, False), (2, True), (1, True), (2, False), (0, False), (0, False)]
    assert [f.data for f in frames] == [bytes([i]) * 10 for i in range(6)]
    assert [f.timestamp for f in frames] == [3000 * i for i in range(6)]


async def test_keyframe_requests_are_redirected():
    sender, receiver_pc = new_pc(), new_pc()
    sender.addTrack(VideoStreamTrack())
    asked = asyncio.Event()
    on_keyframe_request(sender.getSenders()[0], asked.set)
    got_track = asyncio.Event()
    receivers = []

    @receiver_pc.on("track")
    def on_track(track):
        receivers.append(next(t.receiver for t in receiver_pc.getTransceivers()
                              if t.receiver.track is track))
        got_track.set()

    try:
        await connect(sender, receiver_pc)
        await asyncio.wait_for(got_track.wait(), 10)
        for _ in range(50):
            if request_keyframe(receivers[0]):
                break
            await asyncio.sleep(0.1)
        await asyncio.wait_for(asked.wait(), 10)
    finally:
        await sender.close()
        await receiver_pc.close()


async def test_host_candidates_use_the_configured_address_and_port_range():
    ports = UdpPortRange(41000, 41009)
    ports.install(asyncio.get_running_loop())
    pc = new_pc()
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = re.findall(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host",
                                pc.localDescription.sdp)
        assert candidates
        for address, port in candidates:
            assert address == "127.0.0.1"
            assert 41000 <= int(port) <= 41009
    finally:
        await pc.close()
        ports.uninstall()
    assert "create_datagram_endpoint" not in vars(asyncio.get_running_loop())


async def test_port_range_exhaustion_is_an_error():
    ports = UdpPortRange(41020, 41020)
    loop = asyncio.get_running_loop()
    ports.install(loop)
    try:
        first, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       local_addr=("127.0.0.1", 0))
        assert first.get_extra_info("sockname")[1] == 41020
        with pytest.raises(OSError, match="no free UDP port"):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                local_addr=("127.0.0.1", 0))
        first.close()
    finally:
        ports.uninstall()


def test_each_audio_packet_is_a_frame_and_a_loss_costs_that_packet_alone() -> None:
    """aiortc's audio jitter buffer held what followed a lost packet and then dropped it all
    (on a 15 % lossy link the record kept a third of the speech)."""
    from aiortc.rtp import RtpPacket

    def packet(seq: int) -> RtpPacket:
        p = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960)
        p._data = bytes([seq % 256])  # type: ignore[attr-defined]
        return p

    buffer = AudioPackets()
    # 65534, 65535, (0 lost), 1, 2, then 0 late, 2 again, and on.
    order = [65_534, 65_535, 1, 2, 0, 2, 3]
    out = []
    for seq in order:
        pli, frame = buffer.add(packet(seq))
        assert pli is False
        out.append(None if frame is None else (frame.timestamp, frame.data))
    assert out == [(65_534 * 960, bytes([254])), (65_535 * 960, bytes([255])),
                   (960, bytes([1])), (2 * 960, bytes([2])), None, None,
                   (3 * 960, bytes([3]))]
    assert buffer.late == 2
    # A sender that starts its sequence again far behind is taken at once.
    pli, frame = buffer.add(packet(40_000))
    assert frame is not None and frame.timestamp == 40_000 * 960
    assert buffer.add(packet(40_001))[1] is not None and buffer.late == 2

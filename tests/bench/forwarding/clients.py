"""The client processes: publishers replaying the pre-encoded loops, subscribers counting
reassembled frames (no decoding)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy

from media.aiortc_adapter import capture_encoded, on_keyframe_request
from tests.bench.forwarding.channel import Channel, child_setup
from tests.bench.forwarding.loops import MediaLoops
from tests.bench.forwarding.meters import cpu_seconds, inbound_rtp
from web.loadtest.encoded import PreEncodedAudio, PreEncodedVideo

CLIENT_RCVBUF = 4 * 1024 * 1024


def enlarge_receive_buffers(loop: asyncio.AbstractEventLoop, size: int) -> None:
    """Give every UDP socket this loop opens a `size`-byte receive buffer.

    Only for the clients: they are the instrument. A subscriber's one bundled socket takes
    every stream it receives, and the kernel's default (~208 KB, ~85 loopback datagrams) fills
    in ~0.1 s at 6 participants, so a scheduling stall on this noisy box would show as loss
    that is not the server's doing.
    """
    original = loop.create_datagram_endpoint

    async def create_datagram_endpoint(*args: Any, **kwargs: Any) -> Any:
        transport, protocol = await original(*args, **kwargs)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        return transport, protocol

    loop.create_datagram_endpoint = create_datagram_endpoint  # type: ignore[method-assign]


@dataclass
class Received:
    kind: str
    source: str | None = None
    frames: int = 0
    bytes: int = 0
    offered_at: float = 0.0
    first_frame_at: float | None = None


@dataclass
class BenchClient:
    participant_id: str
    channel: Channel
    loops: MediaLoops
    index: int
    participants: int
    received: dict[str, Received] = field(default_factory=dict)
    pc: Any = None
    video: PreEncodedVideo | None = None

    def start(self) -> None:
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        # Publishers start at different points of the loops, as real ones would.
        share = self.index / self.participants
        self.pc.addTrack(PreEncodedAudio(self.loops.audio, int(share * len(self.loops.audio))))
        self.video = PreEncodedVideo(self.loops.video, int(share * len(self.loops.video)))
        sender = self.pc.addTrack(self.video)
        on_keyframe_request(sender, self.video.request_keyframe)
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        entry = self.received.setdefault(transceiver.mid, Received(track.kind))
        entry.offered_at = time.monotonic()

        def on_frame(codec: str, frame: Any) -> None:
            if entry.first_frame_at is None:
                entry.first_frame_at = time.monotonic()
            entry.frames += 1
            entry.bytes += len(frame.data)

        capture_encoded(transceiver.receiver, on_frame, lambda: None)

    async def answer(self, sdp: str, mapping: dict[str, tuple[str, str | None]]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for mid, (kind, source) in mapping.items():
            self.received.setdefault(mid, Received(kind)).source = source
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.channel.send(("answer", self.participant_id, self.pc.localDescription.sdp))

    def rtp_counts(self) -> dict[str, int]:
        """Packets received and lost (RTP sequence gaps) on the subscribed streams."""
        counts = {"packets": 0, "lost": 0}
        for transceiver in self.pc.getTransceivers():
            if self.received.get(transceiver.mid, Received("")).source is None:
                continue
            received, lost = inbound_rtp(transceiver.receiver)
            counts["packets"] += received
            counts["lost"] += lost
        return counts

    def snapshot(self) -> dict[str, Any]:
        assert self.video is not None
        return {
            "participant": self.participant_id,
            "rtp": self.rtp_counts(),
            "state": self.pc.connectionState,
            "keyframe_requests": self.video.keyframe_requests,
            "video_sent": self.video.sent,
            "streams": {
                mid: {
                    "kind": r.kind, "source": r.source, "frames": r.frames, "bytes": r.bytes,
                    "first_frame_s": (
                        r.first_frame_at - r.offered_at if r.first_frame_at else None
                    ),
                }
                for mid, r in self.received.items()
                if r.source is not None
            },
        }


async def _clients(
    participant_ids: list[str],
    first_index: int,
    participants: int,
    loops: MediaLoops,
    conn: multiprocessing.connection.Connection,
    control: multiprocessing.connection.Connection,
) -> None:
    child_setup()
    enlarge_receive_buffers(asyncio.get_running_loop(), CLIENT_RCVBUF)
    channel = Channel(conn)
    ctl = Channel(control)
    clients = {
        pid: BenchClient(pid, channel, loops, first_index + i, participants)
        for i, pid in enumerate(participant_ids)
    }
    for client in clients.values():
        client.start()

    async def offers() -> None:
        while (message := await channel.inbox.get()) is not None:
            _, pid, sdp, mapping = message
            await clients[pid].answer(sdp, mapping)

    reader = asyncio.create_task(offers())
    start_cpu = 0.0
    while (message := await ctl.inbox.get()) is not None:
        if message[0] == "snapshot":
            if message[1] == "start":
                start_cpu = cpu_seconds()
            await ctl.send((
                "snapshot",
                {
                    "at": time.monotonic(),
                    "cpu_s": cpu_seconds() - start_cpu,
                    "clients": [c.snapshot() for c in clients.values()],
                },
            ))
        elif message[0] == "quit":
            break
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    for client in clients.values():
        await client.pc.close()
    await ctl.send(("closed",))


def clients_main(
    participant_ids: list[str],
    first_index: int,
    participants: int,
    loops: MediaLoops,
    conn: multiprocessing.connection.Connection,
    control: multiprocessing.connection.Connection,
) -> None:
    asyncio.run(_clients(participant_ids, first_index, participants, loops, conn, control))

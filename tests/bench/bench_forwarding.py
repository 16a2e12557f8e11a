"""Server CPU per forwarded video stream: encoded forwarding against aiortc's decode+re-encode.

Run: `.venv/bin/python -m tests.bench.bench_forwarding` (writes the `forwarding` section of
docs/benchmarks.md).

Each configuration starts one server process and client processes (multiprocessing, spawn),
joined by pipes that carry the SDP offers (server) and answers (clients). The server's CPU is
read inside its own process (`getrusage(RUSAGE_SELF)`, every thread included), so client load
is not counted, though it shares the machine's cores.

- forwarding: a `media.room.MediaRoom` of `media.peer.ParticipantPeer`s, as signaling builds
  them (the audio tap that decodes each participant's Opus for the trial record included).
- baseline (same run): the classic aiortc SFU. Each participant's tracks are relayed with
  `aiortc.contrib.media.MediaRelay`, so each source is decoded once and every subscriber's
  sender re-encodes (VP8 and Opus).

Clients are identical in both modes: publishers replay a 640x360 30 fps VP8 loop and 20 ms Opus
frames encoded once before the run (no encoding during the measurement, a keyframe every 2 s
and on every PLI), and subscribers count reassembled frames through
`media.aiortc_adapter.capture_encoded` (no decoding).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import logging
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiortc
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from media.aiortc_adapter import capture_encoded, on_keyframe_request, restrict_host_addresses
from media.peer import FORWARDED_CODECS, ParticipantPeer
from media.room import MediaRoom
from tests.bench.report import run_stamp, write_section

COMMAND = ".venv/bin/python -m tests.bench.bench_forwarding"
WIDTH, HEIGHT, FPS = 640, 360, 30
VIDEO_LOOP_S = 4
KEYFRAME_EVERY = 2 * FPS
VIDEO_BITRATE = 800_000
AUDIO_LOOP_S = 3
AUDIO_FRAME = 960  # 20 ms at 48 kHz
LOOPBACK = ["127.0.0.1"]
READY_TIMEOUT_S = 40.0
CLIENT_RCVBUF = 4 * 1024 * 1024
DEFAULT_CONFIGS = "forwarding:3:1,baseline:3:1,forwarding:6:2,baseline:2:1,forwarding:2:1"

log = logging.getLogger("bench_forwarding")


# -- media encoded once, before any process starts -------------------------------------------


@dataclass(frozen=True)
class MediaLoops:
    video: list[tuple[bytes, bool]]  # (VP8 frame, keyframe), one per 1/30 s
    audio: list[bytes]  # Opus frames of 20 ms

    @property
    def video_kbps(self) -> float:
        return sum(len(d) for d, _ in self.video) * 8 / (len(self.video) / FPS) / 1000


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
    ctx.framerate = FPS
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


# -- a pipe as an asyncio channel ------------------------------------------------------------


class Channel:
    """One end of a multiprocessing pipe, read on the event loop; sends never block the loop."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self.inbox.put_nowait(self.conn.recv())
        except (EOFError, OSError):
            self._loop.remove_reader(self.conn.fileno())
            self.inbox.put_nowait(None)

    async def send(self, message: Any) -> None:
        async with self._lock:
            await asyncio.to_thread(self.conn.send, message)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.conn.fileno())


def _child_setup() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(processName)s %(name)s: %(message)s")
    restrict_host_addresses(LOOPBACK)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _system_cpu_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _thread_cpu_seconds() -> dict[str, float]:
    """CPU of the main (event-loop) thread and of all other threads of this process."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(task.name) == os.getpid():
            main += seconds
        else:
            other += seconds
    return {"main": main, "other": other}


async def rtp_counters(pcs: list[Any]) -> dict[str, float]:
    """RTP packets the server received (and found missing by sequence gaps) and sent."""
    counts = {"rtp_in": 0.0, "rtp_in_lost": 0.0, "rtp_out": 0.0}
    for pc in pcs:
        for transceiver in pc.getTransceivers():
            received, lost = inbound_rtp(transceiver.receiver)
            counts["rtp_in"] += received
            counts["rtp_in_lost"] += lost
            for stats in (await transceiver.sender.getStats()).values():
                if stats.type == "outbound-rtp":
                    counts["rtp_out"] += stats.packetsSent
    return counts


def inbound_rtp(receiver: Any) -> tuple[int, int]:
    """Packets received and missing (sequence gaps) over every SSRC of `receiver`.

    `RTCRtpReceiver.getStats()` gives every SSRC of a receiver the same stats id, so with RTX
    it reports whichever SSRC came last; the per-SSRC counters are read instead.
    """
    streams = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
    return (
        sum(s.packets_received for s in streams.values()),
        sum(s.packets_lost for s in streams.values()),
    )


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


class LoopLag:
    """How late a 50 ms timer fires: the event loop's responsiveness during the window."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.recording = False
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.05)
            if self.recording:
                self.samples.append(time.monotonic() - start - 0.05)

    def summary(self) -> dict[str, float]:
        s = sorted(self.samples) or [0.0]
        return {"p99_ms": s[int(0.99 * (len(s) - 1))] * 1000, "max_ms": s[-1] * 1000}

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# -- server process ---------------------------------------------------------------------------


class OfferChannel:
    """The `PeerEvents` of one participant: offers go to the client process over its pipe."""

    def __init__(self, channel: Channel, participant_id: str) -> None:
        self.channel = channel
        self.participant_id = participant_id
        self.state = "new"

    async def send_offer(self, sdp: str, slots: list[Any]) -> None:
        mapping = {s.mid: (s.kind, s.participant_id) for s in slots}
        await self.channel.send(("offer", self.participant_id, sdp, mapping))

    def slots_changed(self, slots: list[Any]) -> None:
        pass  # the benchmark never switches sources after setup

    def connection_state_changed(self, state: str) -> None:
        self.state = state


class ForwardingServer:
    def __init__(self) -> None:
        self.room = MediaRoom("bench")

    async def join(self, channel: Channel, participant_id: str) -> None:
        await self.room.add(ParticipantPeer(participant_id, OfferChannel(channel, participant_id)))

    async def accept_answer(self, participant_id: str, sdp: str) -> None:
        await self.room.peers[participant_id].accept_answer(sdp)

    async def counters(self) -> dict[str, float]:
        totals = await rtp_counters([p.pc for p in self.room.peers.values()])
        for peer in self.room.peers.values():
            for key, value in (await peer.stats()).items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
            totals["audio_tap_lost"] = totals.get("audio_tap_lost", 0) + peer.audio_tap.frames_lost
            totals["audio_tap_decoded"] = (
                totals.get("audio_tap_decoded", 0) + peer.audio_tap.frames_decoded
            )
            for slot in peer.slots:
                key = f"{slot.track.kind}_dropped"
                totals[key] = totals.get(key, 0) + slot.track.frames_dropped
        return totals

    async def aclose(self) -> None:
        await self.room.aclose()


def _codec_preferences(kind: str) -> list[Any]:
    wanted = FORWARDED_CODECS[kind]
    return [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType in wanted]


class BaselinePeer:
    """A classic aiortc SFU peer: receives a participant's tracks, sends relayed copies."""

    def __init__(self, channel: Channel, participant_id: str) -> None:
        self.channel = channel
        self.participant_id = participant_id
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.tracks: dict[str, Any] = {}
        self.sources: dict[Any, tuple[str, str]] = {}  # outgoing transceiver -> (kind, from)
        self.answer: asyncio.Future[str] | None = None
        for kind in ("audio", "video"):
            self.pc.addTransceiver(kind, direction="recvonly").setCodecPreferences(
                _codec_preferences(kind)
            )
        self.pc.on("track", lambda track: self.tracks.__setitem__(track.kind, track))

    async def negotiate(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.answer = asyncio.get_running_loop().create_future()
        mapping = {t.mid: source for t, source in self.sources.items()}
        await self.channel.send(("offer", self.participant_id, self.pc.localDescription.sdp,
                                 mapping))
        sdp = await self.answer
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


class BaselineServer:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.peers: dict[str, BaselinePeer] = {}
        self.proxies: list[Any] = []

    async def join(self, channel: Channel, participant_id: str) -> None:
        peer = BaselinePeer(channel, participant_id)
        self.peers[participant_id] = peer
        await peer.negotiate()

    async def accept_answer(self, participant_id: str, sdp: str) -> None:
        answer = self.peers[participant_id].answer
        assert answer is not None and not answer.done()
        answer.set_result(sdp)

    async def subscribe_all(self) -> None:
        """Once every publisher's tracks have arrived, relay them to everyone else."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while any(len(p.tracks) < 2 for p in self.peers.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("baseline: publishers' tracks did not arrive")
            await asyncio.sleep(0.05)
        for peer in self.peers.values():
            for other in self.peers.values():
                if other is peer:
                    continue
                for kind in ("audio", "video"):
                    proxy = self.relay.subscribe(other.tracks[kind])
                    self.proxies.append(proxy)
                    transceiver = peer.pc.addTransceiver(proxy, direction="sendonly")
                    transceiver.setCodecPreferences(_codec_preferences(kind))
                    peer.sources[transceiver] = (kind, other.participant_id)
            await peer.negotiate()

    async def counters(self) -> dict[str, float]:
        # MediaRelay's buffered proxies queue decoded frames without limit: a growing backlog
        # means the encoders fall behind.
        backlog = [p._queue.qsize() for p in self.proxies if getattr(p, "_queue", None)]
        counters = await rtp_counters([p.pc for p in self.peers.values()])
        return {**counters, "relay_backlog_max": max(backlog, default=0)}

    async def aclose(self) -> None:
        for peer in self.peers.values():
            await peer.pc.close()


async def _server(
    mode: str,
    groups: list[list[str]],
    conns: list[multiprocessing.connection.Connection],
    control: multiprocessing.connection.Connection,
) -> None:
    _child_setup()
    channels = [Channel(c) for c in conns]
    ctl = Channel(control)
    server: ForwardingServer | BaselineServer = (
        ForwardingServer() if mode == "forwarding" else BaselineServer()
    )
    lag = LoopLag()

    async def answers(channel: Channel) -> None:
        while (message := await channel.inbox.get()) is not None:
            _, participant_id, sdp = message
            await server.accept_answer(participant_id, sdp)

    readers = [asyncio.create_task(answers(c)) for c in channels]
    setup_started = time.monotonic()
    joins = [server.join(ch, pid) for ch, group in zip(channels, groups, strict=True)
             for pid in group]
    if isinstance(server, BaselineServer):
        await asyncio.gather(*joins)
        await server.subscribe_all()
    else:
        for join in joins:
            await join
    await ctl.send(("negotiated", time.monotonic() - setup_started))

    start: dict[str, Any] = {}
    while (message := await ctl.inbox.get()) is not None:
        if message[0] == "start":
            lag.samples.clear()
            lag.recording = True
            start = {
                "cpu": _cpu_seconds(), "threads": _thread_cpu_seconds(),
                "system": _system_cpu_seconds(),
                "wall": time.monotonic(), "counters": await server.counters(),
            }
        elif message[0] == "stop":
            wall = time.monotonic() - start["wall"]
            cpu = _cpu_seconds() - start["cpu"]
            threads = _thread_cpu_seconds()
            lag.recording = False
            end_counters = await server.counters()
            counters = {
                k: v - start["counters"].get(k, 0) if not k.endswith("_max") else v
                for k, v in end_counters.items()
            }
            await ctl.send((
                "measured",
                {
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "system_cpu_s": _system_cpu_seconds() - start["system"],
                    "main_thread_cpu_s": threads["main"] - start["threads"]["main"],
                    "other_threads_cpu_s": threads["other"] - start["threads"]["other"],
                    "threads": threading.active_count(),
                    "loop_lag": lag.summary(),
                    "counters": counters,
                },
            ))
        elif message[0] == "quit":
            break
    await lag.aclose()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await server.aclose()
    await ctl.send(("closed",))


def server_main(
    mode: str,
    groups: list[list[str]],
    conns: list[multiprocessing.connection.Connection],
    control: multiprocessing.connection.Connection,
) -> None:
    asyncio.run(_server(mode, groups, conns, control))


# -- client processes -------------------------------------------------------------------------


class PreEncodedVideo(MediaStreamTrack):
    """Replays the VP8 loop at 30 fps as `av.Packet`s; a PLI makes the next frame a keyframe
    (by jumping to a keyframe of the loop, which keeps the stream decodable)."""

    kind = "video"

    def __init__(self, frames: list[tuple[bytes, bool]], offset: int) -> None:
        super().__init__()
        self.frames = frames
        self.keyframes = [i for i, (_, key) in enumerate(frames) if key]
        self.position = offset
        self.sent = 0
        self.started: float | None = None
        self.keyframe_requests = 0
        self._jump = False
        self._time_base = fractions.Fraction(1, 90_000)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._jump = True

    async def recv(self) -> av.Packet:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        else:
            await asyncio.sleep(max(0.0, self.started + self.sent / FPS - now))
        if self._jump:
            self._jump = False
            if not self.frames[self.position][1]:
                self.position = next(
                    (k for k in self.keyframes if k > self.position), self.keyframes[0]
                )
        data, _ = self.frames[self.position]
        self.position = (self.position + 1) % len(self.frames)
        packet = av.Packet(data)
        packet.pts = self.sent * (90_000 // FPS)
        packet.time_base = self._time_base
        self.sent += 1
        return packet


class PreEncodedAudio(MediaStreamTrack):
    """Replays the Opus loop as 20 ms `av.Packet`s."""

    kind = "audio"

    def __init__(self, frames: list[bytes], offset: int) -> None:
        super().__init__()
        self.frames = frames
        self.position = offset
        self.sent = 0
        self.started: float | None = None
        self._time_base = fractions.Fraction(1, 48_000)

    async def recv(self) -> av.Packet:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        else:
            await asyncio.sleep(max(0.0, self.started + self.sent * 0.02 - now))
        packet = av.Packet(self.frames[self.position])
        self.position = (self.position + 1) % len(self.frames)
        packet.pts = self.sent * AUDIO_FRAME
        packet.time_base = self._time_base
        self.sent += 1
        return packet


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
    _child_setup()
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
                start_cpu = _cpu_seconds()
            await ctl.send((
                "snapshot",
                {
                    "at": time.monotonic(),
                    "cpu_s": _cpu_seconds() - start_cpu,
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


# -- the orchestrator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    mode: str
    participants: int
    client_processes: int

    @property
    def video_streams(self) -> int:
        return self.participants * (self.participants - 1)


@dataclass
class Result:
    config: Config
    server: dict[str, Any]
    video_fps: list[float]
    audio_fps: list[float]
    video_kbps: list[float]
    first_frame_s: list[float]
    keyframe_requests: int
    keyframe_requests_setup: int
    sent_fps: list[float]
    client_cpu_s: float
    machine_busy_cores: float
    setup_s: float
    missing: list[str]
    rtp_packets: int
    rtp_lost: int

    @property
    def server_core(self) -> float:
        return self.server["cpu_s"] / self.server["wall_s"]

    @property
    def per_stream_core(self) -> float:
        return self.server_core / self.config.video_streams

    @property
    def delivered_video_fps(self) -> float:
        return sum(self.video_fps)

    @property
    def cpu_ms_per_video_frame(self) -> float:
        frames = self.delivered_video_fps * self.server["wall_s"]
        return self.server["cpu_s"] * 1000 / frames if frames else float("nan")


def _machine_busy() -> tuple[float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _expect(conn: multiprocessing.connection.Connection, kind: str, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {kind!r} within {timeout} s")
    message = conn.recv()
    if message[0] != kind:
        raise RuntimeError(f"expected {kind!r}, got {message[0]!r}")
    return message[1] if len(message) > 1 else None


def _snapshots(controls: list[Any], which: str) -> tuple[list[dict[str, Any]], float]:
    for c in controls:
        c.send(("snapshot", which))
    snaps = [_expect(c, "snapshot", 10) for c in controls]
    clients = [{**client, "at": s["at"]} for s in snaps for client in s["clients"]]
    return clients, sum(s["cpu_s"] for s in snaps)


def run_config(config: Config, loops: MediaLoops, warmup_s: float, measure_s: float) -> Result:
    ctx = multiprocessing.get_context("spawn")
    pids = [f"p{i}" for i in range(config.participants)]
    groups = [pids[i :: config.client_processes] for i in range(config.client_processes)]
    server_ctl, server_ctl_child = ctx.Pipe()
    processes, controls, server_ends = [], [], []
    index = 0
    for group in groups:
        server_end, client_end = ctx.Pipe()
        ctl, ctl_child = ctx.Pipe()
        server_ends.append(server_end)
        controls.append(ctl)
        processes.append(ctx.Process(
            target=clients_main, name=f"clients-{index}",
            args=(group, index, config.participants, loops, client_end, ctl_child),
        ))
        index += len(group)
    server = ctx.Process(target=server_main, name="server",
                         args=(config.mode, groups, server_ends, server_ctl_child))
    for p in [server, *processes]:
        p.start()
    try:
        setup_s = _expect(server_ctl, "negotiated", READY_TIMEOUT_S)
        # Ready: every subscriber has frames from every other participant's audio and video.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            clients, _ = _snapshots(controls, "poll")
            missing = [
                f"{c['participant']}<-{s['source']}:{s['kind']}"
                for c in clients for s in c["streams"].values() if s["frames"] == 0
            ]
            complete = all(
                len(c["streams"]) == 2 * (config.participants - 1) for c in clients
            )
            if (complete and not missing) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        keyframe_requests_setup = sum(c["keyframe_requests"] for c in clients)
        first_frames = [
            s["first_frame_s"] for c in clients for s in c["streams"].values()
            if s["kind"] == "video" and s["first_frame_s"] is not None
        ]
        time.sleep(warmup_s)

        busy0, total0 = _machine_busy()
        server_ctl.send(("start",))
        before, _ = _snapshots(controls, "start")
        time.sleep(measure_s)
        after, client_cpu = _snapshots(controls, "stop")
        server_ctl.send(("stop",))
        busy1, total1 = _machine_busy()
        server_stats = _expect(server_ctl, "measured", 10)
    finally:
        for c in [server_ctl, *controls]:
            with contextlib.suppress(OSError):
                c.send(("quit",))
        for p in [*processes, server]:
            p.join(15)
            if p.is_alive():
                p.terminate()
                p.join(5)

    video_fps, audio_fps, video_kbps = [], [], []
    missing = []
    pairs = list(zip(before, after, strict=True))
    for b, a in pairs:
        elapsed = a["at"] - b["at"]
        for mid, s in a["streams"].items():
            s0 = b["streams"].get(mid, {"frames": 0, "bytes": 0})
            fps = (s["frames"] - s0["frames"]) / elapsed
            if s["kind"] == "video":
                video_fps.append(fps)
                video_kbps.append((s["bytes"] - s0["bytes"]) * 8 / elapsed / 1000)
            else:
                audio_fps.append(fps)
            if fps == 0:
                missing.append(f"{a['participant']}<-{s['source']}:{s['kind']}")
    keyframe_requests = sum(a["keyframe_requests"] for a in after) - sum(
        b["keyframe_requests"] for b in before
    )
    return Result(
        config=config, server=server_stats, video_fps=video_fps, audio_fps=audio_fps,
        video_kbps=video_kbps, first_frame_s=first_frames, keyframe_requests=keyframe_requests,
        sent_fps=[(a["video_sent"] - b["video_sent"]) / (a["at"] - b["at"]) for b, a in pairs],
        keyframe_requests_setup=keyframe_requests_setup, client_cpu_s=client_cpu,
        machine_busy_cores=(busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1),
        setup_s=setup_s, missing=missing,
        rtp_packets=sum(a["rtp"]["packets"] - b["rtp"]["packets"] for b, a in pairs),
        rtp_lost=sum(a["rtp"]["lost"] - b["rtp"]["lost"] for b, a in pairs),
    )


# -- report -----------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _fps(values: list[float]) -> str:
    if not values:
        return "none"
    return f"{min(values):.1f} / {statistics.median(values):.1f}"


def describe(r: Result) -> str:
    c = r.config
    return (
        f"{c.mode} P={c.participants}: server {_pct(r.server_core)} of a core, "
        f"{_pct(r.per_stream_core)} per forwarded video stream ({c.video_streams} streams), "
        f"video fps min/median {_fps(r.video_fps)}, audio {_fps(r.audio_fps)}, "
        f"loop lag p99 {r.server['loop_lag']['p99_ms']:.1f} ms, "
        f"client RTP packets {r.rtp_packets} lost {r.rtp_lost}, "
        f"publishers sent fps {_fps(r.sent_fps)}, "
        f"client CPU {_pct(r.client_cpu_s / r.server['wall_s'])}, "
        f"machine busy {r.machine_busy_cores:.2f} cores, "
        f"counters {r.server['counters']}"
    )


def render(results: list[Result], loops: MediaLoops, total_s: float, warmup_s: float,
           measure_s: float) -> str:
    nproc = len(os.sched_getaffinity(0))
    lines = [
        "## Forwarding: server CPU per forwarded video stream",
        "",
        run_stamp(
            COMMAND,
            f"nproc {nproc}; Python {platform.python_version()}, aiortc {aiortc.__version__}, "
            f"PyAV {av.__version__} (FFmpeg libvpx/libopus); whole run {total_s:.0f} s",
        ),
        "",
        "Each row is one hearing on loopback: P participants, each publishing 640x360 30 fps "
        f"VP8 (pre-encoded loop, {loops.video_kbps:.0f} kbit/s, a keyframe every 2 s and on "
        "PLI) plus 20 ms Opus, and subscribing to everyone else: P×(P−1) forwarded video "
        "streams, as many audio streams. The server runs alone in its own process; its CPU "
        "(all threads, `getrusage`) is taken over "
        f"{measure_s:.0f} s after a {warmup_s:.0f} s warm-up that starts once every subscriber "
        "has frames from every publisher. *forwarding* is `MediaRoom` + `ParticipantPeer` "
        "(audio tap decoding each participant's Opus included); *baseline* is aiortc's "
        "classic SFU, `MediaRelay` (decode once per source, re-encode VP8 and Opus per "
        "subscriber). \"Per stream\" is the server's whole CPU divided by the forwarded video "
        "streams (audio and fixed costs included). Received fps are counted at the "
        "subscribers from reassembled frames (no decoding), min / median over streams.",
        "",
        "| mode | participants | video streams | server CPU (% of one core) | "
        "per video stream (% of a core) | event-loop thread / other threads / of which kernel "
        "| server ms CPU per delivered frame | video fps min / median | audio fps min / median "
        "| video kbit/s median |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = r.config
        lines.append(
            f"| {c.mode} | {c.participants} | {c.video_streams} | {_pct(r.server_core)} | "
            f"{_pct(r.per_stream_core)} | "
            f"{_pct(r.server['main_thread_cpu_s'] / r.server['wall_s'])} / "
            f"{_pct(r.server['other_threads_cpu_s'] / r.server['wall_s'])} / "
            f"{_pct(r.server['system_cpu_s'] / r.server['wall_s'])} | "
            f"{r.cpu_ms_per_video_frame:.2f} | {_fps(r.video_fps)} | {_fps(r.audio_fps)} | "
            f"{statistics.median(r.video_kbps) if r.video_kbps else 0:.0f} |"
        )
    lines += [
        "",
        "Load and health in the same windows. Clients run in their own processes but share the "
        "machine's cores with the server (and with whatever else runs on the box: *machine "
        "busy* is the whole machine). RTP counts are the server's own (received, missing by "
        "sequence gaps, sent); *drops* are frames a `ForwardedTrack` discarded (slow "
        "subscriber or waiting for a keyframe).",
        "",
        "| mode | participants | client CPU (% of one core, processes) | machine busy (cores of "
        f"{os.cpu_count()}) | server loop lag p99 / max (ms) | RTP in / out per s | RTP in "
        "missing | server µs CPU per RTP packet (in + out) | drops (video / audio) | "
        "publishers' sent fps min | PLIs reaching publishers (setup / window) | first video "
        "frame after offer, median / max (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c, k, wall = r.config, r.server["counters"], r.server["wall_s"]
        packets = k.get("rtp_in", 0) + k.get("rtp_out", 0)
        drops = (
            f"{k['video_dropped']:.0f} / {k['audio_dropped']:.0f}"
            if "video_dropped" in k else "n/a"
        )
        ff = (
            f"{statistics.median(r.first_frame_s):.2f} / {max(r.first_frame_s):.2f}"
            if r.first_frame_s else "none"
        )
        lines.append(
            f"| {c.mode} | {c.participants} | "
            f"{_pct(r.client_cpu_s / wall)} ({c.client_processes}) | "
            f"{r.machine_busy_cores:.2f} | "
            f"{r.server['loop_lag']['p99_ms']:.1f} / {r.server['loop_lag']['max_ms']:.1f} | "
            f"{k.get('rtp_in', 0) / wall:.0f} / {k.get('rtp_out', 0) / wall:.0f} | "
            f"{k.get('rtp_in_lost', 0):.0f} | "
            f"{r.server['cpu_s'] * 1e6 / packets if packets else float('nan'):.0f} | "
            f"{drops} | {min(r.sent_fps, default=0):.1f} | "
            f"{r.keyframe_requests_setup} / {r.keyframe_requests} | {ff} |"
        )
    lines += ["", *verdicts(results), "", *NOTES, *keyframe_note(results)]
    return "\n".join(lines)


NOTES = [
    "Notes:",
    "",
    "- The baseline re-encodes at the bitrate aiortc's REMB handling picks (see its kbit/s), "
    "so it sends fewer packets than forwarding, which passes the publishers' bitrate through; "
    "when it cannot keep 30 fps on this box, CPU per stream understates its cost and CPU per "
    "delivered frame is the fair comparison.",
    "- \"Per stream\" divides all the server's CPU (audio forwarding, the audio tap's Opus "
    "decoding, receiving the publishers, RTCP) by the video streams, so small hearings carry "
    "their fixed cost on few streams; the marginal figure compares two hearing sizes.",
    "- Publishers ignore REMB (pre-encoded) and answer a PLI with the loop's next keyframe. "
    "Subscribers count reassembled frames and do not decode, so client load is lower than a "
    "browser's; their UDP receive buffers are raised to 4 MB so that client stalls do not "
    "show as loss (the server keeps the kernel default).",
    "- On loopback the kernel delivers each datagram to the receiving socket within the "
    "sender's `sendto`, so the server's kernel time may include part of the clients' receive "
    "path; that weighs more on forwarding, which sends more packets than the re-encoding "
    "baseline.",
    "- CPU seconds are taken under whatever else runs on the 2 cores; contention inflates "
    "them somewhat (shared caches), equally for both modes within one run.",
]


def keyframe_note(results: list[Result]) -> list[str]:
    """What the first-frame and PLI columns say about keyframe requests while joining."""
    forwarding = [r for r in results if r.config.mode == "forwarding" and r.first_frame_s]
    baseline = [r for r in results if r.config.mode == "baseline" and r.first_frame_s]
    if not forwarding:
        return []
    worst = max(max(r.first_frame_s) for r in forwarding)
    reached = sum(r.keyframe_requests_setup for r in forwarding)
    line = (
        f"- Joining: in the forwarding runs {reached} keyframe request(s) reached a publisher "
        f"during setup, and a new slot's first video frame came up to {worst:.2f} s after its "
        f"offer (publishers' periodic keyframe: every {KEYFRAME_EVERY / FPS:.0f} s)"
    )
    if baseline:
        line += (
            f"; the baseline, whose encoders start with a keyframe, took at most "
            f"{max(max(r.first_frame_s) for r in baseline):.2f} s"
        )
    return [line + "."]


def verdicts(results: list[Result]) -> list[str]:
    out = ["Against the issue's targets (ratios from this run):", ""]
    for base in (r for r in results if r.config.mode == "baseline"):
        for fwd in (r for r in results if r.config.mode == "forwarding"
                    and r.config.participants == base.config.participants):
            ratio = base.per_stream_core / fwd.per_stream_core
            frame_ratio = base.cpu_ms_per_video_frame / fwd.cpu_ms_per_video_frame
            out.append(
                f"- At least 10× less CPU than the baseline, {base.config.participants} "
                f"participants: baseline ÷ forwarding = {frame_ratio:.1f}× per delivered "
                f"video frame ({base.cpu_ms_per_video_frame:.2f} ms vs "
                f"{fwd.cpu_ms_per_video_frame:.2f} ms), {ratio:.1f}× per forwarded stream "
                f"(baseline delivering {statistics.median(base.video_fps or [0]):.1f} fps): "
                f"{'met' if frame_ratio >= 10 else 'NOT met'} per frame, "
                f"{'met' if ratio >= 10 else 'NOT met'} per stream."
            )
    forwarding = sorted(
        (r for r in results if r.config.mode == "forwarding"), key=lambda r: r.config.participants
    )
    for fwd in forwarding:
        out.append(
            f"- At most 3% of a core per forwarded video stream, {fwd.config.participants} "
            f"participants: {_pct(fwd.per_stream_core)}: "
            f"{'met' if fwd.per_stream_core <= 0.03 else 'NOT met'}."
        )
    if len(forwarding) >= 2:
        small, large = forwarding[0], forwarding[-1]
        marginal = (large.server_core - small.server_core) / (
            large.config.video_streams - small.config.video_streams
        )
        out.append(
            f"- Marginal cost from {small.config.participants} to {large.config.participants} "
            f"participants: {_pct(marginal)} of a core per added forwarded video stream "
            "(with its audio)."
        )
    for fwd in (r for r in forwarding if r.config.participants == 6):
        ok = fwd.server_core < 1.0 and fwd.video_fps and min(fwd.video_fps) >= 0.9 * FPS
        out.append(
            f"- A 6-party hearing ({fwd.config.video_streams} forwarded video streams) on one "
            f"core: server at {_pct(fwd.server_core)} of a core (event-loop thread "
            f"{_pct(fwd.server['main_thread_cpu_s'] / fwd.server['wall_s'])}), slowest stream "
            f"{min(fwd.video_fps, default=0):.1f} fps: {'met' if ok else 'NOT met'}."
        )
    for r in results:
        if r.missing or (r.video_fps and min(r.video_fps) < 0.9 * FPS):
            out.append(
                f"- {r.config.mode} at {r.config.participants} participants did not deliver "
                f"every stream at full rate (slowest {min(r.video_fps, default=0):.1f} fps; "
                f"silent: {', '.join(r.missing) or 'none'})."
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--measure", type=float, default=15.0)
    parser.add_argument(
        "--configs", default=DEFAULT_CONFIGS,
        help="comma-separated mode:participants:client_processes (default %(default)s)",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    started = time.monotonic()
    loops = MediaLoops(encode_video_loop(), encode_audio_loop())
    log.info("encoded loops: %d video frames (%.0f kbit/s), %d Opus frames",
             len(loops.video), loops.video_kbps, len(loops.audio))
    configs = [
        Config(mode, int(participants), int(processes))
        for mode, participants, processes in (c.split(":") for c in args.configs.split(","))
    ]
    results = []
    for config in configs:
        result = run_config(config, loops, args.warmup, args.measure)
        log.info("%s", describe(result))
        results.append(result)
    body = render(results, loops, time.monotonic() - started, args.warmup, args.measure)
    print(body)
    if not args.no_write:
        write_section("forwarding", body)


if __name__ == "__main__":
    sys.exit(main())

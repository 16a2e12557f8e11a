"""Server CPU per forwarded video stream: encoded forwarding against aiortc's decode+re-encode;
and server CPU per recorded track, against forwarding alone in the same hearing.

Run: `.venv/bin/python -m tests.bench.bench_forwarding` (writes the `forwarding` and
`recording` sections of docs/benchmarks.md).

Each configuration starts one server process and client processes (multiprocessing, spawn),
joined by pipes that carry the SDP offers (server) and answers (clients). The server's CPU is
read inside its own process (`getrusage(RUSAGE_SELF)`, every thread included), so client load
is not counted, though it shares the machine's cores.

- forwarding: a `media.room.MediaRoom` of `media.peer.ParticipantPeer`s, as signaling builds
  them (the audio tap that decodes each participant's Opus for the trial record included).
- recording: the forwarding server's hearing, measured in windows that alternate between
  forwarding alone and forwarding while `MediaRoom.start_recording` records every participant
  (one WebM file each, VP8 and Opus remuxed, never decoded) into a temporary directory. The
  forwarding-alone windows give the forwarding row of that hearing size; the difference
  between the two, paired window by window, is the recording's cost.
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
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
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
from media.recording import (
    CLUSTER_MS,
    TIME_BASE,
    ParticipantRecorder,
    RecordingFile,
    _MatroskaWriter,
    _Packet,
)
from media.room import MediaRoom
from tests.bench.report import run_stamp, write_section

COMMAND = ".venv/bin/python -m tests.bench.bench_forwarding"
WIDTH, HEIGHT, FPS = 640, 360, 30
VIDEO_LOOP_S = 4
KEYFRAME_EVERY = 2 * FPS
VIDEO_BITRATE = 800_000
AUDIO_LOOP_S = 3
AUDIO_FRAME = 960  # 20 ms at 48 kHz
AUDIO_FRAME_MS = 20
LOOPBACK = ["127.0.0.1"]
READY_TIMEOUT_S = 40.0
CLIENT_RCVBUF = 4 * 1024 * 1024
# A recording config also gives the forwarding row of its hearing size (its windows without
# recording), so the forwarding rows at 3 and 6 participants come from those.
DEFAULT_CONFIGS = "recording:3:1,baseline:3:1,recording:6:2,baseline:2:1,forwarding:2:1"
# Windows of a recording config: without (False) and with (True) recording, in ABBA order so
# that a drift in the machine's load weighs on both sides alike; each (A, B) is a pair.
RECORDING_SCHEDULE = (False, True, True, False, False, True, True, False)
RECORDING_PAIRS = ((0, 1), (3, 2), (4, 5), (7, 6))
# After recording starts: the keyframe it asks for arrives and the files open. After it stops:
# the writer threads have ended.
RECORDING_SETTLE_S = 1.0
# A pair compares when both its windows forwarded at a steady 30 fps and the load from
# outside this benchmark differed between them by at most this many cores.
PAIR_OTHERS_TOLERANCE = 0.25
MIN_PAIRS = 2  # fewer comparable pairs than this: the hearing size gives no verdict
TRACKS_PER_FILE = 2  # a participant's file holds their video and their audio
TARGET_PER_TRACK = 0.01  # issue 4: under 1% of a core per recorded track
WRITER_MEDIA_S = 60  # seconds of media the writer measurement muxes per repetition
WRITER_REPEATS = 5

log = logging.getLogger("bench_forwarding")


# -- media encoded once, before any process starts -------------------------------------------


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
    """CPU of the main (event-loop) thread and of all other threads of this process, and of
    the recording writer threads among those."""
    tick = os.sysconf("SC_CLK_TCK")
    recorders = {t.native_id for t in threading.enumerate() if t.name.startswith("recorder-")}
    main = other = recording = 0.0
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
        if int(task.name) in recorders:
            recording += seconds
    return {"main": main, "other": other, "recorders": recording}


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


def lag_summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples) or [0.0]
    return {"p99_ms": s[int(0.99 * (len(s) - 1))] * 1000, "max_ms": s[-1] * 1000}


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
        return lag_summary(self.samples)

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


class RecordingLog:
    """The `RecordingEvents` of the benchmark: keeps what the room reports."""

    def __init__(self) -> None:
        self.recorders: list[ParticipantRecorder] = []
        self.files: list[RecordingFile] = []
        self.failures: list[str] = []

    async def recording_started(self, recorder: ParticipantRecorder) -> None:
        self.recorders.append(recorder)

    async def recording_finished(self, file: RecordingFile) -> None:
        self.files.append(file)

    def recording_failed(self, participant_id: str, message: str) -> None:
        self.failures.append(f"{participant_id}: {message}")

    def report(self) -> dict[str, Any]:
        return {
            "files": [
                {
                    "path": str(f.path), "participant": f.participant_id, "segment": f.segment,
                    "duration_s": f.duration, "codecs": list(f.codecs), "error": f.error,
                }
                for f in self.files
            ],
            "started": len(self.recorders),
            "frames_lost": sum(r.frames_lost for r in self.recorders),
            "failures": self.failures,
        }


class ForwardingServer:
    def __init__(self) -> None:
        self.room = MediaRoom("bench")
        self.recording_log = RecordingLog()
        self.segment = 0

    async def record(self, on: bool, directory: Path) -> None:
        """Start recording every participant (a new segment) or stop it."""
        if on:
            self.segment += 1
            await self.room.start_recording(
                directory, time.time(), self.segment, self.recording_log
            )
        else:
            await self.room.stop_recording()

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
    record_dir: str | None,
) -> None:
    _child_setup()
    channels = [Channel(c) for c in conns]
    ctl = Channel(control)
    server: ForwardingServer | BaselineServer = (
        BaselineServer() if mode == "baseline" else ForwardingServer()
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
        elif message[0] == "record":
            assert isinstance(server, ForwardingServer) and record_dir is not None
            await server.record(message[1], Path(record_dir))
            await ctl.send(("recorded",))
        elif message[0] == "recording_log":
            assert isinstance(server, ForwardingServer)
            await ctl.send(("recording_log", server.recording_log.report()))
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
                    "recorder_threads_cpu_s": (
                        threads["recorders"] - start["threads"]["recorders"]
                    ),
                    "threads": threading.active_count(),
                    "loop_lag": lag.summary(),
                    "lag_samples": list(lag.samples),
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
    record_dir: str | None,
) -> None:
    asyncio.run(_server(mode, groups, conns, control, record_dir))


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


# -- the recording writer alone ---------------------------------------------------------------


class CountingFile:
    """An unbuffered file that counts the writes FFmpeg makes through it."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb", buffering=0)
        self.writes = 0

    def write(self, data: bytes) -> int | None:
        self.writes += 1
        return self.file.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


def writer_packets(loops: MediaLoops, seconds: int) -> list[_Packet]:
    """`seconds` of one participant's frames, as the recorder's writer thread receives them."""
    timed = []
    for i in range(seconds * FPS):
        data, keyframe = loops.video[i % len(loops.video)]
        timed.append(_Packet("video", "VP8", data, i * 1000 // FPS, keyframe))
    for i in range(seconds * 1000 // AUDIO_FRAME_MS):
        data = loops.audio[i % len(loops.audio)]
        timed.append(_Packet("audio", "opus", data, i * AUDIO_FRAME_MS, True))
    return sorted(timed, key=lambda packet: packet.pts_ms)


def mux_plainly(target: Any, packets: list[_Packet]) -> None:
    """The recorder's muxing (same container options, same packets) into `target`: a file
    name (FFmpeg's own I/O) or a Python file object."""
    container = av.open(
        target, "w", format="webm",
        options={"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"},
    )
    video: Any = container.add_stream("libvpx", rate=FPS)
    video.width, video.height = WIDTH, HEIGHT
    video.time_base = TIME_BASE
    audio: Any = container.add_stream("libopus", rate=48_000)
    audio.time_base = TIME_BASE
    streams = {"video": video, "audio": audio}
    for packet in packets:
        out = av.Packet(packet.data)
        out.stream = streams[packet.kind]
        out.pts = out.dts = packet.pts_ms
        out.time_base = TIME_BASE
        out.is_keyframe = packet.keyframe
        container.mux(out)
    container.close()


def measure_writer(loops: MediaLoops, directory: Path) -> dict[str, Any]:
    """CPU of muxing one participant's media into a file, on one thread with nothing else:
    the recorder's writer as it is (an unbuffered Python file, so that a full disk raises at
    once), and the same muxing into FFmpeg's own file I/O and into a Python file."""
    directory.mkdir(parents=True, exist_ok=True)
    packets = writer_packets(loops, WRITER_MEDIA_S)

    def recorder_writer(path: Path) -> None:
        writer = _MatroskaWriter(path)
        for packet in packets:
            writer.write(packet)
        writer.close()

    def ffmpeg_io(path: Path) -> None:
        mux_plainly(str(path), packets)

    def python_file(path: Path) -> None:
        with path.open("wb", buffering=0) as file:
            mux_plainly(file, packets)

    variants = {
        "recorder": recorder_writer, "python_file": python_file, "ffmpeg_io": ffmpeg_io,
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    sizes: dict[str, int] = {}
    for repeat in range(WRITER_REPEATS):
        for name, write in variants.items():
            path = directory / f"{name}-{repeat}.webm"
            started = time.thread_time()
            write(path)
            cpu[name].append(time.thread_time() - started)
            sizes[name] = path.stat().st_size
            path.unlink()
    counting = CountingFile(directory / "counted.webm")
    mux_plainly(counting, packets)
    counting.close()
    return {
        "ms_per_media_s": {
            name: statistics.median(values) * 1000 / WRITER_MEDIA_S
            for name, values in cpu.items()
        },
        "sizes": sizes,
        "writes_per_media_s": counting.writes / WRITER_MEDIA_S,
    }


# -- the orchestrator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    mode: str
    participants: int
    client_processes: int

    @property
    def video_streams(self) -> int:
        return self.participants * (self.participants - 1)

    @property
    def label(self) -> str:
        return "forwarding + recording" if self.mode == "recording" else self.mode


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
    def others_cores(self) -> float:
        """What the rest of the machine used (not this server, not its clients), in cores."""
        wall = self.server["wall_s"]
        return self.machine_busy_cores - self.server_core - self.client_cpu_s / wall

    @property
    def cpu_ms_per_video_frame(self) -> float:
        frames = self.delivered_video_fps * self.server["wall_s"]
        return self.server["cpu_s"] * 1000 / frames if frames else float("nan")


@dataclass
class Window:
    """One measured window: the server's figures and the clients' snapshots around it."""

    recording: bool
    server: dict[str, Any]
    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    client_cpu_s: float
    busy: float
    total: float

    @property
    def server_core(self) -> float:
        return self.server["cpu_s"] / self.server["wall_s"]


@dataclass(frozen=True)
class Setup:
    setup_s: float
    first_frame_s: list[float]
    keyframe_requests_setup: int


def steady(r: Result) -> bool:
    """Forwarding kept (nearly) full rate, without catching up on a backlog (which moves work
    from one window into the next)."""
    return (
        min(r.video_fps, default=0) >= 0.9 * FPS
        and statistics.median(r.video_fps or [0]) <= 1.1 * FPS
    )


@dataclass
class RecordingRun:
    """One hearing measured without and with recording, in alternating windows.

    `alone` and `recording` sum the windows of the pairs that compare (all pairs when fewer
    than `MIN_PAIRS` do, and then the run gives no verdict); `all_alone` and `all_recording`
    sum every window of each kind.
    """

    participants: int
    windows: list[Result]  # each window on its own, in the order measured
    alone: Result
    recording: Result
    all_alone: Result
    all_recording: Result
    log: dict[str, Any]
    files: list[dict[str, Any]]  # the room's report of each file, with its size and ffprobe

    @property
    def comparable_pairs(self) -> list[tuple[int, int]]:
        return [
            (a, b) for a, b in RECORDING_PAIRS
            if steady(self.windows[a]) and steady(self.windows[b])
            and abs(self.windows[a].others_cores - self.windows[b].others_cores)
            <= PAIR_OTHERS_TOLERANCE
        ]

    @property
    def determined(self) -> bool:
        return len(self.comparable_pairs) >= MIN_PAIRS

    @property
    def used_pairs(self) -> list[tuple[int, int]]:
        return self.comparable_pairs if self.determined else list(RECORDING_PAIRS)

    @property
    def pair_differences(self) -> list[float]:
        """Recording minus alone, in cores, for each pair used."""
        return [
            self.windows[b].server_core - self.windows[a].server_core
            for a, b in self.used_pairs
        ]

    @property
    def tracks(self) -> int:
        return self.participants * TRACKS_PER_FILE

    @property
    def difference(self) -> float:
        return self.recording.server_core - self.alone.server_core

    @property
    def per_file(self) -> float:
        return self.difference / self.participants

    @property
    def per_track(self) -> float:
        return self.difference / self.tracks

    def share(self, key: str) -> float:
        """A CPU figure of the recording windows minus the same of the windows without, as a
        share of a core."""
        on, off = self.recording.server, self.alone.server
        return on[key] / on["wall_s"] - off[key] / off["wall_s"]

    @property
    def writer_per_file(self) -> float:
        """CPU of one writer thread while recording, as a share of a core."""
        on = self.recording.server
        return on["recorder_threads_cpu_s"] / on["wall_s"] / self.participants

    @property
    def bytes_per_s_per_file(self) -> float:
        seconds = sum(f["duration_s"] for f in self.files)
        return sum(f["size"] for f in self.files) / seconds if seconds else 0.0


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


def _measure_window(
    server_ctl: multiprocessing.connection.Connection, controls: list[Any], seconds: float,
    recording: bool,
) -> Window:
    busy0, total0 = _machine_busy()
    server_ctl.send(("start",))
    before, _ = _snapshots(controls, "start")
    time.sleep(seconds)
    after, client_cpu = _snapshots(controls, "stop")
    server_ctl.send(("stop",))
    busy1, total1 = _machine_busy()
    server = _expect(server_ctl, "measured", 10)
    return Window(recording, server, before, after, client_cpu, busy1 - busy0, total1 - total0)


def _switch_recording(server_ctl: multiprocessing.connection.Connection, on: bool) -> None:
    server_ctl.send(("record", on))
    _expect(server_ctl, "recorded", 30)
    time.sleep(RECORDING_SETTLE_S)


def run_config(
    config: Config, loops: MediaLoops, warmup_s: float, measure_s: float,
    record_dir: Path | None = None,
) -> tuple[list[Result], RecordingRun | None]:
    """One hearing. A recording config (which needs `record_dir`) gives the forwarding row of
    its windows without recording, its recording row and their comparison."""
    recording_mode = config.mode == "recording"
    if recording_mode and record_dir is None:
        raise ValueError("a recording config needs a directory for its files")
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
    server = ctx.Process(
        target=server_main, name="server",
        args=(config.mode, groups, server_ends, server_ctl_child,
              str(record_dir) if record_dir else None),
    )
    schedule = RECORDING_SCHEDULE if recording_mode else (False,)
    window_s = measure_s / schedule.count(False)
    windows: list[Window] = []
    recording_log: dict[str, Any] = {}
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
        setup = Setup(
            setup_s=setup_s,
            first_frame_s=[
                s["first_frame_s"] for c in clients for s in c["streams"].values()
                if s["kind"] == "video" and s["first_frame_s"] is not None
            ],
            keyframe_requests_setup=sum(c["keyframe_requests"] for c in clients),
        )
        time.sleep(warmup_s)

        recording = False
        for on in schedule:
            if on != recording:
                _switch_recording(server_ctl, on)
                recording = on
            windows.append(_measure_window(server_ctl, controls, window_s, on))
            if recording_mode:
                log.info("  window %d: %s", len(windows),
                         describe_window(combine(config, windows[-1:], setup), on))
        if recording:
            _switch_recording(server_ctl, False)
        if recording_mode:
            server_ctl.send(("recording_log",))
            recording_log = _expect(server_ctl, "recording_log", 10)
    finally:
        for c in [server_ctl, *controls]:
            with contextlib.suppress(OSError):
                c.send(("quit",))
        for p in [*processes, server]:
            p.join(15)
            if p.is_alive():
                p.terminate()
                p.join(5)

    if not recording_mode:
        return [combine(config, windows, setup)], None
    forwarding = Config("forwarding", config.participants, config.client_processes)
    alone = combine(forwarding, [w for w in windows if not w.recording], setup)
    with_recording = combine(config, [w for w in windows if w.recording], setup)
    run = RecordingRun(
        participants=config.participants,
        windows=[combine(config, [w], setup) for w in windows],
        alone=alone, recording=with_recording, all_alone=alone, all_recording=with_recording,
        log=recording_log,
        files=[
            {**f, "size": Path(f["path"]).stat().st_size if Path(f["path"]).exists() else 0,
             "probe": probe(Path(f["path"]))}
            for f in recording_log.get("files", [])
        ],
    )
    used = run.used_pairs
    run.alone = combine(forwarding, [windows[a] for a, _ in used], setup)
    run.recording = combine(config, [windows[b] for _, b in used], setup)
    return [alone, with_recording], run


def combine(config: Config, windows: list[Window], setup: Setup) -> Result:
    """One row from one or more windows: totals over the windows, rates over their time."""
    server: dict[str, Any] = {
        key: sum(w.server[key] for w in windows)
        for key in ("wall_s", "cpu_s", "system_cpu_s", "main_thread_cpu_s",
                    "other_threads_cpu_s", "recorder_threads_cpu_s")
    }
    server["threads"] = max(w.server["threads"] for w in windows)
    server["loop_lag"] = lag_summary([x for w in windows for x in w.server["lag_samples"]])
    counters: dict[str, float] = {}
    for w in windows:
        for key, value in w.server["counters"].items():
            counters[key] = (
                max(counters.get(key, value), value) if key.endswith("_max")
                else counters.get(key, 0) + value
            )
    server["counters"] = counters

    streams: dict[tuple[str, str], dict[str, Any]] = {}
    sent: dict[str, list[float]] = {}  # participant -> [video frames sent, seconds]
    keyframe_requests = rtp_packets = rtp_lost = 0
    for w in windows:
        for b, a in zip(w.before, w.after, strict=True):
            elapsed = a["at"] - b["at"]
            for mid, s in a["streams"].items():
                s0 = b["streams"].get(mid, {"frames": 0, "bytes": 0})
                entry = streams.setdefault(
                    (a["participant"], mid),
                    {"kind": s["kind"], "source": s["source"], "frames": 0, "bytes": 0,
                     "seconds": 0.0},
                )
                entry["frames"] += s["frames"] - s0["frames"]
                entry["bytes"] += s["bytes"] - s0["bytes"]
                entry["seconds"] += elapsed
            tally = sent.setdefault(a["participant"], [0.0, 0.0])
            tally[0] += a["video_sent"] - b["video_sent"]
            tally[1] += elapsed
            keyframe_requests += a["keyframe_requests"] - b["keyframe_requests"]
            rtp_packets += a["rtp"]["packets"] - b["rtp"]["packets"]
            rtp_lost += a["rtp"]["lost"] - b["rtp"]["lost"]

    video_fps, audio_fps, video_kbps, missing = [], [], [], []
    for (participant, _), entry in streams.items():
        fps = entry["frames"] / entry["seconds"]
        if entry["kind"] == "video":
            video_fps.append(fps)
            video_kbps.append(entry["bytes"] * 8 / entry["seconds"] / 1000)
        else:
            audio_fps.append(fps)
        if fps == 0:
            missing.append(f"{participant}<-{entry['source']}:{entry['kind']}")
    busy, total = sum(w.busy for w in windows), sum(w.total for w in windows)
    return Result(
        config=config, server=server, video_fps=video_fps, audio_fps=audio_fps,
        video_kbps=video_kbps, first_frame_s=setup.first_frame_s,
        keyframe_requests=keyframe_requests, keyframe_requests_setup=setup.keyframe_requests_setup,
        sent_fps=[frames / seconds for frames, seconds in sent.values()],
        client_cpu_s=sum(w.client_cpu_s for w in windows),
        machine_busy_cores=busy / total * (os.cpu_count() or 1) if total else 0.0,
        setup_s=setup.setup_s, missing=missing, rtp_packets=rtp_packets, rtp_lost=rtp_lost,
    )


def probe(path: Path) -> dict[str, Any]:
    """What ffprobe, independent of PyAV's muxer, reads in a recorded file: every packet of
    every stream, counted."""
    if not path.exists():
        return {"error": "missing"}
    if shutil.which("ffprobe") is None:
        return {"error": "ffprobe is not installed"}
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "stream=codec_type,codec_name,width,height,sample_rate,nb_read_packets"
         ":format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip() or f"ffprobe exited {done.returncode}"}
    found = json.loads(done.stdout)
    return {
        "streams": {
            s["codec_type"]: {
                "codec": s["codec_name"],
                "packets": int(s.get("nb_read_packets", 0)),
                **({"size": f"{s['width']}x{s['height']}"} if "width" in s else {}),
                **({"rate": int(s["sample_rate"])} if "sample_rate" in s else {}),
            }
            for s in found.get("streams", [])
        },
        "duration_s": float(found.get("format", {}).get("duration", 0.0)),
        "warnings": done.stderr.strip(),
    }


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
        f"{c.label} P={c.participants}: server {_pct(r.server_core)} of a core, "
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
           measure_s: float, windowed: list[int]) -> str:
    """The forwarding section; `windowed` are the hearing sizes whose forwarding rows come
    from a recording config's windows without recording."""
    nproc = len(os.sched_getaffinity(0))
    results = [r for r in results if r.config.mode != "recording"]
    windows_note = (
        f" At {_sizes(windowed)} participants the forwarding rows are the windows without "
        "recording of the recording benchmark's hearings (next section): the same "
        f"{measure_s:.0f} s in {RECORDING_SCHEDULE.count(False)} windows, alternating with "
        "windows that record (where recording left a backlog, the next window delivers it: "
        "fps above 30)."
        if windowed else ""
    )
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
        "subscribers from reassembled frames (no decoding), min / median over streams."
        + windows_note,
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


def _sizes(sizes: list[int]) -> str:
    return " and ".join(str(n) for n in sizes)


def _pct2(x: float) -> str:
    return f"{x * 100:.2f}%"


def filesystem_of(path: Path) -> str:
    """The type of the filesystem that holds `path` (from /proc/mounts)."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            mount = fields[1]
            if (resolved == mount or resolved.startswith(mount.rstrip("/") + "/")) and len(
                mount
            ) >= len(best):
                best, kind = mount, fields[2]
    return kind


def describe_window(r: Result, recording: bool) -> str:
    return (
        f"{'recording' if recording else 'alone'}, server {_pct(r.server_core)}, video fps "
        f"{_fps(r.video_fps)}, publishers sent {_fps(r.sent_fps)}, RTP in missing "
        f"{r.server['counters'].get('rtp_in_lost', 0):.0f}, machine busy "
        f"{r.machine_busy_cores:.2f} (others {r.others_cores:.2f})"
    )


def describe_recording(run: RecordingRun) -> str:
    return (
        f"recording P={run.participants}: alone {_pct(run.alone.server_core)}, with recording "
        f"{_pct(run.recording.server_core)}: {_pct2(run.per_track)} of a core per track "
        f"({len(run.comparable_pairs)} pairs compare: "
        f"{', '.join(_pct2(d / run.tracks) for d in run.pair_differences)}), writer "
        f"threads {_pct2(run.writer_per_file)} per file, {len(run.files)} files, "
        f"{run.bytes_per_s_per_file / 1000:.1f} kB/s per file, "
        f"frames lost {run.log.get('frames_lost')}, failures {run.log.get('failures')}, "
        f"probe {[f['probe'] for f in run.files[:1]]}"
    )


def file_problems(run: RecordingRun) -> tuple[list[str], list[str]]:
    """Whatever makes a file of `run` not an honest recording, and what ffprobe warned about
    (a damaged frame: it reads on past it)."""
    problems, warnings = [], []
    if len(run.files) != run.log.get("started"):
        problems.append(f"{run.log.get('started')} files started, {len(run.files)} finished")
    for f in run.files:
        name = Path(f["path"]).name
        streams = f["probe"].get("streams", {})
        if f["size"] <= 0:
            problems.append(f"{name} is empty")
        if f["error"]:
            problems.append(f"{name}: {f['error']}")
        if "error" in f["probe"]:
            problems.append(f"ffprobe cannot read {name}: {f['probe']['error']}")
        elif (streams.get("video", {}).get("codec"), streams.get("audio", {}).get("codec")) != (
            "vp8", "opus"
        ):
            problems.append(f"ffprobe finds {streams} in {name}")
        if f["probe"].get("warnings"):
            first = f["probe"]["warnings"].splitlines()[0]
            warnings.append(f"{name}: `{first[:120]}`")
    if run.log.get("frames_lost"):
        problems.append(f"{run.log['frames_lost']} frames lost by the writers")
    problems += [f"failure reported: {m}" for m in run.log.get("failures", [])]
    return problems, warnings


def _in_file_rate(run: RecordingRun, kind: str) -> float:
    """The lowest packet rate of `kind` that ffprobe counts in a file (per recorded second)."""
    rates = [
        f["probe"]["streams"][kind]["packets"] / f["duration_s"]
        for f in run.files
        if f["duration_s"] and kind in f["probe"].get("streams", {})
    ]
    return min(rates, default=0.0)


def render_recording(runs: list[RecordingRun], writer: dict[str, Any], loops: MediaLoops,
                     total_s: float, warmup_s: float, measure_s: float,
                     filesystem: str) -> str:
    window_s = measure_s / RECORDING_SCHEDULE.count(False)
    media_kbps = loops.video_kbps + loops.audio_kbps
    lines = [
        "## Recording: server CPU per recorded track",
        "",
        run_stamp(
            COMMAND,
            f"nproc {len(os.sched_getaffinity(0))}; Python {platform.python_version()}, aiortc "
            f"{aiortc.__version__}, PyAV {av.__version__}; the run that wrote the forwarding "
            f"section (whole run {total_s:.0f} s)",
        ),
        "",
        "Each hearing is set up as in the forwarding benchmark (P participants on loopback, "
        f"each publishing VP8 at {loops.video_kbps:.0f} kbit/s and Opus at "
        f"{loops.audio_kbps:.0f} kbit/s, each subscribing to all others) and, after the "
        f"{warmup_s:.0f} s warm-up, measured in {len(RECORDING_SCHEDULE)} windows of "
        f"{window_s:.2f} s: forwarding alone (A) and forwarding while the room records (B), "
        "in the order " + "".join("B" if on else "A" for on in RECORDING_SCHEDULE) + ", so "
        "that a change in the machine's load weighs on both alike. Recording is "
        "`MediaRoom.start_recording` as signaling calls it: a `ParticipantRecorder` per "
        "participant, one WebM file holding their VP8 video and Opus audio, remuxed (never "
        "decoded) by one writer thread per file. It starts "
        f"{RECORDING_SETTLE_S:.0f} s before each block of two B windows (the keyframe it asks "
        "for arrives, the files open) and `stop_recording()` ends it after them (the files "
        "are finished), so each block is one segment of P files and the windows hold steady "
        f"recording only. Files go to a temporary directory ({filesystem}, the checkout's "
        "filesystem), removed after the run. The windows pair up ("
        + ", ".join(f"{a + 1}–{b + 1}" for a, b in RECORDING_PAIRS)
        + "); a pair compares when both its windows forwarded at a steady 30 fps (slowest "
        "stream ≥ 27 fps, median ≤ 33 fps: no backlog delivered late) and the load from "
        f"outside this benchmark differed between them by at most {PAIR_OTHERS_TOLERANCE} "
        "core, and the figures below sum the windows of the pairs that compare (with fewer "
        f"than {MIN_PAIRS}, all pairs, and no verdict). Server CPU is the server process's "
        "(all threads, `getrusage`), summed over those A windows and over those B windows; "
        "the difference is everything recording adds (the taps on the event loop, the "
        "writer threads, the kernel's part of the writes), divided by the P files or the 2P "
        "tracks recorded at once. Each pair gives a difference of its own: their spread "
        "shows the noise.",
        "",
        "| participants | files (tracks) recorded at once | pairs that compare (of "
        f"{len(RECORDING_PAIRS)}) | server CPU, forwarding alone | forwarding + recording | "
        "difference (% of a core) | per file | **per track** | per track, lowest / highest "
        "pair | difference by thread: event loop / other threads / of which kernel | writer "
        "thread, per file |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        pairs = [d / run.tracks for d in run.pair_differences]
        lines.append(
            f"| {run.participants} | {run.participants} ({run.tracks}) | "
            + (f"{len(run.comparable_pairs)} | " if run.determined
               else f"{len(run.comparable_pairs)} (too few: all summed) | ")
            + f"{_pct(run.alone.server_core)} | {_pct(run.recording.server_core)} | "
            f"{_pct2(run.difference)} | {_pct2(run.per_file)} | **{_pct2(run.per_track)}** | "
            f"{_pct2(min(pairs))} / {_pct2(max(pairs))} | "
            f"{_pct2(run.share('main_thread_cpu_s'))} / "
            f"{_pct2(run.share('other_threads_cpu_s'))} / {_pct2(run.share('system_cpu_s'))} | "
            f"{_pct2(run.writer_per_file)} |"
        )
    lines += [
        "",
        "The files, checked after the run: sizes, the recorder's own report, and `ffprobe "
        "-count_packets` reading every packet of every file. Bytes written per second are "
        "the files' sizes over their recorded durations; *media sent* is what a publisher "
        f"sends ({media_kbps / 8:.1f} kB/s of VP8 and Opus payload).",
        "",
        "| participants | files written (segments) | recorded duration min / max (s) | bytes "
        "written per s, per file / whole hearing | per file ÷ media sent | in the files, "
        "video / audio packets per s (lowest file) | read by ffprobe | frames lost / write "
        "errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        durations = [f["duration_s"] for f in run.files] or [0.0]
        read = sum(1 for f in run.files if "streams" in f["probe"])
        kinds: dict[str, Any] = next(
            (f["probe"]["streams"] for f in run.files if "streams" in f["probe"]), {}
        )
        codecs = " + ".join(
            f"{s['codec']} {s.get('size') or s.get('rate', '')}".strip() for s in kinds.values()
        )
        errors = sum(1 for f in run.files if f["error"]) + len(run.log.get("failures", []))
        lines.append(
            f"| {run.participants} | {len(run.files)} "
            f"({len({f['segment'] for f in run.files})}) | "
            f"{min(durations):.1f} / {max(durations):.1f} | "
            f"{run.bytes_per_s_per_file / 1000:.1f} kB / "
            f"{run.bytes_per_s_per_file * run.participants / 1000:.0f} kB | "
            f"{run.bytes_per_s_per_file * 8 / 1000 / media_kbps:.3f} | "
            f"{_in_file_rate(run, 'video'):.1f} / {_in_file_rate(run, 'audio'):.1f} | "
            f"{read} of {len(run.files)} ({codecs or 'none'}) | "
            f"{run.log.get('frames_lost', 0)} / {errors} |"
        )
    lines += [
        "",
        "Forwarding in all the windows, alone (A) / while recording (B): recording must not "
        "cost the live hearing its frames, and fewer frames delivered would make the B "
        "windows look cheaper than they are.",
        "",
        "| participants | video fps min / median at subscribers, A | same, B | audio fps "
        "min, A / B | server loop lag p99 (ms), A / B | RTP in missing, A / B | machine busy "
        f"(cores of {os.cpu_count()}), A / B | of which not this benchmark, A / B |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        a, b = run.all_alone, run.all_recording
        lines.append(
            f"| {run.participants} | {_fps(a.video_fps)} | {_fps(b.video_fps)} | "
            f"{min(a.audio_fps, default=0):.1f} / {min(b.audio_fps, default=0):.1f} | "
            f"{a.server['loop_lag']['p99_ms']:.1f} / {b.server['loop_lag']['p99_ms']:.1f} | "
            f"{a.server['counters'].get('rtp_in_lost', 0):.0f} / "
            f"{b.server['counters'].get('rtp_in_lost', 0):.0f} | "
            f"{a.machine_busy_cores:.2f} / {b.machine_busy_cores:.2f} | "
            f"{a.others_cores:.2f} / {b.others_cores:.2f} |"
        )
    ms = writer["ms_per_media_s"]
    lines += [
        "",
        f"The writer alone: {WRITER_MEDIA_S} s of one participant's frames (the same VP8 and "
        "Opus loops) muxed on one thread with nothing else running in it, CPU of that "
        f"thread (`time.thread_time`, kernel included), median of {WRITER_REPEATS}. This is "
        "the cost of the file itself, without the queue, the thread hand-offs and the event "
        "loop's side.",
        "",
        "| writer | CPU ms per second of media | % of a core per file |",
        "|---|---:|---:|",
        f"| the recorder's `_MatroskaWriter` (an unbuffered Python file object) | "
        f"{ms['recorder']:.2f} | {_pct2(ms['recorder'] / 1000)} |",
        f"| the same muxing into an unbuffered Python file object | {ms['python_file']:.2f} | "
        f"{_pct2(ms['python_file'] / 1000)} |",
        f"| the same muxing into FFmpeg's own file I/O | {ms['ffmpeg_io']:.2f} | "
        f"{_pct2(ms['ffmpeg_io'] / 1000)} |",
        "",
        "In the hearings each writer thread used "
        + ", ".join(
            f"{_pct2(run.writer_per_file)} of a core at {run.participants} participants"
            for run in runs
        )
        + f", against {_pct2(ms['recorder'] / 1000)} for the same muxing alone. The rest is "
        "the hand-off: every frame (about "
        f"{FPS + 1000 // AUDIO_FRAME_MS} a second per file) is put on the writer's queue and "
        "wakes its thread, which then takes the GIL from the busy event loop.",
        "",
        f"FFmpeg writes through the Python file object {writer['writes_per_media_s']:.1f} "
        f"times per second of media ({CLUSTER_MS} ms clusters, written in pieces of the AVIO "
        "buffer), so the file object costs "
        f"{ms['python_file'] - ms['ffmpeg_io']:.2f} ms per second of media, "
        f"{_pct2((ms['python_file'] - ms['ffmpeg_io']) / 1000)} of a core per file.",
        "",
        "Against the issue's target (from this run):",
        "",
    ]
    for run in runs:
        pairs = [d / run.tracks for d in run.pair_differences]
        verdict = (
            ("met" if run.per_track < TARGET_PER_TRACK else "NOT met") if run.determined
            else f"undetermined (fewer than {MIN_PAIRS} pairs compare, see below)"
        )
        lines.append(
            f"- Under 1% of a core per recorded track, {run.participants} participants "
            f"({run.tracks} tracks in {run.participants} files): {_pct2(run.per_track)} per "
            f"track ({_pct2(run.per_file)} per file; {len(run.comparable_pairs)} of "
            f"{len(RECORDING_PAIRS)} pairs compare, pairs from {_pct2(min(pairs))} to "
            f"{_pct2(max(pairs))}): {verdict}."
        )
    for run in runs:
        problems, warnings = file_problems(run)
        line = f"- Files at {run.participants} participants: " + (
            f"all {len(run.files)} written, none empty, no write error, no frame lost, every "
            "one read through by ffprobe with its VP8 and Opus streams."
            if not problems else "PROBLEMS: " + "; ".join(problems) + "."
        )
        if warnings:
            line += (
                f" ffprobe warned about {len(warnings)} file(s), a damaged frame each: "
                + "; ".join(warnings) + "."
            )
        lines.append(line)
        unsteady = [i + 1 for i, w in enumerate(run.windows) if not steady(w)]
        if unsteady:
            lines.append(
                f"- At {run.participants} participants forwarding did not hold a steady 30 fps "
                f"in window(s) {', '.join(map(str, unsteady))} (see each window below; above "
                "30 is a backlog delivered late): the machine was short of CPU there."
            )
    lines += [
        "",
        "Each window on its own (server CPU, slowest / median video stream in fps, machine "
        "busy outside this benchmark in cores), * marking the windows of pairs that compare:",
        "",
    ]
    for run in runs:
        used = {i for pair in run.comparable_pairs for i in pair}
        lines.append(
            f"- {run.participants} participants: "
            + "; ".join(
                f"{i + 1}{'*' if i in used else ''} {'B' if on else 'A'} "
                f"{_pct(w.server_core)}, {_fps(w.video_fps)}, {max(w.others_cores, 0):.2f}"
                for i, (on, w) in enumerate(zip(RECORDING_SCHEDULE, run.windows, strict=True))
            )
            + "."
        )
    lines += ["", *RECORDING_NOTES]
    return "\n".join(lines)


RECORDING_NOTES = [
    "Notes:",
    "",
    "- What a B window does not hold: opening a file (at the first keyframe) and finishing it "
    "(cues, duration), once per file per segment; the writer measurement above bounds the "
    "muxing itself.",
    "- The kernel writes to the page cache inside the server's `write` calls (counted); the "
    "disk writeback that follows runs in the kernel's flusher threads, not in the server "
    "process (not counted).",
    "- Clients share the 2 cores with the server, and other work on the machine may too "
    "(*machine busy*); the alternation spreads that over A and B alike, and the per-pair "
    "figures show how much it moves a single pair.",
]


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
    if len({r.config.participants for r in forwarding}) >= 2:
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
    results: list[Result] = []
    recordings: list[RecordingRun] = []
    workdir = Path(tempfile.mkdtemp(prefix="tingshen-bench-recording-"))
    try:
        filesystem = filesystem_of(workdir)
        writer = measure_writer(loops, workdir / "writer")
        log.info("writer alone: %s", writer)
        for config in configs:
            record_dir = (
                workdir / f"hearing-{config.participants}" if config.mode == "recording"
                else None
            )
            rows, recording = run_config(config, loops, args.warmup, args.measure, record_dir)
            for result in rows:
                log.info("%s", describe(result))
            results += rows
            if recording is not None:
                log.info("%s", describe_recording(recording))
                recordings.append(recording)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total_s = time.monotonic() - started
    body = render(results, loops, total_s, args.warmup, args.measure,
                  windowed=[r.participants for r in recordings])
    print(body)
    recording_body = (
        render_recording(recordings, writer, loops, total_s, args.warmup, args.measure,
                         filesystem)
        if recordings else None
    )
    if recording_body:
        print(recording_body)
    if not args.no_write:
        write_section("forwarding", body)
        if recording_body:
            write_section("recording", recording_body)

if __name__ == "__main__":
    main()

"""The server process: the forwarding hearing (`MediaRoom` of `ParticipantPeer`s, recording on
demand) or the baseline SFU (aiortc's `MediaRelay`, decode and re-encode), measured in place."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import threading
import time
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.rtcconfiguration import RTCBundlePolicy

from media.peer import FORWARDED_CODECS, ParticipantPeer
from media.recording import (
    ParticipantRecorder,
    RecordingFile,
)
from media.room import MediaRoom, Routing
from tests.bench.forwarding.channel import READY_TIMEOUT_S, Channel, child_setup
from tests.bench.forwarding.meters import (
    LoopLag,
    cpu_seconds,
    rtp_counters,
    system_cpu_seconds,
    thread_cpu_seconds,
)


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
        # As in a hearing in session: the record takes everyone's audio (decoded by the audio
        # tap for the recognizer), and everyone receives everyone else.
        self.room.listen(participant_id, lambda samples, wall_time: None)
        everyone = list(self.room.peers)
        self.room.apply(Routing(
            sources={subscriber: tuple((publisher, kind) for publisher in everyone
                                       if publisher != subscriber for kind in ("audio", "video"))
                     for subscriber in everyone},
            on_record=frozenset((p, kind) for p in everyone for kind in ("audio", "video"))))

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
    child_setup()
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
                "cpu": cpu_seconds(), "threads": thread_cpu_seconds(),
                "system": system_cpu_seconds(),
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
            cpu = cpu_seconds() - start["cpu"]
            threads = thread_cpu_seconds()
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
                    "system_cpu_s": system_cpu_seconds() - start["system"],
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

"""A hearing's media: peers, what each receives and what is on the record (as the hearing's
`Routing` says), and while the hearing is in session a recording of every publishing peer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from media.audio import AudioDecoder, PcmChunk
from media.counters import MediaCounters
from media.downlink import LinkEstimate
from media.errors import NoPicture
from media.forwarding import Publication
from media.peer import ParticipantPeer, SlotInfo
from media.quality import QualityMeter
from media.recording import STOP_GRACE_S, ContinuousTime, ParticipantRecorder, RecordingFile
from media.stills import take_still

log = logging.getLogger(__name__)

LINK_MEMORY_S = 120.0  # a rejoin within this long keeps what was learnt of the link


class RecordingEvents(Protocol):
    """What the room tells the record keeper about its files."""

    async def recording_started(self, recorder: ParticipantRecorder) -> None: ...

    async def recording_finished(self, file: RecordingFile) -> None: ...

    def recording_failed(self, participant_id: str, message: str) -> None: ...


class SegmentRecording:
    """One session segment of a hearing being recorded: where files go and how they are named."""

    def __init__(
        self,
        directory: Path,
        origin_wall: float,
        segment: int,
        events: RecordingEvents,
        counters: MediaCounters | None = None,
    ) -> None:
        self.directory = directory
        self.counters = counters
        self.origin_wall = origin_wall
        self.segment = segment
        self.events = events
        self.recorders: dict[str, ParticipantRecorder] = {}
        self._files = 0

    async def begin(self, peer: ParticipantPeer) -> None:
        pid = peer.participant_id
        self._files += 1
        recorder = ParticipantRecorder(
            self.directory / f"{self.segment:03d}-{self._files:03d}-{pid}.webm",
            pid, self.segment, self.origin_wall, peer.clock,
            self._failure_reporter(pid), self.counters,
        )
        recorder.start()
        self.recorders[pid] = recorder
        for publication in peer.publications.values():
            publication.taps.append(recorder.push)
            publication.want_keyframe()  # the file starts at a keyframe
        await self.events.recording_started(recorder)

    def _failure_reporter(self, participant_id: str) -> Callable[[str], None]:
        def report(message: str) -> None:
            self.events.recording_failed(participant_id, message)

        return report

    async def end(self, peer: ParticipantPeer, grace_s: float = STOP_GRACE_S) -> None:
        recorder = self.recorders.pop(peer.participant_id, None)
        if recorder is None:
            return
        file = await recorder.aclose(grace_s)
        for publication in peer.publications.values():
            if recorder.push in publication.taps:
                publication.taps.remove(recorder.push)
        await self.events.recording_finished(file)


@dataclass(frozen=True)
class Routing:
    """What every participant's media does: computed by the hearing from its seats, applied
    here. `sources[subscriber]` lists the (publisher, kind) pairs it receives, in order;
    `on_record` the (publisher, kind) pairs the court hears, which alone are recorded,
    transcribed and measured for the active speaker. Whatever is not listed is not done."""

    sources: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    on_record: frozenset[tuple[str, str]] = frozenset()
    # Whose video a subscriber on a weak link keeps longest, after the active speaker's.
    prominent: tuple[str, ...] = ()


Listener = Callable[[np.ndarray, float], None]


class MediaRoom:
    """The star of one hearing: peers keyed by participant id, in the order they joined,
    wired as the last `Routing` applied says."""

    def __init__(self, hearing_id: str, counters: MediaCounters | None = None) -> None:
        self.hearing_id = hearing_id
        # Shared with the process's other rooms (by the hub), so the totals outlive a hearing.
        self.counters = counters if counters is not None else MediaCounters()
        self.peers: dict[str, ParticipantPeer] = {}
        self.recording: SegmentRecording | None = None
        self.routing = Routing()
        self._quality = QualityMeter()
        # What was learnt of each departed participant's downlink, for a rejoin soon after:
        # participant -> (estimate, when they left).
        self._links: dict[str, tuple[LinkEstimate, float]] = {}
        # Every participant's audio decoded by one thread (see `media.audio`).
        self._audio_decoder = AudioDecoder(hearing_id)

    async def add(self, peer: ParticipantPeer) -> None:
        """Start `peer`, replacing an earlier peer of the same participant (a rejoin)."""
        old = self.peers.pop(peer.participant_id, None)
        if old is not None:
            self._keep_link(old)
            await self._close_peer(old)
        # A rejoin over the same weak link starts from what it was known to carry, instead
        # of flooding it again until the loss is reported.
        kept = self._links.pop(peer.participant_id, None)
        if kept is not None and time.monotonic() - kept[1] <= LINK_MEMORY_S:
            peer.link = kept[0]
        peer.counters = self.counters
        await peer.start()
        if peer.publish:
            if not self._audio_decoder.running:
                self._audio_decoder.start()
            peer.audio_tap.start(self._audio_decoder)
        self.peers[peer.participant_id] = peer
        if self.recording is not None and peer.publish:
            await self.recording.begin(peer)
        self._wire(new_peer=peer)

    def _keep_link(self, peer: ParticipantPeer) -> None:
        now = time.monotonic()
        for pid in [p for p, (_, at) in self._links.items() if now - at > LINK_MEMORY_S]:
            del self._links[pid]
        if peer.link.bps is not None:
            self._links[peer.participant_id] = (peer.link, now)

    async def remove(self, participant_id: str) -> None:
        peer = self.peers.pop(participant_id, None)
        if peer is not None:
            self._keep_link(peer)
            # Closing the peer empties the slots it fed: what the others had is taken first.
            before = {pid: other.slot_infos() for pid, other in self.peers.items()}
            await self._close_peer(peer)
            self._wire(before=before)

    async def _close_peer(self, peer: ParticipantPeer) -> None:
        # Closed first: nothing more can arrive from someone who left, so their file ends
        # with what it has instead of waiting out the stop's grace for frames in flight.
        # The segment is taken first: a recess or close may stop the recording meanwhile,
        # and the peer is no longer in the room for it to end.
        recording = self.recording
        await peer.aclose()
        if recording is not None:
            await recording.end(peer, grace_s=0.0)

    def apply(self, routing: Routing) -> None:
        """Route every peer's media as `routing` says (on every change of the seats; a change
        that routes nothing differently, a raised hand, touches no peer)."""
        if routing == self.routing:
            return
        self.routing = routing
        self._wire()

    def _wire(self, new_peer: ParticipantPeer | None = None,
              before: dict[str, list[SlotInfo]] | None = None) -> None:
        """Point every peer's slots at the publications it may receive and its taps at what
        is on the record; negotiate where slots were added."""
        routing = self.routing
        for peer in self.peers.values():
            for kind, publication in peer.publications.items():
                was, publication.on_record = (
                    publication.on_record, (peer.participant_id, kind) in routing.on_record)
                if publication.on_record and not was:
                    publication.want_keyframe()  # the recording resumes on a keyframe
        for peer in self.peers.values():
            sources: list[Publication] = [
                other.publications[kind]
                for publisher, kind in routing.sources.get(peer.participant_id, ())
                if (other := self.peers.get(publisher)) is not None and other is not peer
                and other.publish
            ]
            had = (before or {}).get(peer.participant_id, peer.slot_infos())
            added = peer.set_sources(sources)
            if added or peer is new_peer:
                peer.negotiate()
            elif peer.slot_infos() != had:
                peer.events.slots_changed(peer.slot_infos())

    # -- what signaling needs of the media ------------------------------------------------

    def listen(self, participant_id: str, listener: Listener) -> None:
        """Call `listener(samples, wall_time)` with the participant's decoded audio (16 kHz
        mono int16) while it is on the record, `wall_time` from their sender clock."""
        peer = self.peers[participant_id]
        # Contiguous audio stays contiguous on the timeline however late it is delivered (a
        # busy server's decoded audio comes seconds behind): see `ContinuousTime`.
        timeline = ContinuousTime(peer.clock, "audio")

        def on_chunk(chunk: PcmChunk) -> None:
            listener(chunk.samples, timeline.wall_time(chunk.timestamp, time.time()))

        peer.audio_tap.add_consumer(on_chunk)

    def take_levels(self) -> dict[str, float]:
        """Each publisher's loudest audio level since the last call, for audio on the record
        (what the court does not hear does not make anyone the active speaker)."""
        levels = {}
        for pid, peer in self.peers.items():
            level = peer.audio_tap.take_peak()
            if peer.publish and peer.publications["audio"].on_record:
                levels[pid] = level
        return levels

    def adapt(self, active_speaker: str | None) -> None:
        """Fit what each subscriber receives to its link (a few times a second): videos its
        link cannot carry are held back, the active speaker's and the prominent kept longest."""
        importance = ([active_speaker] if active_speaker else []) + list(self.routing.prominent)
        now = time.monotonic()
        for peer in self.peers.values():
            if peer.adapt(importance, now):
                peer.events.slots_changed(peer.slot_infos())

    def recording_of(self, participant_id: str) -> bool:
        """Whether the participant's audio is being recorded now."""
        peer = self.peers.get(participant_id)
        return (self.recording is not None and peer is not None
                and peer.publications["audio"].on_record
                and participant_id in self.recording.recorders)

    def silent_on_record(self, quiet_s: float) -> dict[str, float]:
        """Participants being recorded whose audio, on the record, has not arrived for
        `quiet_s` seconds: a gap in the recording (browsers send audio all the time, silence
        included). Participant id -> seconds since their last audio. Someone whose audio
        never arrived is not counted: their connection failed, which the court sees as such."""
        if self.recording is None:
            return {}
        now = time.monotonic()
        gaps = {}
        for pid, peer in self.peers.items():
            audio = peer.publications["audio"]
            if not (peer.publish and audio.on_record and pid in self.recording.recorders
                    and audio.last_frame_at is not None):
                continue
            if now - audio.last_frame_at >= quiet_s:
                gaps[pid] = now - audio.last_frame_at
        return gaps

    def request_keyframe(self, participant_id: str) -> None:
        """The participant's video changed source (screen sharing): subscribers and the
        recording need a fresh keyframe."""
        peer = self.peers.get(participant_id)
        if peer is not None:
            peer.publications["video"].want_keyframe()

    async def still(self, participant_id: str) -> bytes:
        """A JPEG of the participant's camera as the server receives it now (raises
        NoPicture when none comes)."""
        peer = self.peers.get(participant_id)
        if peer is None or not peer.publish:
            raise NoPicture("the participant sends no video")
        return await take_still(peer.publications["video"])

    async def quality(self) -> list[dict[str, Any]]:
        """How each participant's connection fares (for the court), since the last call."""
        peers = list(self.peers.values())
        self._quality.forget(peers)
        return [(await self._quality.sample(peer)).public() for peer in peers]

    @property
    def open_files(self) -> int:
        return len(self.recording.recorders) if self.recording is not None else 0

    # -- recording ------------------------------------------------------------------------

    async def start_recording(
        self, directory: Path, origin_wall: float, segment: int, events: RecordingEvents
    ) -> None:
        """Record every publishing peer, now and as they join, until `stop_recording()`."""
        if self.recording is not None:
            return
        recording = SegmentRecording(directory, origin_wall, segment, events, self.counters)
        self.recording = recording
        # A copy: peers joining meanwhile are begun by `add` (the recording is already set).
        for peer in list(self.peers.values()):
            if (peer.publish and self.peers.get(peer.participant_id) is peer
                    and peer.participant_id not in recording.recorders):
                await recording.begin(peer)

    async def stop_recording(self) -> None:
        recording, self.recording = self.recording, None
        if recording is None:
            return
        await asyncio.gather(*(recording.end(peer) for peer in list(self.peers.values())))

    async def aclose(self) -> None:
        await self.stop_recording()
        for participant_id in list(self.peers):
            await self.remove(participant_id)
        await self._audio_decoder.aclose()

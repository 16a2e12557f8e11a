"""A hearing's media: every connected participant's peer subscribes to everyone else, and while
the hearing is in session every publishing peer is recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from media.counters import MediaCounters
from media.peer import ParticipantPeer
from media.recording import ParticipantRecorder, RecordingFile
from media.relay import Publication

log = logging.getLogger(__name__)


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

    async def end(self, peer: ParticipantPeer) -> None:
        recorder = self.recorders.pop(peer.participant_id, None)
        if recorder is None:
            return
        file = await recorder.aclose()
        for publication in peer.publications.values():
            if recorder.push in publication.taps:
                publication.taps.remove(recorder.push)
        await self.events.recording_finished(file)


class MediaRoom:
    """The star of one hearing: peers keyed by participant id, in the order they joined."""

    def __init__(self, hearing_id: str, counters: MediaCounters | None = None) -> None:
        self.hearing_id = hearing_id
        # Shared with the process's other rooms (by the hub), so the totals outlive a hearing.
        self.counters = counters if counters is not None else MediaCounters()
        self.peers: dict[str, ParticipantPeer] = {}
        self.recording: SegmentRecording | None = None
        # Participants in a private group (a consultation) see and hear only that group, and
        # nobody else sees or hears them; kept across a rejoin.
        self.groups: dict[str, str] = {}

    async def add(self, peer: ParticipantPeer) -> None:
        """Start `peer`, replacing an earlier peer of the same participant (a rejoin)."""
        old = self.peers.pop(peer.participant_id, None)
        if old is not None:
            await self._close_peer(old)
        peer.counters = self.counters
        await peer.start()
        self.peers[peer.participant_id] = peer
        self._apply_group(peer)
        if self.recording is not None and peer.publish:
            await self.recording.begin(peer)
        self.rewire(new_peer=peer)

    async def remove(self, participant_id: str) -> None:
        peer = self.peers.pop(participant_id, None)
        if peer is not None:
            await self._close_peer(peer)
            self.rewire()

    async def _close_peer(self, peer: ParticipantPeer) -> None:
        if self.recording is not None:
            await self.recording.end(peer)
        await peer.aclose()

    def set_group(self, participant_id: str, group: str | None) -> None:
        """Put a participant in a private group (None: back in the hearing)."""
        if self.groups.get(participant_id) == group:
            return
        if group is None:
            del self.groups[participant_id]
        else:
            self.groups[participant_id] = group
        peer = self.peers.get(participant_id)
        if peer is not None:
            self._apply_group(peer)
        self.rewire()

    def _apply_group(self, peer: ParticipantPeer) -> None:
        private = peer.participant_id in self.groups
        for publication in peer.publications.values():
            was, publication.private = publication.private, private
            if was and not private:
                publication.want_keyframe()  # the recording resumes on a keyframe

    def rewire(self, new_peer: ParticipantPeer | None = None) -> None:
        """Point every peer's slots at the publications it may receive: everyone else's in
        its group (the hearing, or a private consultation); negotiate where needed."""
        for peer in self.peers.values():
            group = self.groups.get(peer.participant_id)
            sources: list[Publication] = [
                pub
                for other in self.peers.values()
                if other is not peer and other.publish
                and self.groups.get(other.participant_id) == group
                for pub in other.publications.values()
            ]
            added = peer.set_sources(sources)
            if added or peer is new_peer:
                peer.negotiate()
            else:
                peer.events.slots_changed(peer.slot_infos())

    def set_muted(self, participant_id: str, muted: bool) -> None:
        peer = self.peers.get(participant_id)
        if peer is not None:
            peer.set_muted(muted)

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

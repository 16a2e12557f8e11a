"""A hearing's media: every connected participant's peer subscribes to everyone else."""

from __future__ import annotations

import logging

from media.peer import ParticipantPeer
from media.relay import Publication

log = logging.getLogger(__name__)


class MediaRoom:
    """The star of one hearing: peers keyed by participant id, in the order they joined."""

    def __init__(self, hearing_id: str) -> None:
        self.hearing_id = hearing_id
        self.peers: dict[str, ParticipantPeer] = {}

    async def add(self, peer: ParticipantPeer) -> None:
        """Start `peer`, replacing an earlier peer of the same participant (a rejoin)."""
        old = self.peers.pop(peer.participant_id, None)
        if old is not None:
            await old.aclose()
        await peer.start()
        self.peers[peer.participant_id] = peer
        self.rewire(new_peer=peer)

    async def remove(self, participant_id: str) -> None:
        peer = self.peers.pop(participant_id, None)
        if peer is not None:
            await peer.aclose()
            self.rewire()

    def rewire(self, new_peer: ParticipantPeer | None = None) -> None:
        """Point every peer's slots at the others' publications; negotiate where needed."""
        for peer in self.peers.values():
            sources: list[Publication] = [
                pub
                for other in self.peers.values()
                if other is not peer and other.publish
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

    async def aclose(self) -> None:
        for participant_id in list(self.peers):
            await self.remove(participant_id)

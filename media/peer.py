"""One participant's peer connection to the server: publishes up, subscribes through slots.

The server is always the offerer: it knows when slots must be added. Offers are serialized;
a change while an offer is out triggers one more round after the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import SessionDescription, candidate_from_sdp

from media.aiortc_adapter import (
    capture_encoded,
    on_keyframe_request,
    on_sender_report,
    request_keyframe,
)
from media.audio import AudioTap
from media.counters import MediaCounters
from media.errors import NegotiationError
from media.recording import SenderClock
from media.relay import EncodedFrame, ForwardedTrack, Publication, is_keyframe

log = logging.getLogger(__name__)

KINDS = ("audio", "video")
FORWARDED_CODECS = {"audio": ("audio/opus",), "video": ("video/VP8", "video/rtx")}
ANSWER_TIMEOUT_S = 20.0
# Each remote candidate is kept and checked for the connection's life; a browser sends a few.
MAX_REMOTE_CANDIDATES = 64
# The digests aiortc checks a peer's DTLS certificate with, and their sizes in bytes.
FINGERPRINT_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}


@dataclass(frozen=True)
class SlotInfo:
    """Which participant's media a subscriber receives on transceiver `mid`."""

    mid: str | None
    kind: str
    participant_id: str | None


@dataclass
class Slot:
    transceiver: RTCRtpTransceiver
    track: ForwardedTrack

    @property
    def info(self) -> SlotInfo:
        source = self.track.source
        return SlotInfo(
            self.transceiver.mid, self.track.kind, source.participant_id if source else None
        )


class PeerEvents(Protocol):
    """What a peer tells the signaling layer."""

    async def send_offer(self, sdp: str, slots: list[SlotInfo]) -> None: ...

    def slots_changed(self, slots: list[SlotInfo]) -> None: ...

    def connection_state_changed(self, state: str) -> None: ...


def _codecs(kind: str) -> list[Any]:
    capabilities = RTCRtpSender.getCapabilities(kind)
    wanted = FORWARDED_CODECS[kind]
    return [c for c in capabilities.codecs if c.mimeType in wanted]


def _check_fingerprints(sdp: str) -> None:
    """Refuse an answer whose DTLS certificate cannot be checked before any of it is applied:
    aiortc would take it and fail later, in the handshake, without saying why."""
    for media in SessionDescription.parse(sdp).media:
        prints = media.dtls.fingerprints if media.dtls is not None else []
        if not any(_usable(f.algorithm, f.value) for f in prints):
            raise NegotiationError(
                f"the answer's {media.kind} section has no DTLS fingerprint to check: "
                "a=fingerprint:sha-256 (or sha-384, sha-512) and the digest in hex pairs"
            )


def _usable(algorithm: str, value: str) -> bool:
    size = FINGERPRINT_BYTES.get(algorithm.lower())
    pairs = value.split(":")
    return (size is not None and len(pairs) == size
            and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                    for p in pairs))


class ParticipantPeer:
    """The server's side of one participant's RTCPeerConnection."""

    def __init__(
        self,
        participant_id: str,
        events: PeerEvents,
        ice_servers: Sequence[RTCIceServer] = (),
        publish: bool = True,
    ) -> None:
        self.participant_id = participant_id
        self.events = events
        self.publish = publish
        self.publications = {kind: Publication(participant_id, kind) for kind in KINDS}
        self.audio_tap = AudioTap(participant_id)
        self.clock = SenderClock()
        self.slots: list[Slot] = []
        # What the slots forward is counted here; a room puts its own counters in.
        self.counters = MediaCounters()
        self.created_at = time.monotonic()
        self._ice_servers = list(ice_servers)
        self._pc: RTCPeerConnection | None = None
        self._answer: asyncio.Future[None] | None = None
        self._negotiation: asyncio.Task[None] | None = None
        self._renegotiate = False
        self._candidates = 0

    @property
    def pc(self) -> RTCPeerConnection:
        assert self._pc is not None, "start() first"
        return self._pc

    @property
    def connection_state(self) -> str:
        return self._pc.connectionState if self._pc else "new"

    async def start(self) -> None:
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=self._ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self._pc = pc
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        if self.publish:
            for kind in KINDS:
                transceiver = pc.addTransceiver(kind, direction="recvonly")
                transceiver.setCodecPreferences(_codecs(kind))
            self.publications["audio"].taps.append(self.audio_tap.push)
            self.audio_tap.start()

    def _on_connection_state(self) -> None:
        self.events.connection_state_changed(self.pc.connectionState)

    def _on_track(self, track: Any) -> None:
        receiver = next(
            t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track
        )
        publication = self.publications[track.kind]
        kind = track.kind

        def on_frame(codec: str, frame: Any) -> None:
            publication.push(
                EncodedFrame(
                    kind, codec, frame.data, frame.timestamp,
                    is_keyframe(codec, frame.data), time.monotonic(),
                )
            )

        capture_encoded(receiver, on_frame, publication.end)
        on_sender_report(
            receiver, lambda wall, rtp: self.clock.sender_report(kind, wall, rtp)
        )
        publication.attach_source(lambda: request_keyframe(receiver))

    # -- subscriptions --------------------------------------------------------------------

    def set_sources(self, sources: Sequence[Publication]) -> bool:
        """Receive exactly `sources` (other participants' publications) through the slots.

        Slots keep their source when it stays; freed slots are reused before new ones are
        added. Returns True when transceivers were added and an offer is needed.
        """
        wanted = list(sources)
        kept = {id(s.track.source) for s in self.slots if s.track.source in wanted}
        for slot in self.slots:
            if slot.track.source is not None and slot.track.source not in wanted:
                slot.track.set_source(None)
        added = False
        for source in wanted:
            if id(source) in kept:
                continue
            free = next(
                (s for s in self.slots if s.track.kind == source.kind and s.track.source is None),
                None,
            )
            if free is None:
                free = self._add_slot(source.kind)
                added = True
            slot = free
            slot.track.set_source(source)
        return added

    def _add_slot(self, kind: str) -> Slot:
        track = ForwardedTrack(kind, self.counters)
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(_codecs(kind))
        on_keyframe_request(transceiver.sender, track.request_keyframe)
        slot = Slot(transceiver, track)
        self.slots.append(slot)
        return slot

    def slot_infos(self) -> list[SlotInfo]:
        return [s.info for s in self.slots]

    # -- negotiation ----------------------------------------------------------------------

    def negotiate(self) -> None:
        """Send a new offer now, or right after the one in flight is answered."""
        if self._negotiation is not None and not self._negotiation.done():
            self._renegotiate = True
            return
        self._negotiation = asyncio.create_task(
            self._negotiate(), name=f"negotiate-{self.participant_id[:8]}"
        )

    async def _negotiate(self) -> None:
        while True:
            self._renegotiate = False
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)
            loop = asyncio.get_running_loop()
            self._answer = loop.create_future()
            await self.events.send_offer(self.pc.localDescription.sdp, self.slot_infos())
            try:
                await asyncio.wait_for(self._answer, ANSWER_TIMEOUT_S)
            except TimeoutError:
                log.warning("participant %s did not answer the offer", self.participant_id)
                self.events.connection_state_changed("failed")
                return
            finally:
                self._answer = None
            if not self._renegotiate:
                return

    async def accept_answer(self, sdp: str) -> None:
        """Apply the participant's answer to the offer in flight.

        A bad answer raises `NegotiationError` and leaves the offer waiting for a good one.
        """
        if self._answer is None or self._answer.done():
            raise NegotiationError("no offer is waiting for an answer")
        try:
            _check_fingerprints(sdp)
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except NegotiationError:
            raise
        except Exception as e:  # aiortc's parser asserts, indexes and converts as it goes
            detail = str(e) or f"the SDP is malformed ({type(e).__name__})"
            raise NegotiationError(f"the answer could not be applied: {detail}") from e
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    @property
    def awaiting_answer(self) -> bool:
        return self._answer is not None and not self._answer.done()

    async def add_ice_candidate(
        self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        if not candidate:
            return  # end of candidates
        try:
            parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
        except Exception as e:  # aiortc asserts on short candidates, raises on bad fields
            raise NegotiationError(f"malformed ICE candidate: {candidate[:80]!r}") from e
        if sdp_mid is None and sdp_mline_index is None:
            raise NegotiationError("an ICE candidate needs sdp_mid or sdp_mline_index")
        if self._candidates >= MAX_REMOTE_CANDIDATES:
            raise NegotiationError(
                f"at most {MAX_REMOTE_CANDIDATES} ICE candidates per connection; restart media"
            )
        self._candidates += 1
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        try:
            await self.pc.addIceCandidate(parsed)
        except Exception as e:  # e.g. an mDNS name dnspython cannot read
            raise NegotiationError(f"the ICE candidate could not be added: {e}") from e

    # -- state ----------------------------------------------------------------------------

    def set_muted(self, muted: bool) -> None:
        self.publications["audio"].muted = muted

    async def stats(self) -> dict[str, Any]:
        """Counters of what arrived and what was forwarded, for the judge and metrics."""
        return {
            "connection": self.connection_state,
            "audio_frames_in": self.publications["audio"].frames_in,
            "video_frames_in": self.publications["video"].frames_in,
            "frames_forwarded": sum(s.track.frames_out for s in self.slots),
            "frames_dropped": sum(s.track.frames_dropped for s in self.slots),
        }

    async def aclose(self) -> None:
        if self._negotiation is not None:
            self._negotiation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._negotiation
        for slot in self.slots:
            slot.track.stop()
        for publication in self.publications.values():
            publication.end()
            for track in tuple(publication.subscribers):
                track.set_source(None)
        if self._pc is not None:
            await self._pc.close()
        await self.audio_tap.aclose()


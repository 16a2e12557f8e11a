"""One participant's peer connection to the server: publishes up, subscribes through slots.

The server is always the offerer: it knows when slots must be added. Offers are serialized;
a change while an offer is out triggers one more round after the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
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
    ANSWERING_FEEDBACK,
    DROP,
    PADDING_BYTES,
    CapturedFrame,
    capture_encoded,
    consent_expired,
    hook_sends,
    is_padding,
    on_keyframe_request,
    on_sender_report,
    on_subscriber_feedback,
    request_keyframe,
    send_padding,
    sender_ssrcs,
)
from media.audio import AudioTap
from media.counters import MediaCounters
from media.downlink import LinkEstimate, VideoCandidate, VideoPlan
from media.errors import NegotiationError
from media.forwarding import TOP_LAYER, EncodedFrame, ForwardedTrack, Publication, is_keyframe
from media.pacing import Pacer
from media.recording import SenderClock

log = logging.getLogger(__name__)

KINDS = ("audio", "video")
PROBE_TICK_S = 0.02
RTT_FRESH_S = 0.2
RESUMED_S = 3.0  # aiortc sends a sender report every 0.5-1.5 s
PROBE_PACKET_BYTES = 12 + 8 + PADDING_BYTES + 10  # header, extensions, padding, SRTP tag
FORWARDED_CODECS = {"audio": ("audio/opus",), "video": ("video/VP8", "video/rtx")}
ANSWER_TIMEOUT_S = 20.0
# Each remote candidate is kept and checked for the connection's life; a browser sends a few.
MAX_REMOTE_CANDIDATES = 64
# Why a connection failed, as the participant is told (`media_failed`).
FAILURES = {
    "ice": "no media path to the server, or the server's checks on it went unanswered for "
           "30 s (a firewall, a network change, a link that stopped)",
    "dtls": "the media encryption handshake (DTLS) with the server failed",
    "no_answer": f"no answer to the server's offer within {ANSWER_TIMEOUT_S:.0f} s",
}
# The digests aiortc checks a peer's DTLS certificate with, and their sizes in bytes.
FINGERPRINT_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}


@dataclass(frozen=True)
class SlotInfo:
    """Which participant's media a subscriber receives on transceiver `mid`."""

    mid: str | None
    kind: str
    participant_id: str | None
    # Held back because the subscriber's link cannot carry it now (video only).
    held: bool = False
    # Sent at a lower frame rate (fewer temporal layers) for the same reason.
    reduced: bool = False


@dataclass
class Slot:
    transceiver: RTCRtpTransceiver
    track: ForwardedTrack

    @property
    def info(self) -> SlotInfo:
        source = self.track.source
        return SlotInfo(
            self.transceiver.mid, self.track.kind, source.participant_id if source else None,
            self.track.held, not self.track.held and self.track.top_layer < TOP_LAYER,
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


def _candidates_in(sdp: str) -> int:
    """Distinct candidates in an SDP (with BUNDLE the same one may be listed per section)."""
    return len({(c.protocol, c.ip, c.port)
                for media in SessionDescription.parse(sdp).media for c in media.ice_candidates})


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


def _layer_rates(publication: Publication) -> tuple[float, ...]:
    """What `publication` costs with temporal layers 0 to k, for each layer it sends (as
    measured over the last second; one rate for a publisher that sends no layers)."""
    sent = max((k for k, fps in enumerate(publication.layer_fps) if fps > 0), default=0)
    return tuple(itertools.accumulate(publication.layer_bps[:sent + 1]))


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
        # The subscriber's downlink: what it carries, which videos fit, video paced to it.
        self.adapting = True
        self.link = LinkEstimate()
        self.plan = VideoPlan()
        self.pacer = Pacer()
        self._audio_ssrcs: set[int] = set()
        self._retransmit_ssrcs: set[int] = set()
        self._probe_wanted = asyncio.Event()
        self._prober: asyncio.Task[None] | None = None
        self._ice_servers = list(ice_servers)
        self._pc: RTCPeerConnection | None = None
        self._answer: asyncio.Future[None] | None = None
        self._negotiation: asyncio.Task[None] | None = None
        self._renegotiate = False
        self._candidates = 0
        # Why the connection failed, once it has: a key of `FAILURES`.
        self.failure: str | None = None
        self._closing = False

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
        self._prober = asyncio.create_task(self._probe(), name=f"probe-{self.participant_id[:8]}")
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        if self.publish:
            for kind in KINDS:
                transceiver = pc.addTransceiver(kind, direction="recvonly")
                transceiver.setCodecPreferences(_codecs(kind))
            self.publications["audio"].taps.append(self.audio_tap.push)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "closed" and not self._closing and consent_expired(self.pc):
            # aiortc closes, never fails, a connection whose ICE consent expired (its sockets
            # close under DTLS first): lost, though nobody closed it.
            state = "failed"
            self.failure = self.failure or "ice"
        elif state == "failed" and self.failure is None:
            self.failure = "ice" if self.pc.iceConnectionState == "failed" else "dtls"
        self.events.connection_state_changed(state)

    def _on_track(self, track: Any) -> None:
        receiver = next(
            t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track
        )
        publication = self.publications[track.kind]
        kind = track.kind

        def on_frame(codec: str, frame: CapturedFrame) -> None:
            publication.push(
                EncodedFrame(
                    kind, codec, frame.data, frame.timestamp,
                    is_keyframe(codec, frame.data), time.monotonic(),
                    frame.layer, frame.layer_sync,
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
        media_ssrc, rtx_ssrc = sender_ssrcs(transceiver.sender)
        on_subscriber_feedback(transceiver.sender, functools.partial(self._on_report, track))
        if kind == "audio":
            self._audio_ssrcs.update((media_ssrc, rtx_ssrc))
        else:
            self._retransmit_ssrcs.add(rtx_ssrc)
        slot = Slot(transceiver, track)
        self.slots.append(slot)
        return slot

    def slot_infos(self) -> list[SlotInfo]:
        return [s.info for s in self.slots]

    # -- the subscriber's downlink --------------------------------------------------------

    def _on_report(self, track: ForwardedTrack, ssrc: int, fraction: float,
                   rtt: float | None) -> None:
        now = time.monotonic()
        # aiortc's sender reports carry the time of the last packet sent, so a stream
        # measures a round trip too long by up to the time between its packets: far too long
        # for one that sends nothing (a held video, a muted voice, and the reports on those
        # sent before it resumed), and by a frame's interval for video (133 ms at a quarter
        # of the frame rate, a queue's worth). Audio (50 packets a second) measures it.
        if (now - track.last_sent_at > RTT_FRESH_S or now - track.sending_since < RESUMED_S
                or (track.kind == "video" and self._audio_flowing(now))):
            rtt = None
        self.link.report(ssrc, fraction, rtt, now, probe=ssrc in self._retransmit_ssrcs)

    def _audio_flowing(self, now: float) -> bool:
        return any(s.track.kind == "audio" and now - s.track.last_sent_at <= RTT_FRESH_S
                   for s in self.slots)

    def _before_send(self, data: bytes, rtcp: bool) -> Any:
        """Every packet to the subscriber: counted; video waits for the pacer, and a video
        retransmission the link has no room for now is not sent."""
        now = time.monotonic()
        ssrc = int.from_bytes(data[8:12], "big")
        if rtcp or ssrc in self._audio_ssrcs:
            self.link.sent(len(data), now)
            return None
        if ssrc in self._retransmit_ssrcs and is_padding(data):
            self.link.sent(len(data), now, padding=True)
            return None
        if ssrc in self._retransmit_ssrcs or ANSWERING_FEEDBACK.get():
            if not self.pacer.try_take(len(data), now):
                return DROP
            self.link.sent(len(data), now)
            return None
        return self._paced(len(data))

    async def _paced(self, nbytes: int) -> None:
        await self.pacer.take(nbytes)
        self.link.sent(nbytes, time.monotonic())

    def adapt(self, importance: Sequence[str], now: float) -> bool:
        """Send fewer frames of, or hold back, the videos this subscriber's link cannot carry,
        most important kept longest (`importance`: participant ids, most important first;
        others after them in slot order). Returns whether the slots changed."""
        if not self.adapting:
            return False
        rank = {pid: i for i, pid in enumerate(importance)}
        videos = sorted(
            (VideoCandidate(i, s.track.source.participant_id, _layer_rates(s.track.source))
             for i, s in enumerate(self.slots)
             if s.track.kind == "video" and s.track.source is not None),
            key=lambda v: (rank.get(v.participant_id, len(rank)), v.slot),
        )
        layers = {v.slot: len(v.rates) for v in videos}
        audio_slots = sum(1 for s in self.slots
                          if s.track.kind == "audio" and s.track.source is not None)
        held = self.plan.decide(self.link, videos, audio_slots, now)
        self.pacer.rate_bps = self.plan.video_budget(self.link, audio_slots)
        if self.plan.probing:
            self._probe_wanted.set()
        else:
            self._probe_wanted.clear()
        before = self.slot_infos()
        for i, slot in enumerate(self.slots):
            if slot.track.kind != "video":
                continue
            slot.track.hold(i in held)
            # The layers the publisher sends, less those left out for this link.
            cut = self.plan.cut.get(i, 0)
            slot.track.set_top_layer(layers[i] - 1 - cut if cut and i in layers else TOP_LAYER)
        return self.slot_infos() != before

    async def _probe(self) -> None:
        """While the plan probes the link: pad what we send up to its reach (the estimate, or
        less on a link not yet seen to carry it), so that the estimate can grow on evidence
        of what the link carries (RTX padding, as browsers probe; the subscriber drops it)."""
        credit = 0.0  # packets owed
        while True:
            if not self._probe_wanted.is_set():
                credit = 0.0
            await self._probe_wanted.wait()
            try:
                sender = next((s.transceiver.sender for s in self.slots
                               if s.track.kind == "video"), None)
                target = self.link.reach
                if sender is not None and target is not None:
                    missing = target - self.link.media_bps(time.monotonic())
                    # Fractions of a packet add up: on a narrow link a tick's share of what
                    # is missing is less than one packet, and probing would send nothing.
                    credit = max(0.0, credit + missing * PROBE_TICK_S / 8 / PROBE_PACKET_BYTES)
                    packets = int(credit)
                    credit -= packets
                    for _ in range(packets):
                        if not await send_padding(sender):
                            break
            except Exception:
                # Probing is an optimisation: it must never take the peer down with it.
                log.exception("participant %s: probing the link failed", self.participant_id)
                self._probe_wanted.clear()
            await asyncio.sleep(PROBE_TICK_S)

    def downlink(self) -> dict[str, Any]:
        """What the court is shown of the subscriber's link."""
        estimate = self.link.bps
        reduced = [{"participant_id": s.track.source.participant_id,
                    "fps": round(sum(s.track.source.layer_fps[:s.track.top_layer + 1]), 1)}
                   for s in self.slots if s.info.reduced and s.track.source is not None]
        return {
            "downlink_kbps": None if estimate is None else round(estimate / 1000),
            "videos_held": sum(1 for s in self.slots if s.track.held),
            "videos_reduced": reduced,
        }

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
                self.failure = "no_answer"
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
            # Candidates in the answer are checked for the connection's life like trickled
            # ones: they count against the same cap.
            candidates = _candidates_in(sdp)
            if self._candidates + candidates > MAX_REMOTE_CANDIDATES:
                raise NegotiationError(
                    f"at most {MAX_REMOTE_CANDIDATES} ICE candidates per connection; the answer "
                    f"carries {candidates}")
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            self._candidates += candidates
            # With BUNDLE every slot shares one transport, known once the answer is applied.
            for transport in {id(s.transceiver.sender.transport): s.transceiver.sender.transport
                              for s in self.slots}.values():
                hook_sends(transport, self._before_send)
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
        self._closing = True
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
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


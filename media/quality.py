"""Connection quality of each participant's peer, for the judge's console.

From aiortc's statistics: packets lost on what the participant sends us (our receivers'
counters between two samples), what they report losing of what we send (RTCP receiver
reports), the round trip those reports measure, and the bitrates both ways.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from media.peer import ParticipantPeer

# Thresholds of a usable video call: above them speech breaks up or lags noticeably.
POOR_LOSS_PCT, FAIR_LOSS_PCT = 5.0, 1.5
POOR_RTT_MS, FAIR_RTT_MS = 400.0, 200.0


@dataclass(frozen=True)
class LinkQuality:
    participant_id: str
    connection: str
    rtt_ms: float | None
    loss_pct: float | None  # the worse direction, over the last interval
    kbps_in: float
    kbps_out: float
    grade: str  # good | fair | poor | unknown
    # The subscriber's downlink as estimated (None: no limit seen), videos held back, and
    # videos sent at a lower frame rate (whose, and at how many frames a second).
    downlink_kbps: int | None = None
    videos_held: int = 0
    videos_reduced: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id, "connection": self.connection,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms),
            "loss_pct": None if self.loss_pct is None else round(self.loss_pct, 1),
            "kbps_in": round(self.kbps_in), "kbps_out": round(self.kbps_out),
            "grade": self.grade, "downlink_kbps": self.downlink_kbps,
            "videos_held": self.videos_held, "videos_reduced": self.videos_reduced,
        }


def grade(connection: str, rtt_ms: float | None, loss_pct: float | None) -> str:
    if connection in ("failed", "disconnected", "closed"):
        return "poor"
    if connection != "connected" or (rtt_ms is None and loss_pct is None):
        return "unknown"
    loss, rtt = loss_pct or 0.0, rtt_ms or 0.0
    if loss > POOR_LOSS_PCT or rtt > POOR_RTT_MS:
        return "poor"
    if loss > FAIR_LOSS_PCT or rtt > FAIR_RTT_MS:
        return "fair"
    return "good"


@dataclass
class _Counters:
    at: float
    received: int
    lost: int
    bytes_in: int
    bytes_out: int


class QualityMeter:
    """Samples peers' statistics; rates are over the time since a peer's previous sample."""

    def __init__(self) -> None:
        self._last: dict[int, _Counters] = {}

    async def sample(self, peer: ParticipantPeer) -> LinkQuality:
        connection = peer.connection_state
        received = lost = bytes_out = 0
        rtts: list[float] = []
        remote_loss: list[float] = []
        if connection != "new":
            for stats in (await peer.pc.getStats()).values():
                if stats.type == "inbound-rtp":
                    received += stats.packetsReceived
                    lost += max(0, stats.packetsLost)
                elif stats.type == "outbound-rtp":
                    bytes_out += stats.bytesSent
                elif stats.type == "remote-inbound-rtp":
                    if stats.roundTripTime:
                        rtts.append(stats.roundTripTime * 1000.0)
                    remote_loss.append(stats.fractionLost / 256.0 * 100.0)
        bytes_in = sum(p.bytes_in for p in peer.publications.values())
        now = time.monotonic()
        key = id(peer)
        last = self._last.get(key)
        self._last[key] = _Counters(now, received, lost, bytes_in, bytes_out)
        kbps_in = kbps_out = 0.0
        inbound_loss: float | None = None
        if last is not None and now > last.at:
            dt = now - last.at
            kbps_in = (bytes_in - last.bytes_in) * 8 / dt / 1000
            kbps_out = (bytes_out - last.bytes_out) * 8 / dt / 1000
            expected = (received - last.received) + (lost - last.lost)
            if expected > 0:
                inbound_loss = 100.0 * (lost - last.lost) / expected
            elif peer.publish and connection == "connected" and last.received > 0:
                # Media that flowed stopped (a dead link: ICE notices only after 30 s). RTP
                # counters cannot count packets that never came, and the receiver reports
                # are stale: everything the participant sent was lost.
                inbound_loss = 100.0
        losses = [x for x in (inbound_loss, max(remote_loss, default=None)) if x is not None]
        loss = max(losses) if losses else None
        # Our own measure first: aiortc's is wrong for a stream that sends nothing (it
        # reports the time of the last packet in every sender report).
        rtt = (peer.link.rtt * 1000.0 if peer.link.rtt is not None
               else sum(rtts) / len(rtts) if rtts else None)
        return LinkQuality(peer.participant_id, connection, rtt, loss, kbps_in, kbps_out,
                           grade(connection, rtt, loss), **peer.downlink())

    def forget(self, peers: list[ParticipantPeer]) -> None:
        """Drop counters of peers that are gone."""
        keep = {id(p) for p in peers}
        for key in [k for k in self._last if k not in keep]:
            del self._last[key]

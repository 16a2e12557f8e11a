"""Grading a participant's connection for the judge's console."""

from __future__ import annotations

import pytest

from media.downlink import LinkEstimate
from media.quality import QualityMeter, grade


@pytest.mark.parametrize(
    ("connection", "rtt", "loss", "expected"),
    [
        ("connected", 40.0, 0.0, "good"),
        ("connected", 250.0, 0.0, "fair"),
        ("connected", 40.0, 2.0, "fair"),
        ("connected", 40.0, 8.0, "poor"),
        ("connected", 600.0, 0.0, "poor"),
        ("connected", None, None, "unknown"),
        ("connecting", 40.0, 0.0, "unknown"),
        ("failed", None, None, "poor"),
        ("disconnected", 40.0, 0.0, "poor"),
    ],
)
def test_grade(connection, rtt, loss, expected):
    assert grade(connection, rtt, loss) == expected


class _Stats:
    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


class _FakePeer:
    """What QualityMeter reads of a ParticipantPeer: its state, publications and statistics."""

    def __init__(self) -> None:
        self.participant_id = "p1"
        self.connection_state = "connected"
        self.publish = True
        self.publications = {"audio": _Stats(bytes_in=0)}
        self.received = 0
        self.pc = self
        self.link = LinkEstimate()  # nothing measured of the downlink yet

    def downlink(self) -> dict[str, object]:
        return {"downlink_kbps": None, "videos_held": 0, "videos_reduced": []}

    async def getStats(self) -> dict[str, _Stats]:
        return {
            "in": _Stats(type="inbound-rtp", packetsReceived=self.received, packetsLost=0),
            "out": _Stats(type="outbound-rtp", bytesSent=0),
            # The participant's last receiver report: fine, but stale on a dead link.
            "remote": _Stats(type="remote-inbound-rtp", roundTripTime=0.02, fractionLost=0),
        }


async def test_a_link_that_stopped_carrying_media_is_graded_poor():
    peer = _FakePeer()
    meter = QualityMeter()
    await meter.sample(peer)  # type: ignore[arg-type]
    peer.received = 100
    assert (await meter.sample(peer)).grade == "good"  # type: ignore[arg-type]
    # Nothing more arrives (a blackout): the counters stand still and the reports are stale.
    stalled = await meter.sample(peer)  # type: ignore[arg-type]
    assert stalled.loss_pct == 100.0 and stalled.grade == "poor"
    # A participant whose media never started is not yet known to be lost.
    fresh = _FakePeer()
    await meter.sample(fresh)  # type: ignore[arg-type]
    assert (await meter.sample(fresh)).grade == "good"  # type: ignore[arg-type]

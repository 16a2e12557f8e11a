"""The server's peer connection, against a real aiortc client: answers and candidates it takes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from media.errors import NegotiationError
from media.peer import MAX_REMOTE_CANDIDATES, ParticipantPeer, SlotInfo
from tests.fuzz.run import fuzz


class Offers:
    def __init__(self) -> None:
        self.sdp: list[str] = []
        self.states: list[str] = []
        self.made = asyncio.Event()

    async def send_offer(self, sdp: str, slots: list[SlotInfo]) -> None:
        self.sdp.append(sdp)
        self.made.set()

    def slots_changed(self, slots: list[SlotInfo]) -> None:
        return None

    def connection_state_changed(self, state: str) -> None:
        self.states.append(state)


@pytest.fixture
async def offered() -> AsyncIterator[tuple[ParticipantPeer, str]]:
    """A peer with an offer out, and a real client's answer to it."""
    offers = Offers()
    peer = ParticipantPeer("p", offers)
    client = RTCPeerConnection()
    try:
        await peer.start()
        peer.negotiate()
        await asyncio.wait_for(offers.made.wait(), 10)
        client.addTransceiver("audio", direction="sendonly")
        client.addTransceiver("video", direction="sendonly")
        await client.setRemoteDescription(RTCSessionDescription(offers.sdp[-1], "offer"))
        await client.setLocalDescription(await client.createAnswer())
        yield peer, client.localDescription.sdp
    finally:
        await client.close()
        await peer.aclose()


def set_fingerprints(sdp: str, value: str | None, algorithm: str | None = None) -> str:
    return re.sub(r"a=fingerprint:(\S+) (\S+)",
                  lambda m: f"a=fingerprint:{algorithm or m.group(1)} {value or m.group(2)}", sdp)


@pytest.mark.parametrize(("change", "named"), [
    (lambda sdp: re.sub(r"a=fingerprint:.*\r\n", "", sdp), "no DTLS fingerprint"),
    (lambda sdp: set_fingerprints(sdp, "AB:CD"), "no DTLS fingerprint"),
    (lambda sdp: set_fingerprints(sdp, "zz:" * 31 + "zz"), "no DTLS fingerprint"),
    (lambda sdp: set_fingerprints(sdp, None, "md5"), "no DTLS fingerprint"),
    (lambda sdp: sdp.replace("a=candidate:", "a=candidate:x", 1)
     .replace(" typ host", "", 1), "the SDP is malformed (AssertionError)"),
])
async def test_an_answer_that_cannot_work_is_refused_naming_why_and_the_offer_waits(
    offered: tuple[ParticipantPeer, str], change: object, named: str,
) -> None:
    peer, answer = offered
    bad = change(answer)  # type: ignore[operator]
    assert bad != answer
    with pytest.raises(NegotiationError, match=re.escape(named)):
        await peer.accept_answer(bad)
    assert peer.awaiting_answer
    await peer.accept_answer(answer)
    assert not peer.awaiting_answer


async def test_a_candidate_needs_a_section_and_whatever_aiortc_refuses_is_named(
    offered: tuple[ParticipantPeer, str],
) -> None:
    peer, answer = offered
    await peer.accept_answer(answer)
    line = "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"
    with pytest.raises(NegotiationError, match="sdp_mid or sdp_mline_index"):
        await peer.add_ice_candidate(line, None, None)
    with pytest.raises(NegotiationError, match="malformed ICE candidate"):
        await peer.add_ice_candidate("candidate:1 1 udp", "0", None)
    await peer.add_ice_candidate(line, "0", None)
    await peer.add_ice_candidate("", None, None)  # the end of candidates


async def test_a_connection_takes_a_bounded_number_of_candidates(
    offered: tuple[ParticipantPeer, str],
) -> None:
    peer, answer = offered
    await peer.accept_answer(answer)
    in_answer = len(set(re.findall(r"a=candidate:\S+ \d+ (\S+ \d+ \S+ \d+)", answer)))
    for port in range(MAX_REMOTE_CANDIDATES - in_answer):
        await peer.add_ice_candidate(f"candidate:1 1 udp 1 127.0.0.1 {9 + port} typ host", "0",
                                     None)
    with pytest.raises(NegotiationError, match=f"at most {MAX_REMOTE_CANDIDATES}"):
        await peer.add_ice_candidate("candidate:1 1 udp 1 127.0.0.1 7 typ host", "0", None)
    # Refused ones do not count: a malformed candidate is not kept.
    fresh = ParticipantPeer("q", Offers())
    await fresh.start()
    try:
        for _ in range(MAX_REMOTE_CANDIDATES + 1):
            with pytest.raises(NegotiationError, match="malformed"):
                await fresh.add_ice_candidate("candidate:1 1 udp", "0", None)
        await fresh.add_ice_candidate("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", None)
    finally:
        await fresh.aclose()


async def test_candidates_inside_an_answer_count_against_the_same_cap(
    offered: tuple[ParticipantPeer, str],
) -> None:
    peer, answer = offered
    first_media = answer.index("m=", answer.index("m=") + 1)  # after the first section's lines
    lines = "".join(f"a=candidate:{n} 1 udp 1 127.0.0.1 {1000 + n} typ host\r\n"
                    for n in range(MAX_REMOTE_CANDIDATES + 1))
    stuffed = answer[:first_media] + lines + answer[first_media:]
    with pytest.raises(NegotiationError, match=f"at most {MAX_REMOTE_CANDIDATES}"):
        await peer.accept_answer(stuffed)
    # The offer still waits, and an answer with a few candidates leaves room for the rest.
    few = answer[:first_media] + "".join(
        f"a=candidate:{n} 1 udp 1 127.0.0.1 {2000 + n} typ host\r\n" for n in range(4)
    ) + answer[first_media:]
    await peer.accept_answer(few)
    in_answer = len(set(re.findall(r"a=candidate:\S+ \d+ (\S+ \d+ \S+ \d+)", answer)))
    for port in range(MAX_REMOTE_CANDIDATES - 4 - in_answer):
        await peer.add_ice_candidate(f"candidate:1 1 udp 1 127.0.0.1 {9 + port} typ host", "0",
                                     None)
    with pytest.raises(NegotiationError, match=f"at most {MAX_REMOTE_CANDIDATES}"):
        await peer.add_ice_candidate("candidate:1 1 udp 1 127.0.0.1 7 typ host", "0", None)


SEEDS = [b"\x00" + b"v=0\r\n", b"\x01\x10\x20", b"\x02candidate:1 1 udp 1 127.0.0.1 9 typ host"]


def test_answers_and_candidates_under_coverage_guided_fuzzing(tmp_path: Path) -> None:
    """tests/fuzz/fuzz_sdp.py: whatever the text, NegotiationError or nothing escapes."""
    assert fuzz("fuzz_sdp", 1_500, tmp_path, SEEDS, max_len=4096, max_seconds=90) > 0

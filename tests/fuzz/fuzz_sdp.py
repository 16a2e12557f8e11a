"""Coverage-guided fuzzing (atheris) of the SDP answers and ICE candidates media/peer.py takes.

A real `ParticipantPeer` makes an offer; each input becomes an answer (the whole text, or a
genuine answer with a piece replaced) or a candidate line. Applying it either works or raises
`NegotiationError`: nothing else escapes, and nothing hangs (libFuzzer's -timeout).

    python -m tests.fuzz.fuzz_sdp -runs=3000 CORPUS_DIR

ICE only runs on 127.0.0.1 here, so no check can leave the machine whatever an input says;
candidates go to a section that does not exist, so they are parsed and refused or dropped,
never tried.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["media", "aiortc.sdp"]):
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from media.aiortc_adapter import restrict_host_addresses
    from media.errors import NegotiationError
    from media.peer import ParticipantPeer, SlotInfo


class Offers:
    """Stands for the signaling session: keeps the offers the peer sends."""

    def __init__(self) -> None:
        self.sdp: list[str] = []
        self.made = asyncio.Event()

    async def send_offer(self, sdp: str, slots: list[SlotInfo]) -> None:
        self.sdp.append(sdp)
        self.made.set()

    def slots_changed(self, slots: list[SlotInfo]) -> None:
        return None

    def connection_state_changed(self, state: str) -> None:
        return None


class Target:
    """A peer with an offer waiting, and a genuine answer to it to cut pieces from."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.peer: ParticipantPeer | None = None
        self.answer = ""
        self.loop.run_until_complete(self.fresh())

    async def fresh(self) -> None:
        if self.peer is not None:
            await self.peer.aclose()
        offers = Offers()
        self.peer = ParticipantPeer("fuzz", offers)
        await self.peer.start()
        self.peer.negotiate()
        await offers.made.wait()
        if not self.answer:
            client = RTCPeerConnection()
            client.addTransceiver("audio", direction="sendonly")
            client.addTransceiver("video", direction="sendonly")
            await client.setRemoteDescription(RTCSessionDescription(offers.sdp[-1], "offer"))
            await client.setLocalDescription(await client.createAnswer())
            self.answer = client.localDescription.sdp
            await client.close()

    async def answer_with(self, sdp: str) -> None:
        assert self.peer is not None
        try:
            await self.peer.accept_answer(sdp)
        except NegotiationError:
            return
        await self.fresh()  # taken: the next input needs an offer of its own

    async def candidate(self, line: str, mid: str | None, index: int | None) -> None:
        assert self.peer is not None
        try:
            await self.peer.add_ice_candidate(line, mid, index)
        except NegotiationError:
            return


target: Target | None = None


def test_one_input(data: bytes) -> None:
    global target
    if target is None:
        target = Target()
    fdp = atheris.FuzzedDataProvider(data)
    way = fdp.ConsumeIntInRange(0, 2)
    work: Any
    if way == 0:
        work = target.answer_with(fdp.ConsumeUnicodeNoSurrogates(atheris.ALL_REMAINING))
    elif way == 1:
        genuine = target.answer
        start = fdp.ConsumeIntInRange(0, len(genuine))
        end = fdp.ConsumeIntInRange(start, len(genuine))
        piece = fdp.ConsumeUnicodeNoSurrogates(atheris.ALL_REMAINING)
        work = target.answer_with(genuine[:start] + piece + genuine[end:])
    else:
        index = fdp.ConsumeIntInRange(100, 1024) if fdp.ConsumeBool() else None
        mid = fdp.PickValueInList([None, "no-such-section"])
        line = fdp.ConsumeUnicodeNoSurrogates(atheris.ALL_REMAINING)
        work = target.candidate(line, mid, index)
    target.loop.run_until_complete(work)


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # aiortc logs every candidate sent before an answer
    restrict_host_addresses(["127.0.0.1"])
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

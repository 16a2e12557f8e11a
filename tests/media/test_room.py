"""The media room applies a hearing's routing to real peers: slots, taps, and nothing more."""

from __future__ import annotations

import pytest

from media.peer import ParticipantPeer, SlotInfo
from media.room import MediaRoom, Routing


class Events:
    def __init__(self) -> None:
        self.offers = 0
        self.slot_changes: list[list[SlotInfo]] = []

    async def send_offer(self, sdp: str, slots: list[SlotInfo]) -> None:
        self.offers += 1

    def slots_changed(self, slots: list[SlotInfo]) -> None:
        self.slot_changes.append(slots)

    def connection_state_changed(self, state: str) -> None:
        return None


def everything(*pids: str) -> tuple[tuple[str, str], ...]:
    return tuple((p, kind) for p in pids for kind in ("audio", "video"))


def sources(peer: ParticipantPeer) -> set[tuple[str | None, str]]:
    return {(s.participant_id, s.kind) for s in peer.slot_infos() if s.participant_id}


@pytest.fixture
async def room():
    room = MediaRoom("h")
    yield room
    await room.aclose()


async def test_a_new_peer_is_off_the_record_until_the_routing_says_so(room: MediaRoom) -> None:
    events = Events()
    await room.add(ParticipantPeer("a", events))
    assert not any(p.on_record for p in room.peers["a"].publications.values())
    room.apply(Routing(sources={"a": ()}, on_record=frozenset(everything("a"))))
    assert all(p.on_record for p in room.peers["a"].publications.values())


async def test_slots_follow_the_routing_and_an_unchanged_routing_touches_nobody(
        room: MediaRoom) -> None:
    a, b, c = Events(), Events(), Events()
    for pid, events in (("a", a), ("b", b), ("c", c)):
        await room.add(ParticipantPeer(pid, events))
    everyone = Routing(sources={"a": everything("b", "c"), "b": everything("a", "c"),
                                "c": everything("a", "b")},
                       on_record=frozenset(everything("a", "b", "c")))
    room.apply(everyone)
    assert sources(room.peers["a"]) == set(everything("b", "c"))
    changes = [len(e.slot_changes) for e in (a, b, c)]
    room.apply(Routing(sources=dict(everyone.sources), on_record=everyone.on_record))
    assert [len(e.slot_changes) for e in (a, b, c)] == changes  # equal routing: nothing sent
    # b and c consult: a receives neither; their slots carry each other only; off the record.
    private = Routing(sources={"a": (), "b": everything("c"), "c": everything("b")},
                      on_record=frozenset(everything("a")))
    room.apply(private)
    assert sources(room.peers["a"]) == set()
    assert sources(room.peers["b"]) == set(everything("c"))
    assert not room.peers["b"].publications["audio"].on_record
    assert room.peers["a"].publications["audio"].on_record
    assert a.slot_changes[-1] and all(s.participant_id is None for s in a.slot_changes[-1])


async def test_a_rejoin_starts_from_what_was_learnt_of_the_participants_link(
    room: MediaRoom,
) -> None:
    events = Events()
    first = ParticipantPeer("a", events)
    await room.add(first)
    first.link.bps = 700_000  # its downlink showed a limit
    await room.remove("a")
    again = ParticipantPeer("a", events)
    await room.add(again)
    assert again.link.bps == 700_000  # not a flood of everything until loss is reported
    # Replaced by a newer peer (a rejoin before the old one left): the same.
    newest = ParticipantPeer("a", events)
    await room.add(newest)
    assert newest.link.bps == 700_000
    # A link that never showed a limit leaves nothing to remember.
    other = ParticipantPeer("b", events)
    await room.add(other)
    await room.remove("b")
    back = ParticipantPeer("b", events)
    await room.add(back)
    assert back.link.bps is None

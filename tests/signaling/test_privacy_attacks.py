"""Privacy under attack: a hostile participant's messages, and outages, in the middle of what the
court does. After each step nothing of a private or muted participant reaches anyone else, the
court's decisions (mute, removal) stand, and what everyone's screen says matches what the media
does. Real server, real aiortc peers.

Some races need a moment that real hearings hit by chance (a database or disk that is slow just
then); the tests hold that moment open with a `Gate` on the slow call instead of hoping for it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.clients import HearingClient, SpeechTrack
from tests.signaling.conftest import LiveHearing
from tests.signaling.test_disk_full import fill
from tests.signaling.test_hearing_room import join_all
from tests.signaling.test_privacy import (
    assert_nothing_recorded,
    close_hearing,
    consult,
    consulting,
    recorded_paths,
)
from tests.speech import SPEECH
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Gate:
    """Holds the first call of a wrapped coroutine function that `when` picks, once armed,
    until released: the slow moment a race needs."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = asyncio.Event()
        self.released = asyncio.Event()

    def wrap(self, call: Callable[..., Awaitable[Any]],
             when: Callable[..., bool] = lambda *a, **k: True) -> Callable[..., Awaitable[Any]]:
        async def gated(*args: Any, **kwargs: Any) -> Any:
            if self.armed and when(*args, **kwargs):
                self.armed = False
                self.entered.set()
                await self.released.wait()
            return await call(*args, **kwargs)

        return gated

    async def held(self, within: float = 10.0) -> None:
        await asyncio.wait_for(self.entered.wait(), within)


async def growth_from(client: HearingClient, participant_id: str, kind: str,
                      seconds: float) -> int:
    """Frames of `participant_id`'s `kind` received over the next `seconds`, on whichever slots
    carry them by then (a slot that starts carrying them meanwhile counts from zero)."""
    before = dict(client.frames_by_mid)
    await asyncio.sleep(seconds)
    return sum(client.frames_by_mid.get(s["mid"], 0) - before.get(s["mid"], 0)
               for s in client.slots
               if s["participant_id"] == participant_id and s["kind"] == kind)


def seat_of(client: HearingClient, participant_id: str) -> dict[str, Any]:
    return client.seat(participant_id) or {}


async def rejoin_while_gated(hearing: LiveHearing, participants: list[HearingClient],
                             role: str, gate: Gate) -> HearingClient:
    """`role` joins again from a second connection; its arrival is held by `gate`."""
    again = HearingClient(hearing.base_url, f"{role}-again")
    participants.append(again)
    gate.armed = True
    await again.join(hearing.tokens[role])
    await gate.held()
    return again


async def test_a_rejoin_does_not_undo_a_mute_the_court_made_while_it_arrived(
        client, hearing, participants, monkeypatch):
    """The court mutes the defendant while the defendant's page reconnects (its arrival reads
    the record so far from a slow database): the mute stands, and the defendant's audio
    reaches nobody."""
    c = await join_all(hearing, participants)
    judge, lawyer = c["judge"], c["lawyer"]
    d_id = hearing.ids["defendant"]
    transcripts = client.app[HUB].transcripts
    gate = Gate()
    monkeypatch.setattr(transcripts, "of_hearing", gate.wrap(transcripts.of_hearing))

    again = await rejoin_while_gated(hearing, participants, "defendant", gate)
    await judge.send({"type": "command", "action": "mute", "participant_id": d_id})
    await judge.wait_for(lambda: seat_of(judge, d_id).get("muted_by_court") is True)
    gate.released.set()
    await again.next_message("offer", within=20)
    await again.wait_for(lambda: again.frames_from(hearing.ids["judge"], "audio") > 10, 30)

    assert seat_of(judge, d_id).get("muted_by_court") is True, (
        "the rejoin wrote back the defendant's seat as it was before the court muted them")
    assert await growth_from(judge, d_id, "audio", 2.0) == 0
    assert await growth_from(lawyer, d_id, "audio", 0.5) == 0


async def test_a_rejoin_does_not_undo_a_removal_the_court_made_while_it_arrived(
        client, hearing, participants, monkeypatch):
    """The court removes the defendant while the defendant's page reconnects: they are out,
    and joining once more puts them in the lobby, not back in the hearing."""
    c = await join_all(hearing, participants)
    judge = c["judge"]
    d_id = hearing.ids["defendant"]
    transcripts = client.app[HUB].transcripts
    gate = Gate()
    monkeypatch.setattr(transcripts, "of_hearing", gate.wrap(transcripts.of_hearing))

    again = await rejoin_while_gated(hearing, participants, "defendant", gate)
    await judge.send({"type": "command", "action": "remove", "participant_id": d_id})
    await judge.wait_for(lambda: seat_of(judge, d_id).get("admitted") is False)
    gate.released.set()
    await again.wait_for(lambda: again.closed_code is not None, 20)

    third = HearingClient(hearing.base_url, "defendant-third")
    participants.append(third)
    await third.join(hearing.tokens["defendant"])
    welcome = await third.next_message("welcome")
    assert welcome["participant"]["admitted"] is False, "the removed defendant is back in"
    await judge.wait_for(lambda: seat_of(judge, d_id).get("present") is True)
    assert seat_of(judge, d_id).get("admitted") is False


async def test_removing_one_side_of_a_consultation_never_puts_them_before_the_court(
        client, hearing, participants, monkeypatch):
    """The judge removes the defendant in the middle of a consultation: the defendant goes
    from the consultation straight out; not one frame of theirs reaches the court on the way,
    however long the audit trail takes to write."""
    c = await join_all(hearing, participants)
    judge, lawyer = c["judge"], c["lawyer"]
    d_id = hearing.ids["defendant"]
    await consult(judge, lawyer, hearing)
    await judge.wait_for(lambda: not [s for s in judge.slots if s["participant_id"] == d_id])
    registry = client.app[HUB].registry
    gate = Gate()
    monkeypatch.setattr(registry, "record", gate.wrap(
        registry.record, lambda hearing_id, actor, action, **data: action.startswith(
            "consultation.ended")))

    gate.armed = True
    await judge.send({"type": "command", "action": "remove", "participant_id": d_id})
    await gate.held()
    try:
        assert await growth_from(judge, d_id, "audio", 1.5) == 0, (
            "the removed defendant was heard by the court while leaving the consultation")
        assert not [s for s in judge.slots if s["participant_id"] == d_id], judge.slots
    finally:
        gate.released.set()
    await c["defendant"].wait_for(lambda: c["defendant"].closed_code is not None, 20)
    # The lawyer is back in the hearing.
    await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "audio") > 10, 30)


async def test_the_end_of_a_consultation_reaches_everyones_screen_when_the_disk_is_full(
        client, settings, hearing, participants, tmpfs):
    """The disk holding the stored seats fills during a consultation; the court ends it. The
    two are heard by the court again only with their screens saying so: a screen that still
    says "the court can neither hear nor record" while the court hears them is the breach."""
    live_dir = tmpfs(settings.data_dir / "live", "256k")
    c = await join_all(hearing, participants)
    judge, lawyer, defendant = c["judge"], c["lawyer"], c["defendant"]
    d_id, l_id = hearing.ids["defendant"], hearing.ids["lawyer"]
    await consult(judge, lawyer, hearing)
    await defendant.wait_for(lambda: consulting(defendant, hearing))
    fill(live_dir)

    await judge.send({"type": "command", "action": "end_consultation", "participant_id": l_id})
    await judge.wait_for(lambda: judge.frames_from(d_id, "audio") > 20, 30)  # heard again
    for side in (defendant, lawyer):
        await side.wait_for(lambda side=side: seat_of(side, d_id).get("consultation") is None
                            and seat_of(side, l_id).get("consultation") is None, 5)


async def test_a_lone_participant_reconnecting_as_they_leave_stays_in_the_live_hearing(
        client, hearing, participants, monkeypatch):
    """The only participant connected reloads the page: the new connection joins while the old
    one is still leaving (its seat being stored). They must land in the hearing everyone else
    will join, not in one the server is retiring, where nobody hears or sees them."""
    hub = client.app[HUB]
    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    await judge.next_message("offer", within=20)
    j_id = hearing.ids["judge"]
    gate = Gate()
    monkeypatch.setattr(hub.bus, "store_seats", gate.wrap(
        hub.bus.store_seats, lambda hearing_id, seats, order: any(
            s.participant_id == j_id and not s.present for s in seats)))

    gate.armed = True
    await judge.close()  # the old page goes
    await gate.held()
    again = HearingClient(hearing.base_url, "judge-again")
    participants.append(again)
    await again.join(hearing.tokens["judge"])  # the reloaded page
    deadline = time.monotonic() + 10
    while not hub.connections:  # the new connection waits for the old one's departure
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    gate.released.set()
    await again.next_message("offer", within=20)

    defendant = HearingClient(hearing.base_url, "defendant")
    participants.append(defendant)
    await defendant.join(hearing.tokens["defendant"])
    d_id = hearing.ids["defendant"]
    await again.wait_for(lambda: seat_of(again, d_id).get("present") is True, 15)
    await again.send({"type": "command", "action": "admit", "participant_id": d_id})
    await again.wait_for(lambda: again.frames_from(d_id, "audio") > 10, 30)
    assert len(hub.hearings) == 1 and hub.hearings[hearing.id].connections.keys() == {j_id, d_id}


async def test_a_consultation_stays_private_through_everything_a_participant_can_send(
        client, hearing, participants, admin):
    """In session, in consultation, the defendant speaking throughout: the two send everything
    the protocol lets them (and what a page never would), restart their media, rejoin from a
    second connection, leave and come back; the court recesses and resumes (a new recording
    segment starts mid-consultation); an observer watches. Nothing of the two reaches the
    judge or the observer, nothing of theirs is recorded or transcribed, and every screen says
    they are in consultation."""
    d_id, l_id, j_id = (hearing.ids[r] for r in ("defendant", "lawyer", "judge"))
    speech = SpeechTrack(SPEECH / "en_witness.wav")
    c = await join_all(hearing, participants, audio={"defendant": speech})
    judge, lawyer, defendant = c["judge"], c["lawyer"], c["defendant"]
    r = await client.post(f"/api/v1/hearings/{hearing.id}/participants", headers=admin,
                          json={"name": "Senior Judge", "role": "observer",
                                "location": "remote"})
    assert r.status == 201, await r.text()
    observer = HearingClient(hearing.base_url, "observer")
    observer.publish = False
    participants.append(observer)
    await observer.join((await r.json())["token"])
    await observer.wait_for(lambda: observer.frames_from(d_id, "audio") > 5, 30)
    o_id = (await r.json())["id"]
    for action in ("open", "start"):
        await judge.send({"type": "command", "action": action})
    await judge.wait_for(lambda: judge.hearing_state == "in_session")
    await consult(judge, lawyer, hearing)
    files_before = await recorded_paths(client, hearing)
    private = {d_id, l_id}
    outside = [judge, observer]

    async def nothing_leaks(step: str, seconds: float = 1.0) -> None:
        for who in outside:
            await who.wait_for(lambda who=who: not [s for s in who.slots
                                                    if s["participant_id"] in private], 10)
        for who in outside:
            for pid in private:
                for kind in ("audio", "video"):
                    assert await growth_from(who, pid, kind, seconds / 4) == 0, (step, who.name)
        assert consulting(judge, hearing), step

    speech.speak_at = time.time()
    await nothing_leaks("granted")
    hostile: list[dict[str, Any]] = [
        {"type": "consult", "action": "request", "with": d_id},  # with itself (defendant)
        {"type": "consult", "action": "request", "with": o_id},
        {"type": "consult", "action": "request", "with": j_id},
        {"type": "mute", "muted": False},
        {"type": "screen", "sharing": True},
        {"type": "camera", "off": False},
        {"type": "hand", "raised": True},
        {"type": "present", "exhibit_id": str(uuid.uuid4())},
        {"type": "command", "action": "end_consultation", "participant_id": l_id},
        {"type": "command", "action": "unmute", "participant_id": d_id},
        {"type": "screen", "sharing": False},
    ]
    for message in hostile:
        await defendant.send(message)
        await lawyer.send(message)
    await nothing_leaks("hostile messages")

    await defendant.restart_media()
    await defendant.wait_for(lambda: defendant.frames_from(l_id, "audio") > 10, 30)
    await nothing_leaks("media restart")

    await judge.send({"type": "command", "action": "recess"})
    await judge.wait_for(lambda: judge.hearing_state == "recess")
    await judge.send({"type": "command", "action": "resume"})
    await judge.wait_for(lambda: judge.hearing_state == "in_session")
    await nothing_leaks("recess and resume")

    second = HearingClient(hearing.base_url, "lawyer-again")
    participants.append(second)
    await second.join(hearing.tokens["lawyer"])
    await second.wait_for(lambda: second.frames_from(d_id, "audio") > 10, 30)
    await nothing_leaks("lawyer rejoined from a second connection")

    await second.send({"type": "leave"})
    await judge.wait_for(lambda: seat_of(judge, l_id).get("present") is False)
    await nothing_leaks("lawyer away")
    third = HearingClient(hearing.base_url, "lawyer-third")
    participants.append(third)
    await third.join(hearing.tokens["lawyer"])
    await third.wait_for(lambda: third.frames_from(d_id, "audio") > 10, 30)
    await nothing_leaks("lawyer back")
    await asyncio.sleep(max(0.0, speech.speak_at + speech.seconds + 3.0 - time.time()))

    captions = [m for who in (*outside, lawyer, defendant, third) for m in who.messages
                if m.get("type") == "caption" and m["participant_id"] in private]
    assert not captions, captions
    speakers = [m for who in outside for m in who.messages if m.get("type") == "speakers"
                and (m["active"] in private or private & set(m["speaking"]))]
    assert not speakers, speakers
    await close_hearing(judge)
    await assert_nothing_recorded(client, hearing, files_before)

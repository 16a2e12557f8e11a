"""Privacy holds when a hearing's live state is rebuilt: a private consultation stays private
(nothing forwarded, recorded or transcribed) after everyone reconnects and after a server
restart; audio the court muted is in no file and no composite. Real server, real aiortc peers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestClient

from tests.clients import HearingClient, SpeechTrack
from tests.signaling.conftest import LiveHearing
from tests.signaling.test_hearing_room import join_all
from tests.speech import SPEECH
from web.app import create_app
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ROLES = ("judge", "defendant", "lawyer")


def audio_packets(path: Path) -> int:
    if not path.exists():
        return 0
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0
        return sum(1 for p in container.demux(audio=0) if p.size)


async def consult(judge: HearingClient, lawyer: HearingClient, hearing: LiveHearing) -> None:
    d_id, l_id = hearing.ids["defendant"], hearing.ids["lawyer"]
    await lawyer.send({"type": "consult", "action": "request", "with": d_id})
    await judge.wait_for(lambda: ((judge.seat(l_id) or {}).get("consultation") or {})
                         .get("state") == "requested")
    await judge.send({"type": "command", "action": "grant_consultation", "participant_id": l_id})
    await judge.wait_for(lambda: consulting(judge, hearing))


def consulting(observer: HearingClient, hearing: LiveHearing) -> bool:
    seats = [observer.seat(hearing.ids[r]) or {} for r in ("defendant", "lawyer")]
    return all((s.get("consultation") or {}).get("state") == "active" for s in seats)


async def rejoin(hearing: LiveHearing, participants: list[HearingClient], speaking: Path
                 ) -> dict[str, HearingClient]:
    """Everyone back (the seats keep their admission); the defendant speaks."""
    clients = {}
    for role in ROLES:
        c = HearingClient(hearing.base_url, role)
        if role == "defendant":
            c.audio = SpeechTrack(speaking)
        participants.append(c)
        clients[role] = c
        await c.join(hearing.tokens[role])
    judge, lawyer = clients["judge"], clients["lawyer"]
    await judge.wait_for(lambda: all((judge.seat(hearing.ids[r]) or {}).get("present")
                                     for r in ROLES), 30)
    # The two in consultation hear each other again: the routing was rebuilt.
    await lawyer.wait_for(lambda: lawyer.frames_from(hearing.ids["defendant"], "audio") > 30, 30)
    return clients


async def assert_private(clients: dict[str, HearingClient], hearing: LiveHearing,
                         speech: SpeechTrack) -> None:
    """While the defendant speaks in consultation, the judge receives nothing of either of
    the two (nobody else is in the hearing: nothing at all) and sees no caption of theirs."""
    judge, lawyer, defendant = clients["judge"], clients["lawyer"], clients["defendant"]
    assert consulting(judge, hearing) and consulting(defendant, hearing)
    speech.speak_at = time.time()
    before = dict(judge.frames)
    await asyncio.sleep(speech.seconds + 1.0)
    assert judge.frames == before, (before, judge.frames)
    private = {hearing.ids["defendant"], hearing.ids["lawyer"]}
    assert not [s for s in judge.slots if s["participant_id"] in private], judge.slots
    assert lawyer.frames_from(hearing.ids["defendant"], "audio") > 100
    await asyncio.sleep(3.0)  # the recognizer would have produced a line by now
    captions = [m for c in clients.values() for m in c.messages
                if m.get("type") == "caption" and m["participant_id"] in private]
    assert not captions, captions


async def assert_nothing_recorded(client: TestClient, hearing: LiveHearing,
                                  files_before: set[str]) -> None:
    """After the close: the consultation is in no file of either side, and the trial record
    has no line of theirs."""
    hub = client.app[HUB]
    hearing_id = uuid.UUID(hearing.id)
    rows, _ = await hub.recordings.of_hearing(hearing_id)
    private = {hearing.ids["defendant"], hearing.ids["lawyer"]}
    later = [r for r in rows if r.kind == "participant" and r.path not in files_before
             and str(r.participant_id) in private]
    for row in later:
        assert audio_packets(hub.recordings.path_of(row)) == 0, row.path
    _, lines = await hub.transcripts.of_hearing(hearing_id)
    assert not [ln.text for ln in lines if str(ln.participant_id) in private]


async def start_consultation(hearing: LiveHearing, participants: list[HearingClient]
                             ) -> dict[str, HearingClient]:
    c = await join_all(hearing, participants)
    judge = c["judge"]
    for action in ("open", "start"):
        await judge.send({"type": "command", "action": action})
    await judge.wait_for(lambda: judge.hearing_state == "in_session")
    await consult(judge, c["lawyer"], hearing)
    return c


async def recorded_paths(client: TestClient, hearing: LiveHearing) -> set[str]:
    rows, _ = await client.app[HUB].recordings.of_hearing(uuid.UUID(hearing.id))
    return {r.path for r in rows}


async def close_hearing(judge: HearingClient) -> None:
    await judge.send({"type": "command", "action": "close"})
    await judge.wait_for(lambda: judge.closed_code is not None, 60)


async def test_a_consultation_stays_private_when_everyone_reconnects(
        client, admin, hearing, participants):
    first = await start_consultation(hearing, participants)
    for c in first.values():
        await c.close()
    hub = client.app[HUB]
    deadline = time.monotonic() + 30
    while hub.hearings:  # the hearing is retired: its live state is rebuilt from the seats
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    files_before = await recorded_paths(client, hearing)

    clients = await rejoin(hearing, participants, SPEECH / "en_witness.wav")
    speech = clients["defendant"].audio
    assert isinstance(speech, SpeechTrack)
    await assert_private(clients, hearing, speech)
    await close_hearing(clients["judge"])
    await assert_nothing_recorded(client, hearing, files_before)
    # The review shows where the consultation began on the hearing timeline.
    r = await client.get(f"/api/v1/hearings/{hearing.id}/recordings", headers=admin)
    listing = await r.json()
    [started] = [e for e in listing["events"] if e["action"] == "consultation.started"]
    assert set(started["participant_ids"]) == {hearing.ids["defendant"], hearing.ids["lawyer"]}
    assert 0 <= started["at"] <= listing["segments"][-1]["end"]


async def test_a_consultation_stays_private_across_a_server_restart(
        aiohttp_client, client, settings, clock, hearing, participants):
    first = await start_consultation(hearing, participants)
    files_before = await recorded_paths(client, hearing)
    await client.close()  # the server stops; everyone's connection drops
    for c in first.values():
        await c.close()

    restarted = await aiohttp_client(create_app(settings, clock=clock))
    moved = LiveHearing(hearing.id, hearing.tokens, hearing.ids, hearing.device_key,
                        str(restarted.make_url("")).rstrip("/"))
    clients = await rejoin(moved, participants, SPEECH / "en_witness.wav")
    speech = clients["defendant"].audio
    assert isinstance(speech, SpeechTrack)
    await assert_private(clients, moved, speech)
    await close_hearing(clients["judge"])
    await assert_nothing_recorded(restarted, moved, files_before)


async def test_audio_the_court_muted_is_in_no_file_and_no_composite(
        client, admin, hearing, participants):
    speech = SpeechTrack(SPEECH / "en_opening.wav")
    c = await join_all(hearing, participants, roles=("judge", "defendant"),
                       audio={"defendant": speech})
    judge = c["judge"]  # silent
    d_id = hearing.ids["defendant"]
    await judge.send({"type": "command", "action": "mute", "participant_id": d_id})
    await judge.wait_for(lambda: (judge.seat(d_id) or {}).get("muted_by_court") is True)
    for action in ("open", "start"):
        await judge.send({"type": "command", "action": action})
    await judge.wait_for(lambda: judge.hearing_state == "in_session")
    speech.speak_at = time.time()  # the muted defendant speaks
    await asyncio.sleep(speech.seconds + 1.0)
    await close_hearing(judge)

    hub = client.app[HUB]
    rows, _ = await hub.recordings.of_hearing(uuid.UUID(hearing.id))
    files = {str(r.participant_id): hub.recordings.path_of(r) for r in rows
             if r.kind == "participant"}
    assert audio_packets(files[hearing.ids["judge"]]) > 100  # the judge, unmuted, is there
    assert audio_packets(files[d_id]) == 0  # the defendant's video only

    composite = await rendered_composite(client, admin, hearing)
    assert loud_seconds(composite) < 0.5, "the muted defendant's speech is in the composite"
    events = [e["action"] for e in await audit(client, admin, hearing)]
    assert "participant.muted" in events


async def test_speech_the_court_muted_is_not_transcribed_and_muting_is_on_the_timeline(
        client, admin, hearing, participants):
    """Muted by the court in session, the defendant reads the opening: no caption, no line of
    the record. Unmuted, the defendant's next words are captioned and recorded (so the record
    was being taken all along). The review's timeline shows both."""
    speech = SpeechTrack(SPEECH / "en_opening.wav")
    c = await join_all(hearing, participants, roles=("judge", "defendant"),
                       audio={"defendant": speech})
    judge = c["judge"]  # silent
    d_id = hearing.ids["defendant"]
    for action in ("open", "start"):
        await judge.send({"type": "command", "action": action})
    await judge.wait_for(lambda: judge.hearing_state == "in_session")
    await judge.send({"type": "command", "action": "mute", "participant_id": d_id})
    await judge.wait_for(lambda: (judge.seat(d_id) or {}).get("muted_by_court") is True)
    speech.speak_at = time.time()
    await judge.wait_for(lambda: speech.quiet_s > 1.0, 60)  # all of it said, while muted
    await judge.send({"type": "command", "action": "unmute", "participant_id": d_id})
    await judge.wait_for(lambda: (judge.seat(d_id) or {}).get("muted_by_court") is False)
    speech.say(SpeechTrack(SPEECH / "en_witness.wav").speech, 0.5)

    def theirs() -> list[dict[str, Any]]:
        return [m for m in judge.messages
                if m.get("type") == "caption" and m["participant_id"] == d_id]

    # The transcriber takes a speaker's audio in order: the words said after the unmute come
    # out after anything said before it would have.
    await judge.wait_for(lambda: any(m["final"] and "witness" in m["text"].lower()
                                     for m in theirs()), 90)
    await close_hearing(judge)

    r = await client.get(f"/api/v1/hearings/{hearing.id}/recordings", headers=admin)
    listing = await r.json()
    timeline = [(e["action"], e["participant_ids"], e["at"]) for e in listing["events"]]
    [(_, _, muted_at), (_, _, unmuted_at)] = [
        t for t in timeline if t[:2] in (("participant.muted", [d_id]),
                                         ("participant.unmuted", [d_id]))]
    assert 0 <= muted_at < unmuted_at <= listing["segments"][-1]["end"], timeline
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript", headers=admin)
    lines = [li for li in (await r.json())["items"] if li["participant_id"] == d_id]
    assert lines and any("witness" in li["text"].lower() for li in lines), lines
    # What was said while muted (it ended over a second before the unmute) is in no caption
    # and no line, the record sealed at the close included; only what followed is.
    early = [(m["start"], m["text"]) for m in theirs() if m["start"] < unmuted_at - 0.5]
    early += [(li["start"], li["text"]) for li in lines if li["start"] < unmuted_at - 0.5]
    assert not early, (unmuted_at, early)


async def audit(client: TestClient, admin: dict[str, str], hearing: LiveHearing
                ) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/audit", headers=admin,
                         params={"hearing_id": hearing.id, "limit": 200})
    return list((await r.json())["items"])


async def rendered_composite(client: TestClient, admin: dict[str, str], hearing: LiveHearing
                             ) -> Path:
    hub = client.app[HUB]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows, _ = await hub.recordings.of_hearing(uuid.UUID(hearing.id))
        done = [r for r in rows if r.kind == "composite" and r.status.value == "complete"]
        if done:
            return hub.recordings.path_of(done[0])
        await asyncio.sleep(0.5)
    raise AssertionError("no composite was rendered")


def loud_seconds(path: Path) -> float:
    """Seconds of the composite's audio louder than -40 dBFS (the judge sends silence)."""
    import numpy as np

    loud = 0.0
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        for frame in container.decode(audio=0):
            samples = frame.to_ndarray().astype(np.float32)
            rms = float(np.sqrt(np.mean(np.square(samples))))
            if rms > 0.01:
                loud += frame.samples / frame.sample_rate
    return loud


async def test_removal_outlives_the_live_state(aiohttp_client, client, admin, settings, clock,
                                               participants):
    """In an auto-admit hearing the court removes someone; the live state is then lost (a
    restart with Redis emptied, or its files gone): they still wait in the lobby."""
    from tests.signaling.conftest import schedule

    hearing = await schedule(client, admin, clock, auto_admit=True)
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    participants += [judge, lawyer]
    await judge.join(hearing.tokens["judge"])
    await lawyer.join(hearing.tokens["lawyer"])
    assert (await lawyer.next_message("welcome"))["participant"]["admitted"] is True
    l_id = hearing.ids["lawyer"]
    await judge.wait_for(lambda: (judge.seat(l_id) or {}).get("present") is True)
    await judge.send({"type": "command", "action": "remove", "participant_id": l_id})
    await lawyer.wait_for(lambda: lawyer.closed_code == 4001)
    await client.close()
    for stored in (settings.data_dir / "live").glob("*.json"):
        stored.unlink()

    restarted = await aiohttp_client(create_app(settings, clock=clock))
    again = HearingClient(str(restarted.make_url("")).rstrip("/"), "lawyer-again")
    participants.append(again)
    await again.join(hearing.tokens["lawyer"])
    assert (await again.next_message("welcome"))["participant"]["admitted"] is False

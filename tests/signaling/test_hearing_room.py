"""The hearing room's live features through real aiortc participants and the real server:
private consultation, supervision, the active speaker, connection quality, the record so far."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path

import av
import pytest

from courtrooms.transcripts import SpokenLine
from tests.clients import HearingClient, SpeechTrack
from tests.exhibit_files import A4, pdf
from tests.speech import SPEECH
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

API = "/api/v1"




async def join_all(hearing, participants, roles=("judge", "defendant", "lawyer"), audio=None):
    """Everyone admitted, every pair of them receiving each other's audio."""
    clients = {}
    for role in roles:
        c = HearingClient(hearing.base_url, role)
        if audio and role in audio:
            c.audio = audio[role]
        participants.append(c)
        clients[role] = c
        await c.join(hearing.tokens[role])
    judge = clients["judge"]
    for role in roles:
        if role == "judge":
            continue
        pid = hearing.ids[role]
        await judge.wait_for(lambda pid=pid: (judge.seat(pid) or {}).get("present") is True)
        await judge.send({"type": "command", "action": "admit", "participant_id": pid})
    for role, c in clients.items():
        for other in roles:
            if other != role:
                await c.wait_for(
                    lambda c=c, o=hearing.ids[other]: c.frames_from(o, "audio") > 5, 30)
    return clients


async def growth(client, participant_id, kind, seconds=1.5):
    before = client.frames_from(participant_id, kind)
    await asyncio.sleep(seconds)
    return client.frames_from(participant_id, kind) - before


def audio_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(audio=0) if p.size)


async def test_a_consultation_is_private_unrecorded_and_ends_back_in_the_hearing(
        client, admin, hearing, participants):
    c = await join_all(hearing, participants)
    judge, defendant, lawyer = c["judge"], c["defendant"], c["lawyer"]
    d_id, l_id, j_id = hearing.ids["defendant"], hearing.ids["lawyer"], hearing.ids["judge"]
    for action in ("open", "start"):
        await judge.send({"type": "command", "action": action})
    await judge.wait_for(lambda: judge.hearing_state == "in_session")
    await asyncio.sleep(2.0)

    mark = len(judge.messages)
    await lawyer.send({"type": "consult", "action": "request", "with": d_id})
    request = await judge.next_message("consultations", after=mark)
    while not request["requests"]:
        mark = judge.messages.index(request) + 1
        request = await judge.next_message("consultations", after=mark)
    assert request["requests"][0]["participant_id"] == l_id
    assert request["requests"][0]["with"] == d_id
    # Asking is not yet private: the court still hears the lawyer.
    heard = judge.frames_from(l_id, "audio")
    await judge.wait_for(lambda: judge.frames_from(l_id, "audio") > heard + 20, 15)

    await judge.send({"type": "command", "action": "grant_consultation", "participant_id": l_id})
    await judge.wait_for(
        lambda: (judge.seat(l_id) or {}).get("consultation", {}) is not None
        and (judge.seat(l_id) or {}).get("consultation", {}).get("state") == "active")
    assert judge.seat(d_id)["consultation"]["id"] == judge.seat(l_id)["consultation"]["id"]
    await asyncio.sleep(1.0)  # slots rewired
    consult_started = asyncio.get_running_loop().time()
    # The two hear each other; nobody else hears either, and they hear nobody else.
    assert await growth(lawyer, d_id, "audio") > 30
    assert await growth(defendant, l_id, "audio") > 30
    assert await growth(judge, l_id, "audio") == 0
    assert await growth(judge, d_id, "video") == 0
    assert await growth(lawyer, j_id, "audio") == 0
    await asyncio.sleep(max(0.0, 5.0 - (asyncio.get_running_loop().time() - consult_started)))
    consulted_s = asyncio.get_running_loop().time() - consult_started

    mark = len(judge.messages)
    await defendant.send({"type": "consult", "action": "end"})
    await judge.wait_for(lambda: (judge.seat(l_id) or {}).get("consultation") is None
                         and (judge.seat(d_id) or {}).get("consultation") is None)
    await judge.wait_for(lambda: any(s["participant_id"] == l_id for s in judge.slots))
    # Back in the hearing: each hears the other again (waited for: a busy machine is slow).
    for listener, speaker in ((judge, l_id), (lawyer, j_id)):
        heard = listener.frames_from(speaker, "audio")
        await listener.wait_for(
            lambda listener=listener, speaker=speaker, heard=heard:
            listener.frames_from(speaker, "audio") > heard + 30, 15)

    await judge.send({"type": "command", "action": "close"})
    await judge.wait_for(lambda: judge.closed_code is not None, 30)
    recordings = client.app[HUB].recordings
    rows, _ = await recordings.of_hearing(uuid.UUID(hearing.id))
    files = {str(f.participant_id): recordings.path_of(f) for f in rows if f.kind == "participant"}
    packets = {pid: audio_packets(files[pid]) for pid in (j_id, l_id, d_id)}
    # 50 Opus packets a second: the consultation is missing from the two consulting files.
    for pid in (l_id, d_id):
        assert packets[pid] < packets[j_id] - 50 * (consulted_s - 1.5), packets
    events = (await (await client.get(f"{API}/audit", headers=admin,
                                      params={"hearing_id": hearing.id, "limit": 200})).json())
    actions = [e["action"] for e in events["items"]]
    assert "consultation.started" in actions and "consultation.ended" in actions


async def test_consultations_only_between_counsel_and_client_and_only_the_court_grants(
        hearing, participants):
    c = await join_all(hearing, participants)
    judge, defendant, lawyer = c["judge"], c["defendant"], c["lawyer"]
    d_id, l_id, j_id = hearing.ids["defendant"], hearing.ids["lawyer"], hearing.ids["judge"]

    async def refused(client, message, code):
        mark = len(client.messages)
        await client.send(message)
        reply = await client.next_message("error", after=mark)
        assert reply["code"] == code, reply

    await refused(lawyer, {"type": "consult", "action": "request", "with": j_id},
                  "consultation_refused")
    await refused(judge, {"type": "consult", "action": "request", "with": l_id}, "forbidden")
    await refused(lawyer, {"type": "consult", "action": "request", "with": str(uuid.uuid4())},
                  "consultation_refused")
    await refused(lawyer, {"type": "consult", "action": "request"}, "invalid")
    await refused(defendant, {"type": "command", "action": "grant_consultation",
                              "participant_id": d_id}, "forbidden")
    await refused(judge, {"type": "command", "action": "grant_consultation",
                          "participant_id": d_id}, "consultation_refused")

    await defendant.send({"type": "consult", "action": "request", "with": l_id})
    await judge.wait_for(lambda: (judge.seat(d_id) or {}).get("consultation") is not None)
    await judge.send({"type": "command", "action": "deny_consultation", "participant_id": d_id})
    await judge.wait_for(lambda: (judge.seat(d_id) or {}).get("consultation") is None)
    # Nothing changed for the media: everyone still hears everyone.
    assert await growth(judge, d_id, "audio") > 30
    assert await growth(lawyer, d_id, "audio") > 30


async def test_an_observer_watches_unseen_by_the_parties_and_cannot_act(
        client, admin, hearing, participants):
    r = await client.post(f"{API}/hearings/{hearing.id}/participants", headers=admin,
                          json={"name": "Senior Judge Zhou", "role": "observer",
                                "location": "remote"})
    assert r.status == 201, await r.text()
    observer_seat = await r.json()
    c = await join_all(hearing, participants, roles=("judge", "lawyer"))
    judge, lawyer = c["judge"], c["lawyer"]
    observer = HearingClient(hearing.base_url, "observer")
    observer.publish = False
    participants.append(observer)
    await observer.join(observer_seat["token"])
    welcome = await observer.next_message("welcome")
    assert welcome["participant"]["admitted"] is True  # no lobby for supervision
    o_id = observer_seat["id"]
    await observer.wait_for(lambda: observer.frames_from(hearing.ids["judge"], "video") > 10, 30)
    await observer.wait_for(lambda: observer.frames_from(hearing.ids["lawyer"], "audio") > 10)
    # Receive-only: the server offered the observer nothing to publish on.
    assert observer.pc is not None
    assert all(t.direction == "recvonly" for t in observer.pc.getTransceivers())
    await judge.wait_for(lambda: (judge.seat(o_id) or {}).get("present") is True)
    await asyncio.sleep(0.5)
    assert lawyer.seat(o_id) is None
    assert all(s["participant_id"] != o_id for s in judge.slots + lawyer.slots)
    for message in ({"type": "mute", "muted": True}, {"type": "hand", "raised": True},
                    {"type": "command", "action": "start"},
                    {"type": "present", "exhibit_id": None}):
        mark = len(observer.messages)
        await observer.send(message)
        assert (await observer.next_message("error", after=mark))["code"] == "forbidden"


async def test_the_active_speaker_follows_who_is_loud(hearing, participants):
    speech = SpeechTrack(SPEECH / "en_opening.wav")
    c = await join_all(hearing, participants, roles=("judge", "lawyer"),
                       audio={"judge": speech})
    judge, lawyer = c["judge"], c["lawyer"]
    j_id = hearing.ids["judge"]
    assert not any(m.get("type") == "speakers" and m["active"] for m in lawyer.messages)
    speech.speak_at = time.time()
    await lawyer.wait_for(lambda: any(
        m.get("type") == "speakers" and m["active"] == j_id for m in lawyer.messages), 15)
    speakers = [m for m in lawyer.messages if m.get("type") == "speakers"]
    assert all(hearing.ids["lawyer"] not in m["speaking"] for m in speakers)
    # The judge mutes: not speaking any more, and after the hold nobody is active.
    mark = len(lawyer.messages)
    await judge.send({"type": "mute", "muted": True})
    await lawyer.wait_for(lambda: any(
        m.get("type") == "speakers" and m["active"] is None for m in lawyer.messages[mark:]), 10)


async def test_the_court_sees_each_connections_quality(hearing, participants):
    c = await join_all(hearing, participants, roles=("judge", "lawyer"))
    judge, lawyer = c["judge"], c["lawyer"]
    l_id = hearing.ids["lawyer"]

    def graded() -> bool:
        return any(
            m.get("type") == "quality" and any(
                q["participant_id"] == l_id and q["grade"] == "good" and q["rtt_ms"] is not None
                and q["kbps_in"] > 10 for q in m["participants"])
            for m in judge.messages)

    await judge.wait_for(graded, 20)
    assert not any(m.get("type") == "quality" for m in lawyer.messages)  # the court's only


async def test_a_late_joiner_gets_the_record_so_far_and_the_lobby_hears_nothing(
        client, admin, hearing, participants):
    c = await join_all(hearing, participants, roles=("judge", "lawyer"))
    judge = c["judge"]
    hub = client.app[HUB]
    row = await hub.transcripts.add(uuid.UUID(hearing.id), SpokenLine(
        participant_id=uuid.UUID(hearing.ids["lawyer"]), start=1.0, end=2.5,
        text="The defence has no objection.", language="en", words=[]))
    # A witness heard earlier over another process's media, never seated here.
    r = await client.post(f"{API}/hearings/{hearing.id}/participants", headers=admin,
                          json={"name": "Witness Chen", "role": "witness",
                                "location": "remote"})
    witness_id = (await r.json())["id"]
    earlier = await hub.transcripts.add(uuid.UUID(hearing.id), SpokenLine(
        participant_id=uuid.UUID(witness_id), start=0.2, end=0.9, text="I saw him.",
        language="en", words=[]))
    defendant = HearingClient(hearing.base_url, "defendant")
    participants.append(defendant)
    await defendant.join(hearing.tokens["defendant"])
    await defendant.next_message("welcome")
    await judge.wait_for(lambda: (judge.seat(hearing.ids["defendant"]) or {}).get("present"))
    live = hub.hearings[hearing.id]
    live.broadcast({"type": "caption", "final": True, "text": "said in the hearing"})
    await judge.wait_for(lambda: any(m.get("text") == "said in the hearing"
                                     for m in judge.messages))
    await asyncio.sleep(0.3)
    assert not any(m.get("type") in ("caption", "record") for m in defendant.messages)

    mark = len(defendant.messages)
    await judge.send({"type": "command", "action": "admit",
                      "participant_id": hearing.ids["defendant"]})
    record = await defendant.next_message("record", after=mark)
    assert [(line["segment_id"], line["text"], line["name"], line["role"])
            for line in record["lines"]] == [
        (str(earlier.id), "I saw him.", "Witness Chen", "witness"),
        (str(row.id), "The defence has no objection.", "Lawyer Li", "lawyer")]


async def test_camera_and_screen_flags_reach_everyone(hearing, participants):
    c = await join_all(hearing, participants, roles=("judge", "lawyer"))
    judge, lawyer = c["judge"], c["lawyer"]
    l_id = hearing.ids["lawyer"]
    await lawyer.send({"type": "screen", "sharing": True})
    await lawyer.send({"type": "camera", "off": True})
    await judge.wait_for(lambda: judge.seat(l_id)["screen_sharing"] is True
                         and judge.seat(l_id)["camera_off"] is True)
    await lawyer.send({"type": "screen", "sharing": False})
    await judge.wait_for(lambda: judge.seat(l_id)["screen_sharing"] is False)


async def test_a_detainee_cannot_switch_the_camera_off_but_the_court_can_still_mute(
        hearing, participants):
    """Kiosk discipline, enforced by the server and not only by the page: the defendant joins
    from prison (the fixture's terminal)."""
    c = await join_all(hearing, participants)
    judge, defendant = c["judge"], c["defendant"]
    d_id = hearing.ids["defendant"]
    mark = len(defendant.messages)
    await defendant.send({"type": "camera", "off": True, "ref": "cam"})
    reply = await defendant.next_message("error", after=mark)
    assert (reply["code"], reply["ref"]) == ("forbidden", "cam"), reply
    assert "camera" in reply["message"]
    await defendant.send({"type": "camera", "off": False})  # on stays allowed
    await judge.send({"type": "command", "action": "mute", "participant_id": d_id})
    await judge.wait_for(lambda: judge.seat(d_id)["muted_by_court"] is True)
    assert judge.seat(d_id)["camera_off"] is False
    # The hearing goes on for both: the defendant's session was not closed.
    await defendant.send({"type": "hand", "raised": True})
    await judge.wait_for(lambda: judge.seat(d_id)["hand_raised"] is True)


async def test_a_detainee_cannot_hide_the_camera_behind_a_screen_share(hearing, participants):
    """A screen share takes the camera's place in the stream (media.js replaces the track):
    for a participant in prison it is the camera switched off by another name."""
    c = await join_all(hearing, participants)
    judge, defendant, lawyer = c["judge"], c["defendant"], c["lawyer"]
    d_id, l_id = hearing.ids["defendant"], hearing.ids["lawyer"]
    mark = len(defendant.messages)
    await defendant.send({"type": "screen", "sharing": True, "ref": "share"})
    reply = await defendant.next_message("error", after=mark)
    assert (reply["code"], reply["ref"]) == ("forbidden", "share"), reply
    assert judge.seat(d_id)["screen_sharing"] is False
    await lawyer.send({"type": "screen", "sharing": True})  # from elsewhere, as before
    await judge.wait_for(lambda: judge.seat(l_id)["screen_sharing"] is True)


async def test_an_exhibit_presented_is_shown_to_everyone_in_the_hearing(
        client, admin, hearing, participants):
    c = await join_all(hearing, participants, roles=("judge", "lawyer"))
    judge, lawyer = c["judge"], c["lawyer"]
    defendant = HearingClient(hearing.base_url, "defendant")  # waiting in the lobby
    participants.append(defendant)
    await defendant.join(hearing.tokens["defendant"])
    await defendant.next_message("welcome")
    document = pdf(A4, A4)
    lawyer_auth = f"Bearer {hearing.tokens['lawyer']}"
    r = await client.post(f"{API}/hearings/{hearing.id}/exhibits", params={"title": "借条"},
                          data=document, headers={"Content-Type": "application/pdf",
                                                  "Authorization": lawyer_auth})
    assert r.status == 201, await r.text()
    exhibit = await r.json()

    def shown(client_, page):
        return any(m.get("type") == "exhibit" and m["exhibit"] and m["page"] == page
                   for m in client_.messages)

    await lawyer.send({"type": "present", "exhibit_id": exhibit["id"], "page": 1})
    await judge.wait_for(lambda: shown(judge, 1))
    message = next(m for m in judge.messages if m.get("type") == "exhibit" and m["exhibit"])
    assert message["exhibit"]["sha256"] == hashlib.sha256(document).hexdigest()
    assert message["exhibit"]["title"] == "借条" and message["exhibit"]["pages"] == 2
    assert message["presenter_id"] == hearing.ids["lawyer"]
    await judge.send({"type": "present", "exhibit_id": exhibit["id"], "page": 2})
    await lawyer.wait_for(lambda: shown(lawyer, 2))

    for bad, field in (({"exhibit_id": exhibit["id"], "page": 3}, "page"),
                       ({"exhibit_id": str(uuid.uuid4())}, "exhibit_id"),
                       ({"exhibit_id": "../../etc/passwd"}, "exhibit_id")):
        mark = len(lawyer.messages)
        await lawyer.send({"type": "present", **bad})
        error = await lawyer.next_message("error", after=mark)
        assert (error["code"], error["field"]) == ("unknown_exhibit", field)
    await lawyer.send({"type": "present", "exhibit_id": None})
    await judge.wait_for(lambda: judge.messages[-1].get("type") == "exhibit"
                         and judge.messages[-1]["exhibit"] is None)
    # The lobby saw none of it; admitted, the defendant is shown what is on the stage.
    assert not any(m.get("type") == "exhibit" and m["exhibit"] for m in defendant.messages)
    events = await (await client.get(f"{API}/audit", headers=admin,
                                     params={"hearing_id": hearing.id, "limit": 200})).json()
    presented = [e for e in events["items"] if e["action"] == "exhibit.presented"]
    assert len(presented) == 1  # turning a page is not a new presentation

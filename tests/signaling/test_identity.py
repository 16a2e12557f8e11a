"""Identity checks before each session (《人民法院在线诉讼规则》 art. 7), through the real server
and real aiortc peers: the court marks a participant verified (or refused, with a reason), the
server keeps a still of their camera at that moment with its sha256 in the audit, a reconnect
keeps the check and a new browser session does not."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid

import av
import pytest

from courtrooms.identity import IdentityChecks
from tests.clients import HearingClient, StillCamera
from tests.signaling.test_recording import audit_actions, auto_hearing  # noqa: F401
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PHONE = ("device-0123456789", "session-aaaaaaaa")


async def refused(client: HearingClient, message: dict[str, object], code: str,
                  field: str | None = None) -> str:
    mark = len(client.messages)
    await client.send(message)
    reply = await client.next_message("error", after=mark)
    assert reply["code"] == code, reply
    if field is not None:
        assert reply.get("field") == field, reply
    return str(reply["message"])


async def test_the_court_checks_identity_with_a_still_kept_on_the_record(
    auto_hearing, participants, client, admin  # noqa: F811
):
    hearing = auto_hearing
    d_id, l_id = hearing.ids["defendant"], hearing.ids["lawyer"]
    judge, defendant, lawyer = (HearingClient(hearing.base_url, role)
                                for role in ("judge", "defendant", "lawyer"))
    participants += [judge, defendant, lawyer]
    await judge.join(hearing.tokens["judge"])
    await defendant.join(hearing.tokens["defendant"], device=PHONE)
    await lawyer.join(hearing.tokens["lawyer"])
    await judge.wait_for(lambda: judge.frames_from(d_id, "video") > 5
                         and judge.frames_from(l_id, "video") > 5)
    assert judge.seat(d_id)["identity"] == "unchecked"
    assert "device" not in judge.seat(d_id)  # device ids stay on the server
    # The court's welcome lists everyone the hearing expects, joined or not.
    welcome = next(m for m in judge.messages if m["type"] == "welcome")
    assert {p["participant_id"] for p in welcome["expected"]} == set(hearing.ids.values())
    assert "expected" not in next(m for m in lawyer.messages if m["type"] == "welcome")

    # Only the court checks, and not its own or observers; a refusal says why.
    await refused(lawyer, {"type": "command", "action": "verify_identity",
                           "participant_id": d_id}, "forbidden")
    await refused(judge, {"type": "command", "action": "verify_identity",
                          "participant_id": hearing.ids["judge"]}, "invalid", "participant_id")
    await refused(judge, {"type": "command", "action": "refuse_identity",
                          "participant_id": l_id}, "invalid", "reason")
    await refused(judge, {"type": "command", "action": "verify_identity",
                          "participant_id": d_id, "reason": "x"}, "invalid", "reason")

    await judge.send({"type": "command", "action": "verify_identity", "participant_id": d_id})
    await judge.wait_for(lambda: judge.seat(d_id)["identity"] == "verified")
    reason = "证件照片与本人不符"
    await judge.send({"type": "command", "action": "refuse_identity", "participant_id": l_id,
                      "reason": reason})
    await judge.wait_for(lambda: judge.seat(l_id)["identity"] == "refused")
    assert judge.seat(l_id)["identity_reason"] == reason

    # On the record: the audit holds each check, the still's hash and who checked.
    checks = [e for e in await audit_actions(client, hearing, admin)
              if e["action"] == "identity.checked"]
    assert [(e["data"]["participant_id"], e["data"]["outcome"], e["data"]["reason"])
            for e in checks] == [(d_id, "verified", None), (l_id, "refused", reason)]
    assert checks[0]["actor"] == f"participant:{hearing.ids['judge']}"
    r = await client.get(f"/api/v1/hearings/{hearing.id}/identity-checks", headers=admin)
    listed = (await r.json())["items"]
    assert [c["outcome"] for c in listed] == ["verified", "refused"]
    # The still is the defendant's camera as the server received it: a decodable JPEG whose
    # hash is the one on the audit chain.
    r = await client.get(f"/api/v1/hearings/{hearing.id}/identity-checks/"
                         f"{listed[0]['seq']}/still", headers=admin)
    assert r.status == 200 and r.content_type == "image/jpeg"
    jpeg = await r.read()
    assert hashlib.sha256(jpeg).hexdigest() == checks[0]["data"]["still_sha256"]
    with av.open(io.BytesIO(jpeg)) as still:
        picture = next(still.decode(video=0))
        assert (picture.width, picture.height) == (StillCamera.WIDTH, StillCamera.HEIGHT), picture
    r = await client.get(f"/api/v1/hearings/{hearing.id}/identity-checks/"
                         f"{listed[0]['seq']}/still", headers={
                             "Authorization": f"Bearer {hearing.tokens['lawyer']}"})
    assert r.status == 403, await r.text()

    # A network drop: the same browser session reconnects and keeps the check.
    await defendant.close()
    again = HearingClient(hearing.base_url, "defendant-again")
    participants.append(again)
    await again.join(hearing.tokens["defendant"], device=PHONE)
    await again.next_message("welcome")
    await judge.wait_for(lambda: judge.seat(d_id)["present"] is True)
    assert judge.seat(d_id)["identity"] == "verified"
    # A new browser session (or device) must be checked again.
    await again.close()
    fresh = HearingClient(hearing.base_url, "defendant-new-session")
    participants.append(fresh)
    await fresh.join(hearing.tokens["defendant"], device=(PHONE[0], "session-bbbbbbbb"))
    await fresh.next_message("welcome")
    await judge.wait_for(lambda: judge.seat(d_id)["present"] is True
                         and judge.seat(d_id)["identity"] == "unchecked")

    # verify-audit re-hashes the stills: an altered picture is found.
    identity: IdentityChecks = client.app[HUB].identity
    assert await identity.verify() == []
    [check, _] = await identity.of_hearing(uuid.UUID(hearing.id))
    path = identity.still_path(uuid.UUID(hearing.id), check)
    assert path is not None
    path.write_bytes(path.read_bytes()[:-10])
    # (The test peers send the same picture, so both checks may share the one file.)
    findings = await identity.verify()
    assert findings and all("altered" in f.message for f in findings), findings
    assert any(f"audit event {check.seq}" in f.message for f in findings), findings


async def seated(hearing, participants, *roles: str, device=PHONE) -> dict[str, HearingClient]:
    """The judge and `roles` joined (the hearing admits on arrival), the judge receiving each
    one's video; `roles` join from `device` (None: without the browser's ids)."""
    clients = {"judge": HearingClient(hearing.base_url, "judge")}
    participants.append(clients["judge"])
    await clients["judge"].join(hearing.tokens["judge"])
    for role in roles:
        clients[role] = HearingClient(hearing.base_url, role)
        participants.append(clients[role])
        await clients[role].join(hearing.tokens[role], device=device)
    judge = clients["judge"]
    await judge.wait_for(lambda: all(judge.frames_from(hearing.ids[r], "video") > 5
                                     for r in roles))
    return clients


async def rejoined(hearing, participants, role: str, join: dict[str, object]
                   ) -> HearingClient:
    """`role` connects again with the join message `join` (its token added)."""
    again = HearingClient(hearing.base_url, f"{role}-again")
    participants.append(again)
    await again.connect()
    await again.send({"type": "join", "token": hearing.tokens[role], **join})
    await again.next_message("welcome")
    return again


async def test_a_check_without_the_browser_ids_holds_for_that_connection_only(
    auto_hearing, participants  # noqa: F811
):
    """`device` and `session` are optional in the join: a check made on a connection that
    sent neither (or no session) must not pass to whoever joins next without them, on any
    machine that holds the link."""
    hearing = auto_hearing
    d_id, l_id = hearing.ids["defendant"], hearing.ids["lawyer"]
    c = await seated(hearing, participants, "defendant", device=None)
    judge = c["judge"]
    await judge.send({"type": "command", "action": "verify_identity", "participant_id": d_id})
    await judge.wait_for(lambda: judge.seat(d_id)["identity"] == "verified")
    await c["defendant"].close()
    await judge.wait_for(lambda: judge.seat(d_id)["present"] is False)
    await rejoined(hearing, participants, "defendant", {})
    await judge.wait_for(lambda: judge.seat(d_id)["present"] is True)
    assert judge.seat(d_id)["identity"] == "unchecked"

    # A device id without a session id: a new tab of that browser is a new session.
    lawyer = await rejoined(hearing, participants, "lawyer", {"device": PHONE[0]})
    await judge.wait_for(lambda: judge.frames_from(l_id, "video") > 5)
    await judge.send({"type": "command", "action": "verify_identity", "participant_id": l_id})
    await judge.wait_for(lambda: judge.seat(l_id)["identity"] == "verified")
    await lawyer.close()
    await judge.wait_for(lambda: judge.seat(l_id)["present"] is False)
    await rejoined(hearing, participants, "lawyer", {"device": PHONE[0]})
    await judge.wait_for(lambda: judge.seat(l_id)["present"] is True)
    assert judge.seat(l_id)["identity"] == "unchecked"


async def test_no_still_is_taken_of_a_private_consultation(
    auto_hearing, participants, client, admin  # noqa: F811
):
    """Nobody outside a private consultation sees its members (signaling/routing.py): the
    court's identity check must not take a picture of it for the record."""
    hearing = auto_hearing
    d_id, l_id = hearing.ids["defendant"], hearing.ids["lawyer"]
    c = await seated(hearing, participants, "defendant", "lawyer")
    judge, lawyer = c["judge"], c["lawyer"]
    await lawyer.send({"type": "consult", "action": "request", "with": d_id})
    await judge.wait_for(lambda: (judge.seat(l_id)["consultation"] or {}).get("state")
                         == "requested")
    await judge.send({"type": "command", "action": "grant_consultation", "participant_id": l_id})
    await judge.wait_for(lambda: (judge.seat(d_id)["consultation"] or {}).get("state")
                         == "active")
    for action, reason in (("verify_identity", None), ("refuse_identity", "看不清")):
        message = {"type": "command", "action": action, "participant_id": d_id}
        if reason is not None:
            message["reason"] = reason
        text = await refused(judge, message, "invalid", "participant_id")
        assert "consultation" in text
    assert not [e for e in await audit_actions(client, hearing, admin)
                if e["action"] == "identity.checked"]
    assert judge.seat(d_id)["identity"] == "unchecked"


async def test_a_refusal_reason_is_told_to_the_court_only(
    auto_hearing, participants  # noqa: F811
):
    """Why someone's identity was refused is the court's to know (and theirs): the other
    parties' rosters do not carry it."""
    hearing = auto_hearing
    d_id = hearing.ids["defendant"]
    c = await seated(hearing, participants, "defendant", "lawyer")
    judge, lawyer, defendant = c["judge"], c["lawyer"], c["defendant"]
    reason = "身份证与本人不符，疑似冒名顶替"
    await judge.send({"type": "command", "action": "refuse_identity", "participant_id": d_id,
                      "reason": reason})
    await judge.wait_for(lambda: judge.seat(d_id)["identity_reason"] == reason)
    await lawyer.wait_for(lambda: lawyer.seat(d_id)["identity"] == "refused")
    assert lawyer.seat(d_id)["identity_reason"] is None
    # The lawyer's welcome after a reconnect does not carry it either.
    await lawyer.close()
    again = await rejoined(hearing, participants, "lawyer", {})
    welcome = next(m for m in again.messages if m["type"] == "welcome")
    [seat] = [p for p in welcome["participants"] if p["participant_id"] == d_id]
    assert seat["identity_reason"] is None
    await defendant.wait_for(lambda: defendant.seat(d_id)["identity"] == "refused")


async def test_nothing_is_verified_on_a_camera_switched_off_or_a_shared_screen(
    auto_hearing, participants, client, admin  # noqa: F811
):
    """A camera switched off sends black pictures, a screen share sends the screen in the
    camera's place: a still of either shows no face and no document, and 'verified' must not
    go on the record with it. A refusal is kept, without the picture."""
    hearing = auto_hearing
    l_id = hearing.ids["lawyer"]
    c = await seated(hearing, participants, "lawyer")
    judge, lawyer = c["judge"], c["lawyer"]
    verify = {"type": "command", "action": "verify_identity", "participant_id": l_id}
    await lawyer.send({"type": "camera", "off": True})
    await judge.wait_for(lambda: judge.seat(l_id)["camera_off"] is True)
    assert "switched off" in await refused(judge, verify, "no_picture")
    await judge.send({"type": "command", "action": "refuse_identity", "participant_id": l_id,
                      "reason": "摄像头未打开"})
    await judge.wait_for(lambda: judge.seat(l_id)["identity"] == "refused")
    await lawyer.send({"type": "camera", "off": False})
    await lawyer.send({"type": "screen", "sharing": True})
    await judge.wait_for(lambda: judge.seat(l_id)["camera_off"] is False
                         and judge.seat(l_id)["screen_sharing"] is True)
    assert "screen" in await refused(judge, verify, "no_picture")
    checks = [e["data"] for e in await audit_actions(client, hearing, admin)
              if e["action"] == "identity.checked"]
    assert [(c["outcome"], c["still_sha256"]) for c in checks] == [("refused", None)]
    # The camera back in the stream: verified, with its picture.
    await lawyer.send({"type": "screen", "sharing": False})
    await judge.wait_for(lambda: judge.seat(l_id)["screen_sharing"] is False)
    await judge.send(verify)
    await judge.wait_for(lambda: judge.seat(l_id)["identity"] == "verified")


async def test_a_refusal_is_not_shed_by_joining_in_a_new_session(
    auto_hearing, participants  # noqa: F811
):
    """Refused, the participant opens a new tab (a new session id, which the browser makes
    up): the court's console must still say refused, not 'not checked yet', until the court
    checks again."""
    hearing = auto_hearing
    d_id = hearing.ids["defendant"]
    c = await seated(hearing, participants, "defendant")
    judge = c["judge"]
    await judge.send({"type": "command", "action": "refuse_identity", "participant_id": d_id,
                      "reason": "证件照片与本人不符"})
    await judge.wait_for(lambda: judge.seat(d_id)["identity"] == "refused")
    await c["defendant"].close()
    await judge.wait_for(lambda: judge.seat(d_id)["present"] is False)
    again = await rejoined(hearing, participants, "defendant",
                           {"device": "another-device-01", "session": "session-cccccccc"})
    await judge.wait_for(lambda: judge.seat(d_id)["present"] is True)
    assert judge.seat(d_id)["identity"] == "refused"
    assert judge.seat(d_id)["identity_reason"] == "证件照片与本人不符"
    # Checked again on the new device, and verified: that holds there.
    await judge.wait_for(lambda: judge.frames_from(d_id, "video") > 5)
    await judge.send({"type": "command", "action": "verify_identity", "participant_id": d_id})
    await judge.wait_for(lambda: judge.seat(d_id)["identity"] == "verified")
    assert again.closed_code is None


async def test_the_courts_connection_is_not_held_while_a_still_is_awaited(
    auto_hearing, participants, monkeypatch  # noqa: F811
):
    """A keyframe can take seconds to come; meanwhile the judge's other messages are served,
    and a second check of the same person is refused as under way."""
    from media.room import MediaRoom

    released = asyncio.Event()
    real_still = MediaRoom.still

    async def slow_still(self: MediaRoom, participant_id: str) -> bytes:
        await released.wait()
        return await real_still(self, participant_id)

    monkeypatch.setattr(MediaRoom, "still", slow_still)
    hearing = auto_hearing
    d_id = hearing.ids["defendant"]
    c = await seated(hearing, participants, "defendant")
    judge = c["judge"]
    await judge.send({"type": "command", "action": "verify_identity", "participant_id": d_id})
    mark = len(judge.messages)
    await judge.send({"type": "ping", "ref": "still-waiting"})
    pong = await judge.next_message("pong", after=mark)
    assert pong["ref"] == "still-waiting"
    message = await refused(judge, {"type": "command", "action": "verify_identity",
                                    "participant_id": d_id}, "busy", "participant_id")
    assert "under way" in message
    assert judge.seat(d_id)["identity"] == "unchecked"
    released.set()
    await judge.wait_for(lambda: judge.seat(d_id)["identity"] == "verified")

"""Identity checks before each session (《人民法院在线诉讼规则》 art. 7), through the real server
and real aiortc peers: the court marks a participant verified (or refused, with a reason), the
server keeps a still of their camera at that moment with its sha256 in the audit, a reconnect
keeps the check and a new browser session does not."""

from __future__ import annotations

import hashlib
import io
import uuid

import av
import pytest

from courtrooms.identity import IdentityChecks
from tests.clients import HearingClient
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
        assert (picture.width, picture.height) == (640, 480), picture
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

"""Signing the record through the API, each participant with their own link: read the closed
hearing's record, ask for a correction, the clerk decides, sign with a drawn signature or
refuse; the judge and clerk last; staff cannot sign for anyone."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import FakeClock
from tests.courtrooms.test_signing import signature
from tests.web.support import API, HEARING_START, World, assert_error, call
from web.keys import HUB

PEOPLE = (("刘书记", "clerk", "courtroom"), ("李律师", "lawyer", "remote"),
          ("监督员", "observer", "remote"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def closed(client: TestClient, admin: dict[str, str], world: World
                 ) -> dict[str, dict[str, str]]:
    """The world's hearing with a clerk, a lawyer and an observer, closed; role -> id, token."""
    people = {"judge": {"id": world.judge_id, "token": world.judge_token},
              "defendant": {"id": world.defendant_id, "token": world.defendant_token}}
    for name, role, location in PEOPLE:
        reply = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/participants",
                           json={"name": name, "role": role, "location": location},
                           headers=admin)
        assert reply.status == 201, reply.text
        people[role] = {"id": reply.json["id"], "token": reply.json["token"]}
    for action in ("open", "start", "close"):
        reply = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/{action}",
                           headers=admin)
        assert reply.status == 200, reply.text
    return people


async def test_each_signs_with_their_own_link_and_the_court_last(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    people = await closed(client, admin, world)
    base = f"{API}/hearings/{world.hearing_id}/signing"

    async def as_(role: str, method: str, path: str = "", body: Any = None) -> Any:
        return await call(client, method, base + path, json=body,
                          headers=bearer(people[role]["token"]))

    read = await as_("lawyer", "GET")
    assert read.status == 200, read.text
    assert read.json["you"] == people["lawyer"]["id"]
    assert [s["role"] for s in read.json["signers"]] == ["defendant", "lawyer", "judge", "clerk"]
    [line] = read.json["lines"]
    assert line["text"] == "现在开庭。"

    def signed(sha: str, strokes: int = 3) -> dict[str, str]:
        return {"record_sha256": sha,
                "signature_png": base64.b64encode(signature(strokes)).decode()}

    # Staff do not sign for a participant; observers do not sign; the court signs last.
    assert_error(await call(client, "POST", base + "/signature",
                            json=signed(read.json["record_sha256"]), headers=admin),
                 403, "forbidden")
    assert_error(await as_("observer", "POST", "/signature", signed(read.json["record_sha256"])),
                 403, "access_denied")
    assert_error(await as_("judge", "POST", "/signature", signed(read.json["record_sha256"])),
                 409, "not_editable")

    # The lawyer asks for a correction; only the court decides; the clerk accepts it.
    asked = await as_("lawyer", "POST", "/corrections",
                      {"line_id": line["id"], "text": "现在开庭！", "reason": "语气"})
    assert asked.status == 200, asked.text
    [request] = asked.json["corrections"]
    assert_error(await as_("defendant", "POST", f"/corrections/{request['id']}",
                           {"accept": True}), 403, "forbidden")
    decided = await as_("clerk", "POST", f"/corrections/{request['id']}", {"accept": True})
    assert decided.status == 200, decided.text
    assert decided.json["lines"][0]["text"] == "现在开庭！"
    assert decided.json["record_sha256"] != read.json["record_sha256"]
    # Signing what was read before the correction is refused: read again.
    assert_error(await as_("lawyer", "POST", "/signature", signed(read.json["record_sha256"])),
                 409, "record_changed")
    now = decided.json["record_sha256"]
    reply = await as_("lawyer", "POST", "/signature", signed(now))
    assert reply.status == 200, reply.text
    # The defendant refuses; the clerk could note it for them too.
    assert_error(await as_("lawyer", "POST", "/refusal",
                           {"reason": "x", "participant_id": people["defendant"]["id"]}),
                 403, "forbidden")
    reply = await as_("defendant", "POST", "/refusal", {"reason": "不同意笔录内容"})
    assert reply.status == 200, reply.text
    assert (await as_("judge", "POST", "/signature", signed(now))).status == 200
    final = await as_("clerk", "POST", "/signature", signed(now, strokes=4))
    assert final.status == 200 and final.json["final"], final.text
    status = {s["role"]: s["status"] for s in final.json["signers"]}
    assert status == {"defendant": "refused", "lawyer": "signed", "judge": "signed",
                      "clerk": "signed"}

    # The signature as signed, and the audit holds its hash with the version signed.
    picture = await client.get(f"{base}/{people['clerk']['id']}/signature", headers=admin)
    assert picture.status == 200 and await picture.read() == signature(4)
    audit = await call(client, "GET", f"{API}/audit?hearing_id={world.hearing_id}&limit=200",
                       headers=admin)
    actions = [e["action"] for e in audit.json["items"]]
    for action in ("record.correction_requested", "record.correction_decided",
                   "record.signed", "record.signing_refused", "record.final"):
        assert action in actions, actions
    clerk_signed = next(e for e in audit.json["items"] if e["action"] == "record.signed"
                        and e["data"]["participant_id"] == people["clerk"]["id"])
    assert clerk_signed["data"]["record_sha256"] == now
    assert clerk_signed["data"]["signature_sha256"] == hashlib.sha256(signature(4)).hexdigest()


async def test_an_open_hearing_has_nothing_to_sign_yet(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    reply = await call(client, "GET", f"{API}/hearings/{world.hearing_id}/signing",
                       headers=bearer(world.judge_token))
    assert_error(reply, 409, "not_editable")


async def test_a_party_whose_id_digits_are_on_file_gives_them_to_sign(
    client: TestClient, admin: dict[str, str], world: World, clock: FakeClock
) -> None:
    """As at the join: the signing state says the digits are asked for, a signature or the
    party's own refusal without them or with wrong ones is refused (tries counted), the right
    ones sign; a prison terminal's kiosk, in the prison, is not asked."""
    hearing = f"{API}/hearings/{world.hearing_id}"
    party = await call(client, "POST", f"{hearing}/participants", headers=admin, json={
        "name": "王某", "role": "party", "location": "remote", "id_number_last4": "907X"})
    terminal = await call(client, "POST", f"{API}/prison-terminals", headers=admin,
                          json={"name": "终端二号", "prison": "北京市第一监狱"})
    detainee = await call(client, "POST", f"{hearing}/participants", headers=admin, json={
        "name": "刘某", "role": "defendant", "location": "prison",
        "terminal_id": terminal.json["id"], "id_number_last4": "1234"})
    assert party.status == detainee.status == 201, (party.text, detainee.text)
    clock.now = HEARING_START
    kiosk = await call(client, "GET", f"{API}/terminal/assignment",
                       headers={"Authorization": f"Device {terminal.json['device_key']}"})
    kiosk_token = kiosk.json["token"]
    for action in ("open", "start", "close"):
        assert (await call(client, "POST", f"{hearing}/{action}", headers=admin)).status == 200
    base = f"{hearing}/signing"
    read = await call(client, "GET", base, headers=bearer(party.json["token"]))
    assert read.json["id_digits"] is True and read.json["stage"] == "closed"
    assert (await call(client, "GET", base, headers=bearer(world.judge_token))
            ).json["id_digits"] is False
    sign = {"record_sha256": read.json["record_sha256"],
            "signature_png": base64.b64encode(signature()).decode()}

    async def as_party(path: str, body: dict[str, Any]) -> Any:
        return await call(client, "POST", base + path, json=body,
                          headers=bearer(party.json["token"]))

    assert assert_error(await as_party("/signature", sign), 403,
                        "id_digits_required")["field"] == "id_digits"
    assert_error(await as_party("/refusal", {"reason": "不签"}), 403, "id_digits_required")
    assert_error(await as_party("/signature", {**sign, "id_digits": "9071"}), 403,
                 "id_digits_wrong")
    assert_error(await as_party("/signature", {**sign, "id_digits": "12a4"}), 422, "invalid")
    state = (await call(client, "GET", base, headers=bearer(world.judge_token))).json
    assert {s["name"]: s["status"] for s in state["signers"]}["王某"] == "pending"
    signed = await as_party("/signature", {**sign, "id_digits": "907x"})
    assert signed.status == 200, signed.text
    assert {s["name"]: s["status"] for s in signed.json["signers"]}["王某"] == "signed"

    # The detainee signs at the kiosk with its token, not asked; their own link would be.
    on_kiosk = await call(client, "GET", base, headers=bearer(kiosk_token))
    assert on_kiosk.json["id_digits"] is False
    assert (await call(client, "GET", base, headers=bearer(detainee.json["token"]))
            ).json["id_digits"] is True
    by_kiosk = await call(client, "POST", base + "/signature", json=sign,
                          headers=bearer(kiosk_token))
    assert by_kiosk.status == 200, by_kiosk.text
    audit = await call(client, "GET", f"{API}/audit?hearing_id={world.hearing_id}&limit=200",
                       headers=admin)
    failed = [e for e in audit.json["items"] if e["action"] == "participant.id_digits_failed"]
    assert [e["data"]["participant_id"] for e in failed] == [party.json["id"]]


async def test_at_a_recess_the_judge_opened_the_record_so_far_is_signed(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    hearing = f"{API}/hearings/{world.hearing_id}"
    for action in ("open", "start", "recess"):
        assert (await call(client, "POST", f"{hearing}/{action}", headers=admin)).status == 200
    base = f"{hearing}/signing"
    assert_error(await call(client, "GET", base, headers=bearer(world.defendant_token)), 409,
                 "not_editable")
    await client.server.app[HUB].signing.open_at_recess(
        uuid.UUID(world.hearing_id), f"participant:{world.judge_id}")
    read = await call(client, "GET", base, headers=bearer(world.defendant_token))
    assert read.status == 200, read.text
    assert read.json["stage"] == "recess" and read.json["final"] is False
    signed = await call(client, "POST", base + "/signature", headers=bearer(
        world.defendant_token), json={"record_sha256": read.json["record_sha256"],
                                      "signature_png": base64.b64encode(signature()).decode()})
    assert signed.status == 200, signed.text
    assert (await call(client, "POST", f"{hearing}/resume", headers=admin)).status == 200
    assert_error(await call(client, "GET", base, headers=bearer(world.defendant_token)), 409,
                 "not_editable")

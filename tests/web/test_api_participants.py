"""A participant's ID number digits through the REST API: written once, never read back, and
refused with an error naming the field; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from courtrooms.models import StaffRole
from tests.conftest import FakeClock
from tests.web.support import API, HEARING_START, DatabaseState, World, assert_error, call

DIGITS = "907X"


async def add(client: TestClient, admin: dict[str, str], world: World, **person: Any) -> Any:
    body = {"name": "王某", "role": "party", "location": "remote", **person}
    return await call(client, "POST", f"{API}/hearings/{world.hearing_id}/participants",
                      json=body, headers=admin)


async def test_the_digits_are_written_once_and_never_read_back(
    client: TestClient, admin: dict[str, str], world: World, clock: FakeClock
) -> None:
    added = await add(client, admin, world, id_number_last4=DIGITS.lower())
    assert added.status == 201, added.text
    assert added.json["id_digits_on_file"] is True
    assert "id_number_last4" not in added.json
    plain = await add(client, admin, world, name="李某")
    assert plain.json["id_digits_on_file"] is False
    token = added.json["token"]
    readers = [
        f"{API}/hearings/{world.hearing_id}/participants",
        f"{API}/hearings/{world.hearing_id}",
        f"{API}/audit?hearing_id={world.hearing_id}&limit=200",
    ]
    replies = [await call(client, "GET", path, headers=admin) for path in readers]
    clock.now = HEARING_START  # the join link is open
    replies.append(await call(client, "GET", f"{API}/join/{token}"))
    for reply in [added, *replies]:
        assert reply.status == 200 or reply is added, reply.text
        assert DIGITS not in reply.text and DIGITS.lower() not in reply.text
        assert "id_number_last4" not in reply.text
    listed = {p["name"]: p for p in replies[0].json["items"]}
    assert listed["王某"]["id_digits_on_file"] is True
    assert listed["李某"]["id_digits_on_file"] is False
    assert replies[3].json["participant"]["id_digits_on_file"] is True


@pytest.mark.parametrize("value", ["12345", "123", "12a4", "X123", "１２３４", "12 4", "",
                                   1234, None, True, ["1234"]])
async def test_malformed_digits_are_refused_naming_the_field(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    value: Any,
) -> None:
    before = await db_state.snapshot()
    reply = await add(client, admin, world, id_number_last4=value)
    if value is None:  # null: none on file
        assert reply.status == 201 and reply.json["id_digits_on_file"] is False
        return
    error = assert_error(reply, 422, "invalid")
    assert error["field"] == "id_number_last4", error
    await db_state.assert_unchanged(before, repr(value))


@pytest.mark.parametrize("role,location", [("judge", "courtroom"), ("clerk", "courtroom"),
                                           ("observer", "remote")])
async def test_the_court_and_observers_take_no_digits(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    role: str, location: str,
) -> None:
    before = await db_state.snapshot()
    reply = await add(client, admin, world, role=role, location=location,
                      id_number_last4="1234")
    error = assert_error(reply, 422, "invalid")
    assert error["field"] == "id_number_last4" and role in error["message"], error
    await db_state.assert_unchanged(before, role)


async def test_the_api_document_says_the_field_is_write_only(client: TestClient) -> None:
    reply = await call(client, "GET", f"{API}/openapi.json")
    schemas = reply.json["components"]["schemas"]
    [written] = [s for s in schemas["ParticipantIn"]["properties"]["id_number_last4"]["anyOf"]
                 if s["type"] == "string"]
    assert written["writeOnly"] is True and written["pattern"] == "^[0-9]{3}[0-9Xx]$"
    for out in ("ParticipantOut", "ParticipantInvited"):
        assert "id_number_last4" not in schemas[out]["properties"]
        assert schemas[out]["properties"]["id_digits_on_file"]["type"] == "boolean"


async def test_an_interpreter_names_the_party_they_interpret_for(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
) -> None:
    party = await add(client, admin, world, name="Ivan Petrov", role="defendant")
    lawyer = await add(client, admin, world, name="李律师", role="lawyer")
    before = await db_state.snapshot()
    for wrong, words in [(lawyer.json["id"], "not for 李律师, a lawyer"),
                         (str(world.hearing_id), "is not a participant of this hearing"),
                         ("not-an-id", "UUID")]:
        reply = await add(client, admin, world, name="翻译 陈某", role="interpreter",
                          interprets_for_id=wrong)
        error = assert_error(reply, 422, "invalid")
        assert error["field"] == "interprets_for_id" and words in error["message"], error
    reply = await add(client, admin, world, name="王某", role="party",
                      interprets_for_id=party.json["id"])
    assert assert_error(reply, 422, "invalid")["field"] == "interprets_for_id"
    await db_state.assert_unchanged(before, "refused interpreters")

    added = await add(client, admin, world, name="翻译 陈某", role="interpreter",
                      interprets_for_id=party.json["id"])
    assert added.status == 201, added.text
    assert added.json["interprets_for_id"] == party.json["id"]
    listed = await call(client, "GET", f"{API}/hearings/{world.hearing_id}/participants",
                        headers=admin)
    by_name = {p["name"]: p for p in listed.json["items"]}
    assert by_name["翻译 陈某"]["interprets_for_id"] == party.json["id"]
    assert by_name["Ivan Petrov"]["interprets_for_id"] is None
    # The party stays while their interpreter does: the link would dangle.
    removed = await call(client, "DELETE", f"{API}/hearings/{world.hearing_id}/participants/"
                         f"{party.json['id']}", headers=admin)
    assert assert_error(removed, 409, "not_editable")


async def test_a_supervisor_watches_their_court_s_hearing_under_their_account_s_name(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
) -> None:
    from tests.web.test_endpoints import staff_account

    watch = f"{API}/hearings/{world.hearing_id}/watch"
    supervisor, as_supervisor = await staff_account(client, "sun.sup", StaffRole.SUPERVISOR,
                                                    world.court_id)
    other = (await call(client, "POST", f"{API}/courts", json={"name": "海淀区人民法院"},
                        headers=admin)).json["id"]
    _, as_far_supervisor = await staff_account(client, "zhou.sup", StaffRole.SUPERVISOR, other)
    _, as_clerk = await staff_account(client, "zhao.clerk", StaffRole.CLERK, world.court_id)

    before = await db_state.snapshot()
    # Another court's supervisor and a clerk may not; nobody picks another name.
    assert_error(await call(client, "POST", watch, json={}, headers=as_far_supervisor), 403,
                 "not_permitted")
    assert_error(await call(client, "POST", watch, json={}, headers=as_clerk), 403,
                 "not_permitted")
    error = assert_error(await call(client, "POST", watch, json={"name": "法官王某"},
                                    headers=as_supervisor), 422, "invalid")
    assert "own name" in error["message"]
    error = assert_error(await call(client, "POST", watch, json={}, headers=admin), 422,
                         "invalid")
    assert "name" in error["message"]
    await db_state.assert_unchanged(before, "refused watches")

    seat = await call(client, "POST", watch, json={}, headers=as_supervisor)
    assert seat.status == 201, seat.text
    assert seat.json["role"] == "observer" and seat.json["name"] == supervisor.name
    assert "/join/" in seat.json["join_url"]
    # The admin token names the observer itself.
    named = await call(client, "POST", watch, json={"name": "技术保障"}, headers=admin)
    assert named.status == 201 and named.json["name"] == "技术保障", named.text
    people = (await call(client, "GET", f"{API}/hearings/{world.hearing_id}/participants",
                         headers=admin)).json["items"]
    assert [p["name"] for p in people if p["role"] == "observer"] == [supervisor.name, "技术保障"]


async def test_judges_and_clerks_enter_their_own_hearings_from_their_accounts(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    clock: FakeClock,
) -> None:
    from tests.web.test_endpoints import staff_account

    clock.now = HEARING_START  # the hearing's join window is open
    hearing = f"{API}/hearings/{world.hearing_id}"
    judge, as_judge = await staff_account(client, "wang.judge", StaffRole.JUDGE, world.court_id)
    _, as_other_judge = await staff_account(client, "li.judge", StaffRole.JUDGE, world.court_id)
    clerk, as_clerk = await staff_account(client, "zhao.clerk", StaffRole.CLERK, world.court_id)
    _, as_supervisor = await staff_account(client, "sun.sup", StaffRole.SUPERVISOR,
                                           world.court_id)
    assert (await call(client, "PATCH", hearing, json={"judge_account_id": str(judge.id)},
                       headers=admin)).status == 200

    before = await db_state.snapshot()
    # Someone else's hearing, each refused with the reason: another judge, the court's clerk
    # who is not its clerk, a supervisor, the admin token (no account to seat).
    for headers, status, code, says in (
            (as_other_judge, 403, "not_permitted", "only the hearing's judge may enter it"),
            (as_clerk, 403, "not_permitted", "only the hearing's clerk may enter it"),
            (as_supervisor, 403, "not_permitted", "needs the clerk or judge role"),
            (admin, 403, "not_permitted", "names no account")):
        error = assert_error(await call(client, "POST", f"{hearing}/enter", headers=headers),
                             status, code)
        assert says in error["message"], error
    nobody_s = await call(client, "GET", f"{API}/my/hearings", headers=admin)
    assert (nobody_s.status, nobody_s.json["items"]) == (200, [])
    await db_state.assert_unchanged(before, "refused entries")

    # The judge enters: their own seat, named by the account (the world's typed judge stays).
    entered = await call(client, "POST", f"{hearing}/enter", headers=as_judge)
    assert entered.status == 201, entered.text
    seat = entered.json
    assert (seat["role"], seat["name"], seat["account_id"]) == ("judge", "wang.judge",
                                                               str(judge.id))
    opened = await call(client, "GET", f"{API}/join/{seat['token']}")
    assert opened.json["participant"]["id"] == seat["id"]
    again = await call(client, "POST", f"{hearing}/enter", headers=as_judge)
    assert again.json["id"] == seat["id"] and again.json["token"] != seat["token"]
    assert_error(await call(client, "GET", f"{API}/join/{seat['token']}"), 403, "access_denied")

    # Their hearings: the world's, as judge, with their seat; another judge has none.
    mine = await call(client, "GET", f"{API}/my/hearings", headers=as_judge)
    assert mine.status == 200, mine.text
    assert [(h["id"], h["roles"], h["seat_id"]) for h in mine.json["items"]] == [
        (world.hearing_id, ["judge"], seat["id"])]
    assert (await call(client, "GET", f"{API}/my/hearings", headers=as_other_judge)
            ).json["items"] == []
    assert (await call(client, "GET", f"{API}/my/hearings", headers=as_judge,
                       params={"from": "2999-01-01T00:00:00Z"})).json["items"] == []

    # The clerk is given by account: named by it, the hearing's clerk, theirs to enter.
    people = f"{hearing}/participants"
    for body, says in (({"account_id": str(clerk.id), "name": "赵某", "role": "clerk",
                         "location": "courtroom"}, "named by the account"),
                       ({"account_id": str(clerk.id), "role": "lawyer",
                         "location": "remote"}, "only a judge's or clerk's seat"),
                       ({"account_id": str(judge.id), "role": "clerk",
                         "location": "courtroom"}, "not an enabled clerk")):
        error = assert_error(await call(client, "POST", people, json=body, headers=admin), 422,
                             "invalid")
        assert says in error["message"] and error.get("field") in (None, "account_id"), error
    added = await call(client, "POST", people, headers=admin, json={
        "account_id": str(clerk.id), "role": "clerk", "location": "courtroom"})
    assert added.status == 201, added.text
    assert (added.json["name"], added.json["account_id"]) == ("zhao.clerk", str(clerk.id))
    assert (await call(client, "GET", hearing, headers=admin)).json["clerk_account_id"] == \
        str(clerk.id)
    assert (await call(client, "POST", f"{hearing}/enter", headers=as_clerk)
            ).json["id"] == added.json["id"]
    assert [h["roles"] for h in (await call(client, "GET", f"{API}/my/hearings",
                                            headers=as_clerk)).json["items"]] == [["clerk"]]


async def test_a_clerk_lists_their_court_s_judges_and_clerks_to_pick_from(
    client: TestClient, admin: dict[str, str], world: World,
) -> None:
    from tests.web.test_endpoints import staff_account

    judge, _ = await staff_account(client, "wang.judge", StaffRole.JUDGE, world.court_id)
    clerk, as_clerk = await staff_account(client, "zhao.clerk", StaffRole.CLERK, world.court_id)
    await staff_account(client, "sun.sup", StaffRole.SUPERVISOR, world.court_id)
    other = (await call(client, "POST", f"{API}/courts", json={"name": "海淀区人民法院"},
                        headers=admin)).json["id"]
    far, _ = await staff_account(client, "li.judge", StaffRole.JUDGE, other)
    listed = await call(client, "GET", f"{API}/accounts", headers=as_clerk)
    assert listed.status == 200, listed.text
    assert [(a["name"], a["roles"]) for a in listed.json["items"]] == [
        ("wang.judge", ["judge"]), ("zhao.clerk", ["clerk"])]
    assert "login" not in listed.json["items"][0]
    judges = await call(client, "GET", f"{API}/accounts", headers=as_clerk,
                        params={"role": "judge"})
    assert [a["id"] for a in judges.json["items"]] == [str(judge.id)]
    assert_error(await call(client, "GET", f"{API}/accounts", headers=as_clerk,
                            params={"court_id": other}), 403, "not_permitted")
    assert_error(await call(client, "GET", f"{API}/accounts", headers=as_clerk,
                            params={"role": "supervisor"}), 422, "invalid", "role")
    everyone = await call(client, "GET", f"{API}/accounts", headers=admin,
                          params={"role": "judge"})
    assert {a["id"] for a in everyone.json["items"]} == {str(judge.id), str(far.id)}
    assert clerk.id != judge.id

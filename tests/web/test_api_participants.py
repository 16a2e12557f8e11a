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

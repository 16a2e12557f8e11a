"""The calendar and supervision side of the API: conflicts before saving, filtered hearing lists
and the live hearings with who is connected, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from courtrooms.models import StaffRole
from tests.clients import HearingClient
from tests.conftest import FakeClock
from tests.web.support import (
    API,
    HEARING_START,
    DatabaseState,
    World,
    assert_error,
    call,
    hearing_body,
    iso,
)

START = HEARING_START


async def post(client: TestClient, admin: dict[str, str], path: str, body: Any = None,
               status: int = 201) -> Any:
    reply = await call(client, "POST", API + path, json=body, headers=admin)
    assert reply.status == status, reply.text
    return reply.json


async def invite(client: TestClient, admin: dict[str, str], hearing_id: str, name: str,
                 role: str, location: str = "remote", **extra: Any) -> Any:
    return await post(client, admin, f"/hearings/{hearing_id}/participants",
                      {"name": name, "role": role, "location": location, **extra})


async def conflicts(client: TestClient, admin: dict[str, str], body: dict[str, Any]) -> Any:
    reply = await call(client, "POST", f"{API}/hearings/conflicts", json=body, headers=admin)
    assert reply.status == 200, reply.text
    assert set(reply.json) == {"conflicts"}
    return reply.json["conflicts"]


def key(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((c["resource"], c["hearing_id"]) for c in entries)


async def test_conflicts_are_those_a_create_or_move_meets_and_nothing_is_saved(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState
) -> None:
    # The world's hearing holds its courtroom, judge 王审判员 and the terminal 10:00-12:00.
    later = START + timedelta(days=1)
    other = await post(client, admin, "/hearings", hearing_body(later))
    await invite(client, admin, other["id"], "王 审判员", "judge", "courtroom")
    await invite(client, admin, other["id"], "赵某", "defendant", "prison",
                 terminal_id=world.terminal_id)

    before = await db_state.snapshot()
    overlapping = hearing_body(START + timedelta(hours=1), courtroom_id=world.courtroom_id)
    found = await conflicts(client, admin, overlapping)
    assert key(found) == [("courtroom", world.hearing_id)]
    assert found[0]["courtroom_id"] == world.courtroom_id and found[0]["title"] == "张某盗窃案"
    # Moving the other hearing onto the world's: its judge and its terminal are taken too.
    moving = {**overlapping, "hearing_id": other["id"]}
    moved = await conflicts(client, admin, moving)
    assert key(moved) == [("courtroom", world.hearing_id), ("judge", world.hearing_id),
                          ("prison_terminal", world.hearing_id)]
    # Where it is now, or back to back with the world's hearing, it meets nothing.
    assert await conflicts(client, admin, {**hearing_body(later), "hearing_id": other["id"]}) == []
    assert await conflicts(client, admin, {**hearing_body(
        START + timedelta(hours=2), courtroom_id=world.courtroom_id),
        "hearing_id": other["id"]}) == []
    # A hearing does not conflict with itself.
    assert await conflicts(client, admin, {**overlapping, "hearing_id": world.hearing_id}) == []
    await db_state.assert_unchanged(before, "checking conflicts")

    # The very list a 409 carries, entry for entry.
    created = await call(client, "POST", f"{API}/hearings", json=overlapping, headers=admin)
    assert assert_error(created, 409, "schedule_conflict")["conflicts"] == found
    patched = await call(client, "PATCH", f"{API}/hearings/{other['id']}", headers=admin,
                         json={k: overlapping[k] for k in
                               ("scheduled_start", "scheduled_end", "courtroom_id")})
    assert assert_error(patched, 409, "schedule_conflict")["conflicts"] == moved
    await db_state.assert_unchanged(before, "refused create and move")

    # What else create or move would be refused for is refused here too.
    missing = await call(client, "POST", f"{API}/hearings/conflicts", headers=admin,
                         json={**overlapping, "hearing_id": str(uuid.uuid4())})
    assert_error(missing, 404, "not_found")
    nowhere = await call(client, "POST", f"{API}/hearings/conflicts", headers=admin,
                         json=hearing_body(courtroom_id=uuid.uuid4()))
    assert_error(nowhere, 422, "invalid", "courtroom_id")
    backwards = await call(client, "POST", f"{API}/hearings/conflicts", headers=admin,
                           json=hearing_body(end=START - timedelta(hours=1)))
    assert_error(backwards, 422, "invalid", "scheduled_end")
    for action in ("open", "start"):
        await post(client, admin, f"/hearings/{other['id']}/{action}", status=200)
    started = await call(client, "POST", f"{API}/hearings/conflicts", headers=admin,
                         json={**hearing_body(later), "hearing_id": other["id"]})
    assert assert_error(started, 409, "not_editable")["current_state"] == "in_session"
    assert_error(await call(client, "POST", f"{API}/hearings/conflicts", json=overlapping),
                 401, "unauthorized")


async def test_the_calendar_lists_by_courtroom_terminal_and_states(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    court = await post(client, admin, "/courts", {"name": "海淀法院"})
    room = await post(client, admin, "/courtrooms", {"court_id": court["id"], "name": "第二法庭"})
    terminal = await post(client, admin, "/prison-terminals",
                          {"name": "终端二号", "prison": "北京市第二监狱"})
    second = await post(client, admin, "/hearings",
                        hearing_body(START + timedelta(days=1), courtroom_id=room["id"]))
    await invite(client, admin, second["id"], "钱某", "defendant", "prison",
                 terminal_id=terminal["id"])
    await invite(client, admin, second["id"], "孙某", "defendant", "prison",
                 terminal_id=world.terminal_id)
    third = await post(client, admin, "/hearings", hearing_body(START + timedelta(days=2)))
    await post(client, admin, f"/hearings/{third['id']}/cancel", status=200)
    await post(client, admin, f"/hearings/{world.hearing_id}/open", status=200)

    async def listed(**params: str) -> list[dict[str, Any]]:
        reply = await call(client, "GET", f"{API}/hearings", headers=admin, params=params)
        assert reply.status == 200, reply.text
        assert reply.json["total"] == len(reply.json["items"])
        return list(reply.json["items"])

    everything = {h["id"]: h for h in await listed()}
    assert list(everything) == [world.hearing_id, second["id"], third["id"]]
    assert everything[world.hearing_id]["terminal_ids"] == [world.terminal_id]
    assert sorted(everything[second["id"]]["terminal_ids"]) == sorted(
        [terminal["id"], world.terminal_id])
    assert everything[third["id"]]["terminal_ids"] == []
    first = everything[world.hearing_id]
    assert first["courtroom_id"] == world.courtroom_id and first["state"] == "open"
    assert first["kind"] == "trial" and first["case_number"] and first["title"] == "张某盗窃案"
    assert first["scheduled_start"] == iso(START)

    def ids(items: list[dict[str, Any]]) -> list[str]:
        return [h["id"] for h in items]

    assert ids(await listed(courtroom_id=room["id"])) == [second["id"]]
    assert ids(await listed(terminal_id=world.terminal_id)) == [world.hearing_id, second["id"]]
    assert ids(await listed(terminal_id=terminal["id"])) == [second["id"]]
    assert ids(await listed(state="open")) == [world.hearing_id]
    assert ids(await listed(state="scheduled,cancelled")) == [second["id"], third["id"]]
    assert ids(await listed(state="open, scheduled", terminal_id=world.terminal_id)) == [
        world.hearing_id, second["id"]]
    assert ids(await listed(state="closed")) == []
    for bad in ("", "opened", "open,", "open;closed"):
        reply = await call(client, "GET", f"{API}/hearings", headers=admin,
                           params={"state": bad})
        error = assert_error(reply, 422, "invalid", "state")
        assert "in_session" in error["message"], error
    twice = await call(client, "GET", f"{API}/hearings?state=open&state=closed", headers=admin)
    assert_error(twice, 422, "invalid", "state")


@pytest.fixture
async def people() -> AsyncIterator[list[HearingClient]]:
    made: list[HearingClient] = []
    yield made
    for person in made:
        await person.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_live_hearings_count_who_is_connected(
    client: TestClient, admin: dict[str, str], world: World, clock: FakeClock,
    people: list[HearingClient],
) -> None:
    observer = await invite(client, admin, world.hearing_id, "监督员", "observer")
    lawyer = await invite(client, admin, world.hearing_id, "李律师", "lawyer")
    quiet = await post(client, admin, "/hearings", hearing_body(START + timedelta(hours=3)))
    await invite(client, admin, quiet["id"], "周审判员", "judge", "courtroom")
    await post(client, admin, "/hearings", hearing_body(START + timedelta(days=1)))  # scheduled
    closed = await post(client, admin, "/hearings", hearing_body(START - timedelta(hours=5)))
    clock.advance(timedelta(hours=9))  # 10:00, the world's hearing starts
    for hearing_id, actions in ((world.hearing_id, ("open", "start")), (quiet["id"], ("open",)),
                                (closed["id"], ("open", "start", "close"))):
        for action in actions:
            await post(client, admin, f"/hearings/{hearing_id}/{action}", status=200)

    async def live() -> dict[str, dict[str, Any]]:
        reply = await call(client, "GET", f"{API}/hearings/live", headers=admin)
        assert reply.status == 200, reply.text
        assert reply.json["total"] == len(reply.json["items"])
        return {item["hearing"]["id"]: item for item in reply.json["items"]}

    counts = {hid: (i["present"], i["participants"], i["observers"])
              for hid, i in (await live()).items()}
    # Judge, defendant and lawyer are on the record (the observer is not counted there).
    assert counts == {world.hearing_id: (0, 3, 0), quiet["id"]: (0, 1, 0)}

    base = str(client.make_url("")).rstrip("/")
    for token in (world.judge_token, lawyer["token"], observer["token"]):
        person = HearingClient(base, token[:6])
        person.publish = False
        people.append(person)
        await person.join(token)
        await person.next_message("welcome")
    items = await live()
    assert (items[world.hearing_id]["present"], items[world.hearing_id]["observers"]) == (2, 1)
    assert items[world.hearing_id]["hearing"]["state"] == "in_session"
    assert items[quiet["id"]]["present"] == 0

    await people[1].close()  # the lawyer leaves
    deadline = asyncio.get_running_loop().time() + 10
    while (await live())[world.hearing_id]["present"] != 1:
        assert asyncio.get_running_loop().time() < deadline, "the lawyer is still present"
        await asyncio.sleep(0.05)
    assert (await live())[world.hearing_id]["observers"] == 1

    await post(client, admin, f"/hearings/{world.hearing_id}/recess", status=200)
    assert world.hearing_id in await live()
    assert_error(await call(client, "GET", f"{API}/hearings/live"), 401, "unauthorized")
    assert_error(await call(client, "GET", f"{API}/hearings/live",
                            headers={"Authorization": f"Bearer {world.judge_token}"}), 401)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_new_hearings_judges_and_terminals_are_checked_the_way_adding_them_is(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    # The calendar sends a new hearing's judges and terminals as the clerk types them; the
    # server matches names as the registry does (any spacing, full case folding: ß is ss).
    await invite(client, admin, world.hearing_id, "Richterin Straße", "judge", "courtroom")
    body = hearing_body()  # the world's hearing's window, no courtroom

    def only(entries: list[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
        assert entries and {c["resource"] for c in entries} == {resource}, entries
        assert {c["hearing_id"] for c in entries} == {world.hearing_id}, entries
        return entries

    for typed, stored in (("王 审判员", "王审判员"), ("王\u3000审判员", "王审判员"),
                          ("RICHTERIN STRASSE", "Richterin Straße")):
        found = only(await conflicts(client, admin, {**body, "judges": [typed]}), "judge")
        assert [c["judge"] for c in found] == [stored]
    terminal = only(await conflicts(client, admin, {**body, "terminal_ids": [world.terminal_id]}),
                    "prison_terminal")
    assert terminal[0]["terminal_id"] == world.terminal_id
    assert await conflicts(client, admin, {**body, "judges": ["李审判员"],
                                           "terminal_ids": [str(uuid.uuid4())]}) == []
    later = hearing_body(START + timedelta(hours=2))  # back to back is no conflict
    assert await conflicts(client, admin, {**later, "judges": ["王审判员"],
                                           "terminal_ids": [world.terminal_id]}) == []

    # What the check found is what adding the judge to the new hearing is refused for.
    checked = await conflicts(client, admin, {**body, "judges": ["王 审判员"]})
    created = await post(client, admin, "/hearings", body)
    refused = await call(client, "POST", f"{API}/hearings/{created['id']}/participants",
                         json={"name": "王 审判员", "role": "judge", "location": "courtroom"},
                         headers=admin)
    assert assert_error(refused, 409, "schedule_conflict")["conflicts"] == checked

    for bad in ({"judges": "王审判员"}, {"judges": [7]}, {"terminal_ids": ["x"]},
                {"judges": ["审"] * 101}, {"judges": [""]}):
        reply = await call(client, "POST", f"{API}/hearings/conflicts", json={**body, **bad},
                           headers=admin)
        assert_error(reply, 422)


async def test_a_judge_who_is_an_account_is_checked_by_the_account(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    from tests.web.test_endpoints import staff_account

    # The world's hearing: its judge typed 王审判员, its judge's account named otherwise.
    judge, _ = await staff_account(client, "wang.fang", StaffRole.JUDGE, world.court_id)
    assert (await call(client, "PATCH", f"{API}/hearings/{world.hearing_id}", headers=admin,
                       json={"judge_account_id": str(judge.id)})).status == 200
    body = hearing_body()  # the world's hearing's window, no courtroom
    # The same judge by account: found, though no typed name matches.
    found = await conflicts(client, admin, {**body, "judge_account_id": str(judge.id),
                                            "judges": ["王法官"]})
    assert [(c["resource"], c["hearing_id"], c["judge"], c["judge_account_id"])
            for c in found] == [("judge", world.hearing_id, "wang.fang", str(judge.id))]
    # What the check found is what scheduling with that judge is refused for.
    refused = await call(client, "POST", f"{API}/hearings", headers=admin,
                         json={**body, "judge_account_id": str(judge.id)})
    assert assert_error(refused, 409, "schedule_conflict")["conflicts"] == found
    assert await conflicts(client, admin, {**body, "judges": ["王法官"]}) == []
    assert_error(await call(client, "POST", f"{API}/hearings/conflicts", headers=admin,
                            json={**body, "judge_account_id": "王法官"}), 422, "invalid",
                 "judge_account_id")

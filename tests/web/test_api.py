"""The REST API end to end, through the real app on a real port, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import itertools
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from config import Settings
from courtrooms.errors import RecordSealed
from courtrooms.transcripts import SpokenLine
from tests.conftest import ADMIN_TOKEN, FakeClock
from tests.web.support import (
    API,
    HEARING_END,
    HEARING_START,
    DatabaseState,
    World,
    assert_error,
    call,
    hearing_body,
    iso,
    valid_body,
)
from web.api import api
from web.keys import HUB

START = HEARING_START


async def post(client: TestClient, admin: dict[str, str], path: str, body: Any,
               status: int = 201) -> Any:
    reply = await call(client, "POST", API + path, json=body, headers=admin)
    assert reply.status == status, reply.text
    return reply.json


async def get(client: TestClient, admin: dict[str, str], path: str, status: int = 200,
              params: Any = None) -> Any:
    reply = await call(client, "GET", API + path, headers=admin, params=params)
    assert reply.status == status, reply.text
    return reply.json


async def invite(client: TestClient, admin: dict[str, str], hearing_id: str, name: str,
                 role: str = "party", location: str = "remote", **extra: Any) -> Any:
    return await post(client, admin, f"/hearings/{hearing_id}/participants",
                      {"name": name, "role": role, "location": location, **extra})


# -- courts, courtrooms, prison terminals ------------------------------------------------------


async def test_court_lifecycle(client: TestClient, admin: dict[str, str], clock: FakeClock,
                               db_state: DatabaseState) -> None:
    court = await post(client, admin, "/courts", {"name": "  北京市高级人民法院  "})
    assert uuid.UUID(court["id"])
    assert court["name"] == "北京市高级人民法院"  # surrounding spaces are not part of a name
    assert court["created_at"] == iso(clock.now)
    assert await get(client, admin, f"/courts/{court['id']}") == court

    other = await post(client, admin, "/courts", {"name": "上海市高级人民法院"})
    page = await get(client, admin, "/courts")
    assert page["total"] == 2 and page["limit"] == 50 and page["offset"] == 0
    assert [c["id"] for c in page["items"]] == sorted(
        [court["id"], other["id"]], key={court["id"]: court["name"],
                                         other["id"]: other["name"]}.get
    )
    page = await get(client, admin, "/courts", params={"limit": 1, "offset": 1})
    assert page["total"] == 2 and len(page["items"]) == 1

    before = await db_state.snapshot()
    dup = await call(client, "POST", API + "/courts", json={"name": "上海市高级人民法院"},
                     headers=admin)
    assert_error(dup, 422, "invalid", "name")
    dup = await call(client, "PATCH", f"{API}/courts/{court['id']}",
                     json={"name": "上海市高级人民法院"}, headers=admin)
    assert_error(dup, 422, "invalid", "name")
    await db_state.assert_unchanged(before, "duplicate court names")

    renamed = await call(client, "PATCH", f"{API}/courts/{court['id']}",
                         json={"name": "北京市第一中级人民法院"}, headers=admin)
    assert renamed.status == 200, renamed.text
    assert renamed.json == {**court, "name": "北京市第一中级人民法院"}
    assert (await get(client, admin, f"/courts/{court['id']}"))["name"] == "北京市第一中级人民法院"

    deleted = await call(client, "DELETE", f"{API}/courts/{court['id']}", headers=admin)
    assert deleted.status == 204 and deleted.text == ""
    assert_error(await call(client, "GET", f"{API}/courts/{court['id']}", headers=admin),
                 404, "not_found")
    assert_error(await call(client, "DELETE", f"{API}/courts/{court['id']}", headers=admin),
                 404, "not_found")
    assert (await get(client, admin, "/courts"))["total"] == 1


async def test_courtroom_lifecycle(client: TestClient, admin: dict[str, str],
                                   db_state: DatabaseState) -> None:
    court = await post(client, admin, "/courts", {"name": "朝阳法院"})
    court2 = await post(client, admin, "/courts", {"name": "海淀法院"})
    room = await post(client, admin, "/courtrooms", {"court_id": court["id"], "name": "第一法庭"})
    assert room["court_id"] == court["id"] and room["name"] == "第一法庭"
    # The same name is fine in another court, not twice in one.
    room2 = await post(client, admin, "/courtrooms", {"court_id": court2["id"], "name": "第一法庭"})
    before = await db_state.snapshot()
    assert_error(await call(client, "POST", API + "/courtrooms", headers=admin,
                            json={"court_id": court["id"], "name": "第一法庭"}),
                 422, "invalid", "name")
    assert_error(await call(client, "POST", API + "/courtrooms", headers=admin,
                            json={"court_id": str(uuid.uuid4()), "name": "第九法庭"}),
                 422, "invalid", "court_id")
    await db_state.assert_unchanged(before, "refused courtrooms")

    assert await get(client, admin, f"/courtrooms/{room['id']}") == room
    listed = await get(client, admin, "/courtrooms", params={"court_id": court2["id"]})
    assert [r["id"] for r in listed["items"]] == [room2["id"]] and listed["total"] == 1
    assert (await get(client, admin, "/courtrooms"))["total"] == 2

    patched = await call(client, "PATCH", f"{API}/courtrooms/{room['id']}",
                         json={"name": "第五法庭"}, headers=admin)
    assert patched.status == 200 and patched.json["name"] == "第五法庭"

    # A court with courtrooms, and a courtroom a hearing uses, cannot be deleted.
    await post(client, admin, "/hearings", hearing_body(courtroom_id=room["id"]))
    assert_error(await call(client, "DELETE", f"{API}/courts/{court['id']}", headers=admin),
                 409, "in_use")
    assert_error(await call(client, "DELETE", f"{API}/courtrooms/{room['id']}", headers=admin),
                 409, "in_use")
    assert (await call(client, "DELETE", f"{API}/courtrooms/{room2['id']}", headers=admin)
            ).status == 204
    assert_error(await call(client, "GET", f"{API}/courtrooms/{room2['id']}", headers=admin),
                 404, "not_found")
    assert (await call(client, "DELETE", f"{API}/courts/{court2['id']}", headers=admin)
            ).status == 204


async def test_prison_terminal_device_key_is_shown_only_at_creation_and_rotation(
    client: TestClient, admin: dict[str, str]
) -> None:
    created = await post(client, admin, "/prison-terminals",
                         {"name": "终端一号", "prison": "北京市第一监狱"})
    key = created["device_key"]
    assert len(key) >= 32
    terminal_id = created["id"]
    shown = {k: v for k, v in created.items() if k != "device_key"}

    detail = await call(client, "GET", f"{API}/prison-terminals/{terminal_id}", headers=admin)
    assert detail.json == shown
    listed = await call(client, "GET", f"{API}/prison-terminals", headers=admin)
    assert listed.json["items"] == [shown]

    rotated = await post(client, admin, f"/prison-terminals/{terminal_id}/rotate-key", None,
                         status=200)
    new_key = rotated["device_key"]
    assert new_key != key and {k: v for k, v in rotated.items() if k != "device_key"} == shown

    patched = await call(client, "PATCH", f"{API}/prison-terminals/{terminal_id}",
                         json={"prison": "北京市第二监狱"}, headers=admin)
    assert patched.status == 200 and patched.json == {**shown, "prison": "北京市第二监狱"}
    assert "device_key" not in patched.json

    # Neither key is anywhere a GET shows, the audit trail included.
    for path in (f"/prison-terminals/{terminal_id}", "/prison-terminals", "/audit"):
        text = (await call(client, "GET", API + path, headers=admin)).text
        assert key not in text and new_key not in text and "device_key" not in text, path

    # Only the new key opens the terminal's assignment.
    old = await call(client, "GET", API + "/terminal/assignment",
                     headers={"Authorization": f"Device {key}"})
    assert_error(old, 403, "access_denied")
    fresh = await call(client, "GET", API + "/terminal/assignment",
                       headers={"Authorization": f"Device {new_key}"})
    assert fresh.status == 200 and fresh.json["terminal"]["id"] == terminal_id

    deleted = await call(client, "DELETE", f"{API}/prison-terminals/{terminal_id}", headers=admin)
    assert deleted.status == 204
    gone = await call(client, "GET", API + "/terminal/assignment",
                      headers={"Authorization": f"Device {new_key}"})
    assert_error(gone, 403, "access_denied")


async def test_a_terminal_offers_its_detainee_the_closed_record_to_sign(
    client: TestClient, admin: dict[str, str], world: World, clock: FakeClock
) -> None:
    """The kiosk leaves the hearing room when the hearing closes; its terminal page then
    offers the record to sign with the terminal's own token, until the detainee signed or
    refused."""
    from tests.courtrooms.test_signing import signature

    device = {"Authorization": f"Device {world.device_key}"}
    clock.now = HEARING_START
    joined = await call(client, "GET", f"{API}/terminal/assignment", headers=device)
    assert joined.json["signing"] == []
    for action in ("open", "start", "close"):
        reply = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/{action}",
                           headers=admin)
        assert reply.status == 200, reply.text
    after = await call(client, "GET", f"{API}/terminal/assignment", headers=device)
    assert after.status == 200, after.text
    assert after.json["hearing"] is None  # nothing to join
    [offered] = after.json["signing"]
    token = joined.json["token"]
    assert offered["hearing"]["id"] == world.hearing_id
    assert offered["participant"]["id"] == world.defendant_id and offered["token"] == token
    assert offered["sign_url"] == f"/sign/{world.hearing_id}?kiosk=1#{token}"
    base = f"{API}/hearings/{world.hearing_id}/signing"
    read = await call(client, "GET", base, headers={"Authorization": f"Bearer {token}"})
    signed = await call(client, "POST", base + "/signature", json={
        "record_sha256": read.json["record_sha256"],
        "signature_png": base64.b64encode(signature()).decode()},
        headers={"Authorization": f"Bearer {token}"})
    assert signed.status == 200, signed.text
    done = await call(client, "GET", f"{API}/terminal/assignment", headers=device)
    assert done.json["signing"] == []
    # Days later the terminal no longer offers a closed hearing's record.
    clock.now = HEARING_START + timedelta(days=4)
    assert (await call(client, "GET", f"{API}/terminal/assignment", headers=device)
            ).json["signing"] == []


async def test_a_terminal_on_a_hearing_record_cannot_be_deleted(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    reply = await call(client, "DELETE", f"{API}/prison-terminals/{world.terminal_id}",
                       headers=admin)
    assert_error(reply, 409, "in_use")
    assert (await call(client, "GET", f"{API}/prison-terminals/{world.terminal_id}",
                       headers=admin)).status == 200


# -- hearings --------------------------------------------------------------------------------


async def test_schedule_and_read_a_hearing(client: TestClient, admin: dict[str, str],
                                           clock: FakeClock, settings: Settings) -> None:
    court = await post(client, admin, "/courts", {"name": "朝阳法院"})
    room = await post(client, admin, "/courtrooms", {"court_id": court["id"], "name": "第一法庭"})
    created = await post(client, admin, "/hearings", hearing_body(courtroom_id=room["id"]))
    assert uuid.UUID(created["id"])
    assert created["state"] == "scheduled"
    assert created["courtroom_id"] == room["id"]
    assert created["scheduled_start"] == iso(START) and created["scheduled_end"] == iso(HEARING_END)
    assert created["language"] == settings.default_language
    assert created["auto_admit"] is False
    assert created["created_at"] == created["updated_at"] == iso(clock.now)
    assert created["started_at"] is None and created["closed_at"] is None

    # A start given in another zone is the same instant, returned in UTC.
    other = await post(client, admin, "/hearings", hearing_body(
        start=START + timedelta(days=1), language="en", auto_admit=True))
    again = await get(client, admin, f"/hearings/{other['id']}")
    assert again["language"] == "en" and again["auto_admit"] is True
    east = hearing_body()
    east["scheduled_start"] = "2026-11-24T18:00:00+08:00"
    east["scheduled_end"] = "2026-11-24T20:00:00+08:00"
    zoned = await post(client, admin, "/hearings", east)
    assert zoned["scheduled_start"] == "2026-11-24T10:00:00Z"

    judge = await invite(client, admin, created["id"], "王审判员", "judge", "courtroom")
    detail = await get(client, admin, f"/hearings/{created['id']}")
    assert {k: v for k, v in detail.items() if k != "participants"} == created
    assert [p["id"] for p in detail["participants"]] == [judge["id"]]
    assert detail["participants"][0]["name"] == "王审判员"
    assert "token" not in detail["participants"][0]
    assert_error(await call(client, "GET", f"{API}/hearings/{uuid.uuid4()}", headers=admin),
                 404, "not_found")


async def test_refused_hearing_bodies_name_the_field(client: TestClient, admin: dict[str, str],
                                                     db_state: DatabaseState) -> None:
    before = await db_state.snapshot()
    cases: list[tuple[dict[str, Any], str]] = [
        (hearing_body(end=START), "scheduled_end"),
        (hearing_body(end=START - timedelta(minutes=1)), "scheduled_end"),
        (hearing_body(end=START + timedelta(days=7, seconds=1)), "scheduled_end"),
        ({**hearing_body(), "scheduled_start": "2026-11-23T10:00:00"}, "scheduled_start"),
        ({**hearing_body(), "kind": "duel"}, "kind"),
        ({**hearing_body(), "language": "Chinese"}, "language"),
        ({**hearing_body(), "title": "   "}, "title"),
        ({**hearing_body(), "case_number": "x" * 101}, "case_number"),
        ({**hearing_body(), "auto_admit": "yes"}, "auto_admit"),
    ]
    for body, field in cases:
        reply = await call(client, "POST", API + "/hearings", json=body, headers=admin)
        error = assert_error(reply, 422, "invalid", field)
        assert field in error["message"], error
    nowhere = uuid.uuid4()
    reply = await call(client, "POST", API + "/hearings", headers=admin,
                       json=hearing_body(courtroom_id=nowhere))
    error = assert_error(reply, 422, "invalid", "courtroom_id")
    assert str(nowhere) in error["message"]
    await db_state.assert_unchanged(before, "refused hearings")


async def test_far_off_times_are_refused_not_failed(client: TestClient, admin: dict[str, str],
                                                    world: World,
                                                    db_state: DatabaseState) -> None:
    """Times whose UTC (or join window) falls outside the calendar get a 422, never a 500."""
    before = await db_state.snapshot()
    far = [("9999-12-31T20:00:00-14:00", "9999-12-31T22:00:00-14:00"),
           ("0001-01-01T00:00:00+14:00", "0001-01-01T02:00:00+14:00"),
           ("0001-01-01T00:00:00Z", "0001-01-01T02:00:00Z"),
           ("9999-12-31T20:00:00Z", "9999-12-31T22:00:00Z")]
    for start, end in far:
        body = {**hearing_body(), "scheduled_start": start, "scheduled_end": end}
        reply = await call(client, "POST", API + "/hearings", json=body, headers=admin)
        assert_error(reply, 422, "invalid", "scheduled_start")
        reply = await call(client, "PATCH", f"{API}/hearings/{world.hearing_id}", headers=admin,
                           json={"scheduled_start": start, "scheduled_end": end})
        assert_error(reply, 422, "invalid", "scheduled_start")
        for name in ("from", "to"):
            reply = await call(client, "GET", API + "/hearings", params={name: start},
                               headers=admin)
            assert_error(reply, 422, "invalid", name)
    for path in ("/hearings", "/courts", "/courtrooms", "/prison-terminals", "/audit"):
        for offset in (str(2**63), "9" * 40):
            reply = await call(client, "GET", API + path, params={"offset": offset},
                               headers=admin)
            assert_error(reply, 422, "invalid", "offset")
    await db_state.assert_unchanged(before, "far-off times")


async def test_list_hearings_by_window_courtroom_and_page(client: TestClient,
                                                          admin: dict[str, str]) -> None:
    court = await post(client, admin, "/courts", {"name": "朝阳法院"})
    room_a = await post(client, admin, "/courtrooms", {"court_id": court["id"], "name": "A"})
    room_b = await post(client, admin, "/courtrooms", {"court_id": court["id"], "name": "B"})
    h1 = await post(client, admin, "/hearings", hearing_body(START, courtroom_id=room_a["id"]))
    h2 = await post(client, admin, "/hearings", hearing_body(
        START + timedelta(hours=3), START + timedelta(hours=4), courtroom_id=room_a["id"]))
    h3 = await post(client, admin, "/hearings", hearing_body(
        START + timedelta(days=1), courtroom_id=room_b["id"]))

    async def ids(**params: Any) -> list[str]:
        page = await get(client, admin, "/hearings", params=params)
        assert page["total"] == len(page["items"]), page
        return [h["id"] for h in page["items"]]

    assert await ids() == [h1["id"], h2["id"], h3["id"]]
    # Hearings overlapping [from, to): h1 ends at 12:00 and h2 starts at 13:00.
    assert await ids(**{"from": iso(START + timedelta(hours=1)),
                        "to": iso(START + timedelta(hours=3, minutes=30))}) == [h1["id"], h2["id"]]
    assert await ids(**{"from": iso(HEARING_END)}) == [h2["id"], h3["id"]]
    assert await ids(to=iso(START + timedelta(hours=3))) == [h1["id"]]
    # The same instant written in UTC+8.
    assert await ids(**{"from": "2026-11-23T20:00:00+08:00"}) == [h2["id"], h3["id"]]
    assert await ids(courtroom_id=room_b["id"]) == [h3["id"]]
    assert await ids(courtroom_id=room_a["id"], to=iso(START + timedelta(hours=1))) == [h1["id"]]
    assert await ids(courtroom_id=str(uuid.uuid4())) == []

    page = await get(client, admin, "/hearings", params={"limit": 1, "offset": 1})
    assert page["total"] == 3 and page["limit"] == 1 and page["offset"] == 1
    assert [h["id"] for h in page["items"]] == [h2["id"]]
    page = await get(client, admin, "/hearings", params={"offset": 5})
    assert page["total"] == 3 and page["items"] == []

    for params, field in [({"from": "2026-11-23T10:00:00"}, "from"), ({"limit": "0"}, "limit"),
                          ({"limit": "201"}, "limit"), ({"offset": "-1"}, "offset"),
                          ({"courtroom_id": "A"}, "courtroom_id"), ({"colour": "red"}, "colour")]:
        reply = await call(client, "GET", API + "/hearings", params=params, headers=admin)
        assert_error(reply, 422, "invalid", field)
    twice = await call(client, "GET", API + "/hearings?limit=1&limit=2", headers=admin)
    assert_error(twice, 422, "invalid", "limit")


async def test_patch_moves_a_hearing(client: TestClient, admin: dict[str, str], world: World,
                                     clock: FakeClock) -> None:
    clock.advance(timedelta(minutes=5))
    later = START + timedelta(days=2)
    reply = await call(client, "PATCH", f"{API}/hearings/{world.hearing_id}", headers=admin,
                       json={"scheduled_start": iso(later),
                             "scheduled_end": iso(later + timedelta(hours=1))})
    assert reply.status == 200, reply.text
    moved = reply.json
    assert moved["scheduled_start"] == iso(later)
    assert moved["scheduled_end"] == iso(later + timedelta(hours=1))
    assert moved["updated_at"] == iso(clock.now) != moved["created_at"]
    assert {p["id"] for p in moved["participants"]} == {world.judge_id, world.defendant_id}
    assert await get(client, admin, f"/hearings/{world.hearing_id}") == moved

    # Moving the end alone before the start is refused; the hearing keeps its window.
    bad = await call(client, "PATCH", f"{API}/hearings/{world.hearing_id}", headers=admin,
                     json={"scheduled_end": iso(later - timedelta(hours=1))})
    assert_error(bad, 422, "invalid", "scheduled_end")
    for field in ("title", "kind", "scheduled_start"):
        null = await call(client, "PATCH", f"{API}/hearings/{world.hearing_id}", headers=admin,
                          json={field: None})
        assert_error(null, 422, "invalid")
    assert await get(client, admin, f"/hearings/{world.hearing_id}") == moved

    # courtroom_id: null takes the hearing out of its courtroom.
    unassigned = await call(client, "PATCH", f"{API}/hearings/{world.hearing_id}",
                            headers=admin, json={"courtroom_id": None, "title": "改"})
    assert unassigned.status == 200 and unassigned.json["courtroom_id"] is None
    assert unassigned.json["title"] == "改"
    missing = await call(client, "PATCH", f"{API}/hearings/{uuid.uuid4()}", headers=admin,
                         json={"title": "x"})
    assert_error(missing, 404, "not_found")


async def test_schedule_conflicts_list_the_conflicting_hearings(
    client: TestClient, admin: dict[str, str], db_state: DatabaseState
) -> None:
    court = await post(client, admin, "/courts", {"name": "朝阳法院"})
    room = await post(client, admin, "/courtrooms", {"court_id": court["id"], "name": "A"})
    h1 = await post(client, admin, "/hearings", hearing_body(START, courtroom_id=room["id"]))
    h2 = await post(client, admin, "/hearings", hearing_body(
        START + timedelta(hours=3), START + timedelta(hours=4), courtroom_id=room["id"]))
    elsewhere = await post(client, admin, "/hearings", hearing_body(START + timedelta(days=1)))
    # Back to back is not a conflict.
    await post(client, admin, "/hearings", hearing_body(
        HEARING_END, START + timedelta(hours=3), courtroom_id=room["id"]))

    before = await db_state.snapshot()
    clash = await call(client, "POST", API + "/hearings", headers=admin, json=hearing_body(
        START + timedelta(hours=1), START + timedelta(hours=3, minutes=30),
        courtroom_id=room["id"]))
    error = assert_error(clash, 409, "schedule_conflict")
    assert {c["hearing_id"] for c in error["conflicts"]} >= {h1["id"], h2["id"]}
    assert {c["resource"] for c in error["conflicts"]} == {"courtroom"}

    moved = await call(client, "PATCH", f"{API}/hearings/{elsewhere['id']}", headers=admin,
                       json={"courtroom_id": room["id"],
                             "scheduled_start": iso(START + timedelta(minutes=30)),
                             "scheduled_end": iso(START + timedelta(hours=1))})
    error = assert_error(moved, 409, "schedule_conflict")
    assert [c["hearing_id"] for c in error["conflicts"]] == [h1["id"]]
    await db_state.assert_unchanged(before, "conflicting schedules")

    # One judge cannot sit in two overlapping hearings, however the name is spaced or cased.
    await invite(client, admin, h1["id"], "Judge Wang", "judge", "courtroom")
    overlapping = await post(client, admin, "/hearings", hearing_body(START + timedelta(hours=1)))
    before = await db_state.snapshot()
    judge = await call(client, "POST", f"{API}/hearings/{overlapping['id']}/participants",
                       headers=admin,
                       json={"name": "judge  WANG", "role": "judge", "location": "remote"})
    error = assert_error(judge, 409, "schedule_conflict")
    assert [(c["hearing_id"], c["resource"]) for c in error["conflicts"]] == [(h1["id"], "judge")]
    await db_state.assert_unchanged(before, "double-booked judge")

    # A cancelled hearing holds nothing.
    await post(client, admin, f"/hearings/{h1['id']}/cancel", None, status=200)
    await invite(client, admin, overlapping["id"], "judge  WANG", "judge", "remote")


# -- participants and join tokens ------------------------------------------------------------


async def test_invite_participant_returns_token_and_join_url(
    client: TestClient, admin: dict[str, str], settings: Settings, world: World,
    db_state: DatabaseState,
) -> None:
    invited = await invite(client, admin, world.hearing_id, "李律师", "lawyer", "remote")
    assert uuid.UUID(invited["id"])
    assert invited["hearing_id"] == world.hearing_id
    assert invited["role"] == "lawyer" and invited["location"] == "remote"
    assert len(invited["token"]) >= 32
    assert settings.public_url == "http://court.example"
    assert invited["join_url"] == f"{settings.public_url}/join/{invited['token']}"

    listed = await get(client, admin, f"/hearings/{world.hearing_id}/participants")
    assert [p["id"] for p in listed["items"]] == [world.judge_id, world.defendant_id,
                                                  invited["id"]]
    assert all("token" not in p for p in listed["items"])
    audit = (await call(client, "GET", API + "/audit", headers=admin,
                        params={"limit": 200})).text
    assert invited["token"] not in audit and world.judge_token not in audit

    before = await db_state.snapshot()
    refused = [
        ({"name": "赵某", "role": "witness", "location": "remote",
          "terminal_id": world.terminal_id}, "terminal_id"),
        ({"name": "赵某", "role": "witness", "location": "prison",
          "terminal_id": str(uuid.uuid4())}, "terminal_id"),
        ({"name": "赵某", "role": "defendant", "location": "prison",
          "terminal_id": world.terminal_id}, "terminal_id"),
        ({"name": "赵某", "role": "bailiff", "location": "remote"}, "role"),
        ({"name": "赵\x00某", "role": "witness", "location": "remote"}, "name"),
    ]
    for body, field in refused:
        reply = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/participants",
                           json=body, headers=admin)
        assert_error(reply, 422, "invalid", field)
    nowhere = await call(client, "POST", f"{API}/hearings/{uuid.uuid4()}/participants",
                         json={"name": "赵某", "role": "witness", "location": "remote"},
                         headers=admin)
    assert_error(nowhere, 404, "not_found")
    await db_state.assert_unchanged(before, "refused participants")

    removed = await call(client, "DELETE",
                         f"{API}/hearings/{world.hearing_id}/participants/{invited['id']}",
                         headers=admin)
    assert removed.status == 204
    listed = await get(client, admin, f"/hearings/{world.hearing_id}/participants")
    assert invited["id"] not in [p["id"] for p in listed["items"]]
    assert_error(await call(client, "GET", f"{API}/join/{invited['token']}"), 403)


async def test_join_token_window_close_revocation_and_reissue(
    client: TestClient, admin: dict[str, str], clock: FakeClock, world: World,
    settings: Settings,
) -> None:
    async def join(token: str) -> Any:
        return await call(client, "GET", f"{API}/join/{token}")

    early = assert_error(await join(world.judge_token), 403, "access_denied")
    assert early["opens_at"] == "2026-11-23T09:30:00+00:00"
    clock.advance(timedelta(hours=8, minutes=29, seconds=59))  # 09:29:59
    assert_error(await join(world.judge_token), 403, "access_denied")
    clock.advance(timedelta(seconds=1))  # 09:30, half an hour before the start
    granted = await join(world.judge_token)
    assert granted.status == 200, granted.text
    assert granted.json["participant"]["id"] == world.judge_id
    assert granted.json["participant"]["role"] == "judge"
    assert granted.json["hearing"]["id"] == world.hearing_id
    assert "token" not in granted.json["participant"]

    assert_error(await join("not-a-token"), 403, "access_denied")
    assert_error(await join(world.judge_token + "x"), 403, "access_denied")

    # Revocation ends every link of that participant, and only theirs.
    base = f"{API}/hearings/{world.hearing_id}/participants"
    revoked = await call(client, "DELETE", f"{base}/{world.judge_id}/token", headers=admin)
    assert revoked.status == 204
    assert_error(await join(world.judge_token), 403, "access_denied")
    assert (await join(world.defendant_token)).status == 200

    reissued = await call(client, "POST", f"{base}/{world.judge_id}/token", headers=admin)
    assert reissued.status == 201, reissued.text
    fresh = reissued.json
    assert fresh["participant_id"] == world.judge_id
    assert fresh["token"] != world.judge_token
    assert fresh["join_url"] == f"{settings.public_url}/join/{fresh['token']}"
    assert fresh["valid_from"] == "2026-11-23T09:30:00Z"
    assert (await join(fresh["token"])).status == 200
    assert_error(await join(world.judge_token), 403, "access_denied")
    # Reissuing again retires the previous fresh token.
    again = await call(client, "POST", f"{base}/{world.judge_id}/token", headers=admin)
    assert_error(await join(fresh["token"]), 403, "access_denied")
    assert (await join(again.json["token"])).status == 200
    missing = await call(client, "POST", f"{base}/{uuid.uuid4()}/token", headers=admin)
    assert_error(missing, 404, "not_found")

    for action in ("open", "start"):
        await post(client, admin, f"/hearings/{world.hearing_id}/{action}", None, status=200)
    assert (await join(world.defendant_token)).status == 200
    await post(client, admin, f"/hearings/{world.hearing_id}/close", None, status=200)
    closed = assert_error(await join(world.defendant_token), 403, "hearing_finished")
    assert "closed" in closed["message"]
    after_close = await call(client, "POST", f"{base}/{world.judge_id}/token", headers=admin)
    assert_error(after_close, 409, "not_editable")


async def test_cancelled_hearing_links_are_refused(client: TestClient, admin: dict[str, str],
                                                   clock: FakeClock, world: World) -> None:
    clock.advance(timedelta(hours=9))
    assert (await call(client, "GET", f"{API}/join/{world.judge_token}")).status == 200
    await post(client, admin, f"/hearings/{world.hearing_id}/cancel", None, status=200)
    error = assert_error(await call(client, "GET", f"{API}/join/{world.judge_token}"), 403)
    assert "cancelled" in error["message"]


# -- state transitions -----------------------------------------------------------------------

ACTIONS = ("open", "start", "recess", "resume", "close", "cancel")
# The actions allowed from each state, and where they lead.
ALLOWED = {
    "scheduled": {"open": "open", "cancel": "cancelled"},
    "open": {"start": "in_session", "cancel": "cancelled"},
    "in_session": {"recess": "recess", "close": "closed"},
    "recess": {"resume": "in_session", "close": "closed"},
    "closed": {},
    "cancelled": {},
}
# How to reach each state from scheduled.
ROUTE = {
    "scheduled": [], "open": ["open"], "in_session": ["open", "start"],
    "recess": ["open", "start", "recess"], "closed": ["open", "start", "close"],
    "cancelled": ["cancel"],
}


async def test_state_transitions(client: TestClient, admin: dict[str, str], clock: FakeClock,
                                 db_state: DatabaseState) -> None:
    day = 0
    for state, allowed in ALLOWED.items():
        for action in ACTIONS:
            day += 1
            hearing = await post(client, admin, "/hearings",
                                 hearing_body(START + timedelta(days=day)))
            path = f"{API}/hearings/{hearing['id']}"
            for step in ROUTE[state]:
                assert (await call(client, "POST", f"{path}/{step}", headers=admin)).status == 200
            before = await db_state.snapshot()
            reply = await call(client, "POST", f"{path}/{action}", headers=admin)
            if action in allowed:
                assert reply.status == 200, (state, action, reply.text)
                assert reply.json["state"] == allowed[action], (state, action)
                assert reply.json["id"] == hearing["id"]
                assert "participants" in reply.json
            else:
                error = assert_error(reply, 409, "invalid_transition")
                assert error["current_state"] == state, (action, error)
                assert action in error["message"] and state in error["message"]
                await db_state.assert_unchanged(before, f"{action} from {state}")
            assert (await get(client, admin, f"/hearings/{hearing['id']}"))["state"] == (
                allowed.get(action, state)
            )
    assert_error(await call(client, "POST", f"{API}/hearings/{uuid.uuid4()}/open",
                            headers=admin), 404, "not_found")


async def test_transitions_stamp_times_and_freeze_the_record(
    client: TestClient, admin: dict[str, str], clock: FakeClock, world: World
) -> None:
    path = f"/hearings/{world.hearing_id}"
    clock.advance(timedelta(hours=9))
    opened = await post(client, admin, f"{path}/open", None, status=200)
    assert opened["started_at"] is None
    clock.advance(timedelta(hours=1))
    started = await post(client, admin, f"{path}/start", None, status=200)
    assert started["started_at"] == iso(clock.now)
    clock.advance(timedelta(minutes=10))
    await post(client, admin, f"{path}/recess", None, status=200)
    clock.advance(timedelta(minutes=10))
    resumed = await post(client, admin, f"{path}/resume", None, status=200)
    assert resumed["started_at"] == started["started_at"]  # the first start is kept
    # A hearing in session can no longer be moved or lose participants.
    moved = await call(client, "PATCH", API + path, headers=admin, json={"title": "改"})
    assert assert_error(moved, 409, "not_editable")["current_state"] == "in_session"
    removed = await call(client, "DELETE", f"{API}{path}/participants/{world.judge_id}",
                         headers=admin)
    assert_error(removed, 409, "not_editable")
    clock.advance(timedelta(minutes=30))
    closed = await post(client, admin, f"{path}/close", None, status=200)
    assert closed["closed_at"] == iso(clock.now) and closed["state"] == "closed"
    late = await call(client, "POST", f"{API}{path}/participants", headers=admin,
                      json={"name": "迟到者", "role": "observer", "location": "remote"})
    assert_error(late, 409, "not_editable")


# -- prison terminal assignment --------------------------------------------------------------


async def test_terminal_assignment(client: TestClient, admin: dict[str, str], clock: FakeClock,
                                   world: World, settings: Settings) -> None:
    url = API + "/terminal/assignment"
    missing = await call(client, "GET", url)
    assert_error(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"].startswith("Device")
    for header in (f"Bearer {world.device_key}", "Device", "Device   ", world.device_key):
        assert_error(await call(client, "GET", url, headers={"Authorization": header}), 401)
    assert_error(await call(client, "GET", url, headers={"Authorization": "Device nope"}),
                 403, "access_denied")
    assert_error(await call(client, "GET", url,
                            headers={"Authorization": f"Device {world.device_key}x"}), 403)
    # The admin token is not a device key.
    assert_error(await call(client, "GET", url,
                            headers={"Authorization": f"Device {ADMIN_TOKEN}"}), 403)

    device = {"Authorization": f"Device {world.device_key}"}
    before = await call(client, "GET", url, headers=device)
    assert before.status == 200, before.text
    assert before.json["terminal"]["id"] == world.terminal_id
    assert "device_key" not in before.json["terminal"]
    assert before.json["hearing"]["id"] == world.hearing_id
    assert before.json["participant"]["id"] == world.defendant_id
    assert before.json["opens_at"] == "2026-11-23T09:30:00Z"
    assert before.json["token"] is None and before.json["join_url"] is None

    clock.advance(timedelta(hours=8, minutes=30))
    inside = await call(client, "GET", url, headers=device)
    assert inside.status == 200
    token = inside.json["token"]
    assert token and inside.json["join_url"] == f"{settings.public_url}/join/{token}"
    grant = await call(client, "GET", f"{API}/join/{token}")
    assert grant.status == 200 and grant.json["participant"]["id"] == world.defendant_id

    # Once the hearing is over the terminal has nothing to join.
    for action in ("open", "start", "close"):
        await post(client, admin, f"/hearings/{world.hearing_id}/{action}", None, status=200)
    after = await call(client, "GET", url, headers=device)
    assert after.status == 200
    assert after.json["hearing"] is None and after.json["token"] is None
    assert_error(await call(client, "GET", f"{API}/join/{token}"), 403)


# -- audit -----------------------------------------------------------------------------------


async def test_audit_trail_and_verification(client: TestClient, admin: dict[str, str],
                                            world: World, db_state: DatabaseState,
                                            settings: Settings) -> None:
    page = await get(client, admin, "/audit", params={"limit": 200})
    events = page["items"]
    assert page["total"] == len(events)
    assert [e["action"] for e in events] == [
        "court.created", "courtroom.created", "terminal.created", "hearing.created",
        "participant.added", "token.issued", "participant.added", "token.issued",
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    assert {e["actor"] for e in events} == {"admin"}
    assert events[0]["data"]["name"] == "北京市朝阳区人民法院"

    mine = await get(client, admin, "/audit", params={"hearing_id": world.hearing_id})
    assert [e["action"] for e in mine["items"]] == [
        "hearing.created", "participant.added", "token.issued", "participant.added",
        "token.issued",
    ]
    assert all(e["hearing_id"] == world.hearing_id for e in mine["items"])
    paged = await get(client, admin, "/audit", params={"limit": 2, "offset": 2})
    assert [e["seq"] for e in paged["items"]] == [3, 4] and paged["total"] == len(events)

    before = await db_state.snapshot()
    verified = await get(client, admin, "/audit/verify")
    assert verified == {"ok": True, "events": len(events), "broken_seq": None, "reason": None}
    await db_state.assert_unchanged(before, "verifying")

    # A change made behind the registry's back is found.
    async with db_state.db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    broken = await get(client, admin, "/audit/verify")
    assert broken["ok"] is False and broken["broken_seq"] == 3 and broken["events"] == 2
    assert "altered" in broken["reason"]


# -- authentication and error shapes ---------------------------------------------------------

ADMIN_ENDPOINTS = [e for e in api.endpoints if e.auth == "admin"]
BAD_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer wrong-token-0123456789abcdef"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": f"Device {ADMIN_TOKEN}"},
    {"Authorization": ADMIN_TOKEN},
]


def test_the_api_table_is_what_the_auth_test_walks() -> None:
    routes = {(e.method, e.path[len(API):]) for e in ADMIN_ENDPOINTS}
    assert {("POST", "/courts"), ("DELETE", "/courts/{id}"), ("POST", "/hearings"),
            ("POST", "/hearings/{id}/close"), ("GET", "/audit"), ("GET", "/audit/verify"),
            ("DELETE", "/hearings/{id}/participants/{participant_id}/token")} <= routes
    assert len(ADMIN_ENDPOINTS) >= 30
    public = {(e.method, e.path[len(API):]) for e in api.endpoints
              if e.auth in ("none", "device")}
    assert public <= {("GET", "/join/{token}"), ("GET", "/terminal/assignment"),
                      ("GET", "/openapi.json"), ("GET", "/vocabulary"), ("POST", "/session"),
                      ("GET", "/session"), ("DELETE", "/session"),
                      ("DELETE", "/session/everywhere")}
    # Reviewing takes the admin token or a permitted participant's token (tests/web/
    # test_review.py); nothing else is open to anyone but the admin.
    review = {(e.method, e.path[len(API):]) for e in api.endpoints if e.auth == "review"}
    assert review == {("GET", "/hearings/{id}/recordings"), ("GET", "/hearings/{id}/composite"),
                      ("GET", "/hearings/{id}/recordings/{recording_id}/media"),
                      ("GET", "/hearings/{id}/transcript"),
                      ("GET", "/hearings/{id}/attendance"),
                      ("GET", "/hearings/{id}/transcript/{segment_id}/revisions"),
                      ("PATCH", "/hearings/{id}/transcript/{segment_id}"),
                      ("GET", "/hearings/{id}/transcript/export/{format}"),
                      ("GET", "/hearings/{id}/identity-checks"),
                      ("POST", "/hearings/{id}/transcript/edits"),
                      ("GET", "/hearings/{id}/transcript/versions"),
                      ("GET", "/hearings/{id}/identity-checks/{seq}/still")}


async def test_every_admin_endpoint_refuses_missing_or_wrong_credentials(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState
) -> None:
    before = await db_state.snapshot()
    for endpoint in ADMIN_ENDPOINTS:
        random_ids = re.sub(r"{\w+}", lambda _m: str(uuid.uuid4()), endpoint.path)
        for path, body_world in ((random_ids, None), (world.path(endpoint.path), world)):
            body = valid_body(endpoint, body_world) if endpoint.body else None
            for headers in BAD_CREDENTIALS:
                reply = await call(client, endpoint.method, path, json=body, headers=headers)
                what = f"{endpoint.method} {path} with {headers}"
                assert reply.status == 401, what
                error = assert_error(reply, 401, "unauthorized")
                assert reply.headers["WWW-Authenticate"].startswith("Bearer"), what
                assert "token" in error["message"], what
    await db_state.assert_unchanged(before, "requests without valid credentials")
    # The right token does open them.
    assert (await call(client, "GET", API + "/audit/verify", headers=admin)).status == 200


async def test_non_uuid_ids_are_not_found(client: TestClient, admin: dict[str, str],
                                          world: World, db_state: DatabaseState) -> None:
    before = await db_state.snapshot()
    checked = 0
    for endpoint in ADMIN_ENDPOINTS:
        names = re.findall(r"{(\w+)}", endpoint.path)
        for name in names:
            for bad in ("not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g"):
                path = world.path(endpoint.path.replace("{" + name + "}", bad))
                body = valid_body(endpoint, world) if endpoint.body else None
                reply = await call(client, endpoint.method, path, json=body, headers=admin)
                error = assert_error(reply, 404, "not_found", name)
                assert bad in error["message"]
                checked += 1
    assert checked >= 3 * 20
    await db_state.assert_unchanged(before, "non-UUID ids")


async def test_body_limits_and_content_types(client: TestClient, admin: dict[str, str],
                                             db_state: DatabaseState) -> None:
    before = await db_state.snapshot()
    json_type = {**admin, "Content-Type": "application/json"}
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    assert_error(await call(client, "POST", API + "/courts", data=big, headers=json_type),
                 413, "body_too_large")

    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 65536  # 1.25 MiB of JSON whitespace, without a Content-Length
        yield b'{"name": "x"}'

    chunked = await call(client, "POST", API + "/courts", data=chunks(), headers=json_type)
    assert_error(chunked, 413, "body_too_large")

    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/octet-stream"):
        reply = await call(client, "POST", API + "/courts", data=b'{"name": "x"}',
                           headers={**admin, "Content-Type": content_type})
        assert_error(reply, 415, "unsupported_media_type")
    form = await call(client, "POST", API + "/courts", data={"name": "x"}, headers=admin)
    assert_error(form, 415, "unsupported_media_type")

    for raw in (b"", b"{", b'{"name": "x"', b'{"name": "x"} trailing', b"\xff\xfe",
                b"{'name': 'x'}", b'{"name": "x",}'):
        reply = await call(client, "POST", API + "/courts", data=raw, headers=json_type)
        assert_error(reply, 400, "malformed_json")
    await db_state.assert_unchanged(before, "refused bodies")
    # Just under the limit is read (and refused only for the name's length).
    near = b'{"name": "' + b"x" * (1024 * 1024 - 20) + b'"}'
    assert_error(await call(client, "POST", API + "/courts", data=near, headers=json_type),
                 422, "invalid", "name")


async def test_unknown_routes_and_methods_answer_json(client: TestClient,
                                                      admin: dict[str, str]) -> None:
    for path in ("/api/v1/nothing", "/api/v2/courts", f"/api/v1/courts/{uuid.uuid4()}/rooms",
                 "/api/"):
        for headers in (admin, {}):
            assert_error(await call(client, "GET", path, headers=headers), 404, "not_found")
    for method, path, allow in (("PUT", "/courts", {"GET", "POST"}),
                                ("DELETE", "/audit", {"GET"}),
                                ("GET", f"/hearings/{uuid.uuid4()}/open", {"POST"})):
        reply = await call(client, method, API + path, headers=admin)
        assert_error(reply, 405, "method_not_allowed")
        assert set(reply.headers["Allow"].split(",")) == allow
    # Outside the API a missing page is not dressed as JSON.
    page = await call(client, "GET", "/nothing")
    assert page.status == 404 and page.json is None


# -- the judge's seal of the trial record ----------------------------------------------------


async def test_the_judge_seals_the_closed_record_and_it_takes_no_more_corrections(
    client: TestClient, admin: dict[str, str], clock: FakeClock, world: World,
    db_state: DatabaseState,
) -> None:
    hid = world.hearing_id
    seal_path = f"{API}/hearings/{hid}/transcript/seal"
    line_path = f"{API}/hearings/{hid}/transcript/{world.segment_id}"
    clerk = await invite(client, admin, hid, "刘书记员", "clerk", "courtroom")
    judge = {"Authorization": f"Bearer {world.judge_token}"}
    transcript = await call(client, "GET", f"{API}/hearings/{hid}/transcript", headers=judge)
    assert transcript.status == 200 and transcript.json["sealed"] is None

    # Only a closed hearing's record is sealed.
    early = await call(client, "POST", seal_path, headers=judge)
    assert assert_error(early, 409, "not_editable")["current_state"] == "scheduled"
    clock.advance(timedelta(hours=9))
    for action in ("open", "start", "close"):
        await post(client, admin, f"/hearings/{hid}/{action}", None, status=200)
    # The clerk corrects the record after the hearing, as the court does.
    clock.advance(timedelta(minutes=30))
    corrected = await call(client, "PATCH", line_path, headers=admin,
                           json={"text": "现在开庭，请坐。"})
    assert corrected.status == 200 and corrected.json["revision"] == 2
    assert (corrected.json["corrections"], corrected.json["settled"]) == (1, False)

    other = await post(client, admin, "/hearings", hearing_body(START + timedelta(days=1)))
    other_judge = await invite(client, admin, other["id"], "李审判员", "judge", "courtroom")
    before = await db_state.snapshot()
    for token, status in ((clerk["token"], 403), (world.defendant_token, 403),
                          ("not-a-token", 403), (None, 401)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        error = assert_error(await call(client, "POST", seal_path, headers=headers), status)
        if token == clerk["token"]:
            assert "judge" in error["message"] and "clerk" in error["message"], error
    stranger = await call(client, "POST", seal_path,
                          headers={"Authorization": f"Bearer {other_judge['token']}"})
    assert "another hearing" in assert_error(stranger, 403, "access_denied")["message"]
    await db_state.assert_unchanged(before, "seals refused")

    clock.advance(timedelta(minutes=5))
    sealed = await call(client, "POST", seal_path, headers=judge)
    assert sealed.status == 200, sealed.text
    assert sealed.json["by"] == f"participant:{world.judge_id}"
    assert sealed.json["at"] == iso(clock.now)
    events = (await get(client, admin, "/audit", params={"hearing_id": hid,
                                                          "limit": 200}))["items"]
    at_close = [e for e in events if e["action"] == "transcript.sealed"]
    by_judge = [e for e in events if e["action"] == "transcript.sealed_by_judge"]
    assert len(at_close) == 1 and len(by_judge) == 1
    assert by_judge[0]["data"]["record_sha256"] == sealed.json["sha256"]
    # The judge's seal covers the correction made after the automatic seal at close.
    assert at_close[0]["data"]["record_sha256"] != sealed.json["sha256"]
    assert by_judge[0]["actor"] == f"participant:{world.judge_id}"
    shown = await call(client, "GET", f"{API}/hearings/{hid}/transcript", headers=admin)
    assert shown.json["sealed"] == sealed.json
    assert shown.json["items"][0]["text"] == "现在开庭，请坐。"

    before = await db_state.snapshot()
    refused = await call(client, "PATCH", line_path, headers=admin, json={"text": "改过的话"})
    assert_error(refused, 409, "record_sealed")
    same = await call(client, "PATCH", line_path, headers=admin,
                      json={"text": "现在开庭，请坐。"})
    assert_error(same, 409, "record_sealed")
    assert_error(await call(client, "POST", seal_path, headers=judge), 409, "record_sealed")
    assert_error(await call(client, "POST", seal_path, headers=admin), 409, "record_sealed")
    await db_state.assert_unchanged(before, "changes to a sealed record")
    line = SpokenLine(uuid.UUID(world.judge_id), 9.0, 10.0, "补录", "zh")
    with pytest.raises(RecordSealed):
        await client.server.app[HUB].transcripts.add(uuid.UUID(hid), line, version=2)
    assert (await get(client, admin, "/audit/verify"))["ok"] is True

    # The court's staff may seal too, and are named as such.
    for action in ("open", "start", "close"):
        await post(client, admin, f"/hearings/{other['id']}/{action}", None, status=200)
    by_admin = await call(client, "POST", f"{API}/hearings/{other['id']}/transcript/seal",
                          headers=admin)
    assert by_admin.status == 200 and by_admin.json["by"] == "admin"
    assert_error(await call(client, "POST", f"{API}/hearings/{uuid.uuid4()}/transcript/seal",
                            headers=admin), 404, "not_found")


async def test_a_composite_render_can_be_cancelled(client: TestClient, admin: dict[str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import signaling.review as review
    from media.errors import CompositeCancelled
    from tests.web.support import add_recording, make_world

    cancelled = threading.Event()

    def held(*_args: Any, cancel: threading.Event, **_kwargs: Any) -> Any:
        cancel.wait(30)  # a long render, until cancelled
        cancelled.set()
        raise CompositeCancelled("cancelled")

    monkeypatch.setattr(review, "render_composite", held)
    world = await make_world(client, admin)
    await add_recording(client, world.hearing_id, world.judge_id, b"webm")
    url = f"/api/v1/hearings/{world.hearing_id}/composite"
    r = await client.post(url, headers=admin)
    assert r.status == 202 and (await r.json())["state"] == "rendering"
    r = await client.delete(url, headers=admin)
    assert r.status == 200, await r.text()
    jobs = client.server.app[HUB].composites
    await jobs.settled()
    assert cancelled.is_set()
    assert (await (await client.get(url, headers=admin)).json())["state"] == "idle"
    r = await client.delete(f"/api/v1/hearings/{uuid.uuid4()}/composite", headers=admin)
    assert r.status == 404


async def test_reading_the_record_is_audited_once_per_viewing(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    base = f"{API}/hearings/{world.hearing_id}/transcript"
    for _ in range(3):  # a page polling the record is one viewing
        assert (await call(client, "GET", base, headers=admin)).status == 200
    for fmt in ("txt", "txt", "docx"):
        assert (await client.get(f"{base}/export/{fmt}", headers=admin)).status == 200
    events = (await call(client, "GET", f"{API}/audit", headers=admin,
                         params={"hearing_id": world.hearing_id})).json["items"]
    assert [e["action"] for e in events if e["action"] == "transcript.viewed"] == [
        "transcript.viewed"]
    assert sorted(e["data"]["format"] for e in events
                  if e["action"] == "transcript.exported") == ["docx", "txt"]

"""Integrations' API tokens over the real app (issue 19 part 5): created by administrators,
shown once, kept as a hash, scoped on the real routes, revoked at their next request, their use
noted and audited under their name; and the admin token off once an administrator exists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from config import Settings
from courtrooms.models import StaffRole
from courtrooms.schemas import AuditQuery, StaffAccountIn
from courtrooms.secrets import digest
from tests.conftest import ADMIN_TOKEN, FakeClock
from tests.web.support import API, DatabaseState, World, assert_error, call, hearing_body, iso
from web.app import create_app
from web.keys import REGISTRY, STAFF_ACCOUNTS

PASSWORD = "管理员的密码 0123"


async def make_token(client: TestClient, admin: dict[str, str], name: str = "案件管理系统",
                     scopes: tuple[str, ...] = ("schedule",), **extra: Any) -> dict[str, Any]:
    reply = await call(client, "POST", f"{API}/tokens", headers=admin,
                       json={"name": name, "scopes": list(scopes), **extra})
    assert reply.status == 201, reply.text
    return dict(reply.json)


def bearer(made: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {made['secret']}"}


async def test_the_secret_is_shown_once_and_kept_only_as_its_hash(
    client: TestClient, admin: dict[str, str], db_state: DatabaseState
) -> None:
    made = await make_token(client, admin, scopes=("read_records", "schedule"))
    secret = made["secret"]
    assert secret.startswith("tsk_") and len(secret) > 40
    assert made["name"] == "案件管理系统" and made["scopes"] == ["schedule", "read_records"]
    assert made["created_by"] == "admin" and made["last_used_at"] is None
    assert made["revoked"] is False and made["court_id"] is None
    listed = await call(client, "GET", f"{API}/tokens", headers=admin)
    assert listed.status == 200
    [item] = listed.json["items"]
    assert "secret" not in item and secret not in listed.text
    assert item["id"] == made["id"]
    # At rest: its SHA-256, never the secret.
    tables = (await db_state.snapshot()).tables
    assert not [t for t, rows in tables.items() if any(secret in row for row in rows)]
    assert any(digest(secret) in row for row in tables["api_tokens"])
    [created] = [e for e in (await client.server.app[REGISTRY].audit_events(
        AuditQuery(limit=200)))[0] if e.action == "api_token.created"]
    assert created.actor == "admin" and created.data["name"] == "案件管理系统"
    assert secret not in str(created.data)


async def test_each_scope_opens_its_routes_and_no_others(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    schedule = bearer(await make_token(client, admin, "排期系统", ("schedule",)))
    read = bearer(await make_token(client, admin, "查阅系统", ("read_records",)))
    places = bearer(await make_token(client, admin, "场所系统", ("manage_places",)))
    hearing = f"{API}/hearings/{world.hearing_id}"

    # schedule: hearings, participants, their invitations; reading places to name a room.
    made = await call(client, "POST", f"{API}/hearings", headers=schedule, json=hearing_body())
    assert made.status == 201, made.text
    invited = await call(client, "POST", f"{hearing}/participants", headers=schedule,
                         json={"name": "李律师", "role": "lawyer", "location": "remote"})
    assert invited.status == 201 and invited.json["token"], invited.text
    assert (await call(client, "GET", f"{API}/courtrooms", headers=schedule)).status == 200
    error = assert_error(await call(client, "GET", hearing, headers=schedule), 403,
                         "not_permitted")
    assert "read_records" in error["message"] and error["needs"] == ["read_records"]
    error = assert_error(await call(client, "POST", f"{API}/courts", headers=schedule,
                                    json={"name": "某法院"}), 403, "not_permitted")
    assert "manage_places" in error["message"]

    # read_records: hearings, their record and recordings; nothing changed.
    assert (await call(client, "GET", hearing, headers=read)).status == 200
    assert (await call(client, "GET", f"{API}/hearings", headers=read)).status == 200
    assert (await call(client, "GET", f"{hearing}/transcript", headers=read)).status == 200
    assert (await call(client, "GET", f"{hearing}/recordings", headers=read)).status == 200
    error = assert_error(await call(client, "POST", f"{API}/hearings", headers=read,
                                    json=hearing_body()), 403, "not_permitted")
    assert "schedule" in error["message"] and error["needs"] == ["schedule"]

    # manage_places: courts, courtrooms, prison terminals; no hearing.
    court = await call(client, "POST", f"{API}/courts", headers=places, json={"name": "新法院"})
    assert court.status == 201, court.text
    assert (await call(client, "PATCH", f"{API}/courtrooms/{world.courtroom_id}",
                       headers=places, json={"name": "第九法庭"})).status == 200
    assert_error(await call(client, "GET", f"{API}/hearings", headers=places), 403,
                 "not_permitted")

    # No scope runs or seals a hearing, keeps its record, reads the audit or makes tokens.
    every = bearer(await make_token(client, admin, "全部", ("schedule", "read_records",
                                                           "manage_places")))
    for method, path, body in (("POST", f"{hearing}/open", None),
                               ("POST", f"{hearing}/transcript/seal", None),
                               ("POST", f"{hearing}/watch", {"name": "某系统"}),
                               ("GET", f"{API}/audit", None),
                               ("POST", f"{API}/tokens", {"name": "再一个",
                                                          "scopes": ["schedule"]})):
        error = assert_error(await call(client, method, path, headers=every, json=body), 403,
                             "not_permitted")
        assert "no API token may" in error["message"], (path, error)


async def test_a_token_of_one_court_schedules_and_reads_only_its_hearings(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    other = await call(client, "POST", f"{API}/courts", headers=admin, json={"name": "外院"})
    room = await call(client, "POST", f"{API}/courtrooms", headers=admin,
                      json={"court_id": other.json["id"], "name": "外院第一法庭"})
    own = bearer(await make_token(client, admin, "本院系统", ("schedule", "read_records"),
                                  court_id=world.court_id))
    assert (await call(client, "GET", f"{API}/hearings/{world.hearing_id}",
                       headers=own)).status == 200
    error = assert_error(await call(client, "POST", f"{API}/hearings", headers=own,
                                    json=hearing_body(courtroom_id=room.json["id"])), 403,
                         "not_permitted")
    assert "court" in error["message"]
    mine = await call(client, "POST", f"{API}/hearings", headers=own,
                      json=hearing_body(court_id=world.court_id))
    assert mine.status == 201, mine.text
    listed = await call(client, "GET", f"{API}/hearings", headers=own)
    assert {h["court_id"] for h in listed.json["items"]} == {world.court_id}
    assert_error(await call(client, "POST", f"{API}/tokens", headers=admin,
                            json={"name": "x", "scopes": ["schedule"],
                                  "court_id": "00000000-0000-4000-8000-000000000000"}),
                 422, "invalid", "court_id")


async def test_a_revoked_token_is_refused_at_its_next_request_and_its_links_close(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    made = await make_token(client, admin, "查阅系统", ("read_records",))
    hearing = f"{API}/hearings/{world.hearing_id}"
    link = await call(client, "POST", f"{hearing}/links", headers=bearer(made),
                      json={"path": f"{hearing}/transcript"})
    assert link.status == 201, link.text
    assert (await call(client, "GET", link.json["url"])).status == 200
    revoked = await call(client, "POST", f"{API}/tokens/{made['id']}/revoke", headers=admin)
    assert revoked.status == 200 and revoked.json["revoked"] is True
    assert revoked.json["revoked_at"] is not None and "secret" not in revoked.json
    assert_error(await call(client, "GET", hearing, headers=bearer(made)), 401, "unauthorized")
    assert_error(await call(client, "GET", link.json["url"]), 401, "token_revoked")
    # Revoked twice, or a token that never was: a clear error.
    assert_error(await call(client, "POST", f"{API}/tokens/{made['id']}/revoke", headers=admin),
                 409, "not_editable")
    error = assert_error(await call(
        client, "POST", f"{API}/tokens/00000000-0000-4000-8000-000000000000/revoke",
        headers=admin), 404, "not_found")
    assert "API token" in error["message"]
    # Its name is free again.
    await make_token(client, admin, "查阅系统", ("read_records",))
    events, _ = await client.server.app[REGISTRY].audit_events(AuditQuery(limit=200))
    [event] = [e for e in events if e.action == "api_token.revoked"]
    assert event.actor == "admin" and event.data["name"] == "查阅系统"


async def test_last_use_is_noted_at_most_once_a_minute(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    made = await make_token(client, admin, "查阅系统", ("read_records",))

    async def last_used() -> str | None:
        [item] = (await call(client, "GET", f"{API}/tokens", headers=admin)).json["items"]
        return item["last_used_at"]  # type: ignore[no-any-return]

    first = clock.now
    assert (await call(client, "GET", f"{API}/hearings", headers=bearer(made))).status == 200
    assert await last_used() == iso(first)
    clock.advance(timedelta(seconds=30))  # within the minute: not written again
    assert (await call(client, "GET", f"{API}/hearings", headers=bearer(made))).status == 200
    assert await last_used() == iso(first)
    clock.advance(timedelta(seconds=31))
    assert (await call(client, "GET", f"{API}/hearings", headers=bearer(made))).status == 200
    assert await last_used() == iso(clock.now)


async def test_what_a_token_does_is_audited_under_its_name(
    client: TestClient, admin: dict[str, str]
) -> None:
    made = await make_token(client, admin, "案件管理系统", ("schedule",))
    hearing = await call(client, "POST", f"{API}/hearings", headers=bearer(made),
                         json=hearing_body())
    assert hearing.status == 201, hearing.text
    audit = await call(client, "GET", f"{API}/audit", headers=admin,
                       params={"hearing_id": hearing.json["id"]})
    [created] = [e for e in audit.json["items"] if e["action"] == "hearing.created"]
    assert created["actor"] == f"token:{made['id']}"
    assert created["actor_name"] == "案件管理系统"


async def test_bad_input_is_refused_naming_the_problem(
    client: TestClient, admin: dict[str, str]
) -> None:
    for body, field in (({"name": "x", "scopes": ["seal"]}, "scopes"),
                        ({"name": "x", "scopes": []}, "scopes"),
                        ({"name": "x", "scopes": ["schedule", "schedule"]}, "scopes"),
                        ({"name": "", "scopes": ["schedule"]}, "name"),
                        ({"name": "   ", "scopes": ["schedule"]}, "name"),
                        ({"name": "长" * 101, "scopes": ["schedule"]}, "name"),
                        ({"name": "a\nb", "scopes": ["schedule"]}, "name"),
                        ({"scopes": ["schedule"]}, "name")):
        reply = await call(client, "POST", f"{API}/tokens", headers=admin, json=body)
        error = assert_error(reply, 422)
        assert field in (error.get("field") or ""), (body, error)
    await make_token(client, admin, "案件管理系统")
    error = assert_error(await call(client, "POST", f"{API}/tokens", headers=admin,
                                    json={"name": "案件管理系统", "scopes": ["schedule"]}),
                         422, "invalid", "name")
    assert "exists already" in error["message"]
    assert_error(await call(client, "POST", f"{API}/tokens/not-an-id/revoke", headers=admin),
                 404, "not_found")
    listed = await call(client, "GET", f"{API}/tokens", headers=admin)
    assert [t["name"] for t in listed.json["items"]] == ["案件管理系统"]


async def test_administrators_manage_tokens_and_nobody_else_does(
    client: TestClient
) -> None:
    accounts = client.server.app[STAFF_ACCOUNTS]
    for login, role in (("admin.li", StaffRole.ADMINISTRATOR), ("clerk.wang", StaffRole.CLERK)):
        await accounts.add(StaffAccountIn(name=login, login=login, roles=[role]), PASSWORD,
                           "system:test")
    signed = await call(client, "POST", f"{API}/session",
                        json={"login": "admin.li", "password": PASSWORD})
    csrf = {"X-CSRF-Token": signed.json["csrf_token"]}
    made = await call(client, "POST", f"{API}/tokens", headers=csrf,
                      json={"name": "案件管理系统", "scopes": ["schedule"]})
    assert made.status == 201, made.text
    assert made.json["created_by"] == signed.json["actor"]
    assert made.json["created_by_name"] == "admin.li"
    client.session.cookie_jar.clear()
    signed = await call(client, "POST", f"{API}/session",
                        json={"login": "clerk.wang", "password": PASSWORD})
    error = assert_error(await call(client, "GET", f"{API}/tokens"), 403, "not_permitted")
    assert "administrator" in error["message"]


async def test_the_admin_token_is_off_once_an_administrator_exists_unless_kept(
    aiohttp_client: Any, settings: Settings, clock: FakeClock
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    default = await aiohttp_client(create_app(
        settings.model_copy(update={"keep_admin_token": False}), clock=clock))
    # The bootstrap credential: it sets the server up while no administrator exists.
    assert (await call(default, "GET", f"{API}/courts", headers=admin)).status == 200
    made = await make_token(default, admin, "案件管理系统", ("read_records",))
    accounts = default.server.app[STAFF_ACCOUNTS]
    await accounts.add(StaffAccountIn(name="管理员", login="admin", roles=[
        StaffRole.ADMINISTRATOR]), PASSWORD, "system:setup")
    error = assert_error(await call(default, "GET", f"{API}/courts", headers=admin), 401,
                         "admin_token_off")
    assert "keep_admin_token" in error["message"] and "API token" in error["message"]
    # API tokens go on.
    assert (await call(default, "GET", f"{API}/courts", headers=bearer(made))).status == 200
    # Disabled, the last administrator leaves the admin token to recover the server.
    await accounts.disable("admin", "system:test")
    assert (await call(default, "GET", f"{API}/courts", headers=admin)).status == 200

    kept = await aiohttp_client(create_app(settings, clock=clock))  # keep_admin_token=True
    await kept.server.app[STAFF_ACCOUNTS].add(StaffAccountIn(
        name="管理员二", login="admin2", roles=[StaffRole.ADMINISTRATOR]), PASSWORD, "test")
    assert (await call(kept, "GET", f"{API}/courts", headers=admin)).status == 200

"""The endpoint table refuses callers before any handler runs, for every route it holds.

The routes are read from the table itself: a route added tomorrow is walked too, and the only
way to open one to anyone is to declare it `auth="none"`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import load_settings
from courtrooms.access import Permission, roles_for
from courtrooms.models import Role, StaffAccount, StaffRole
from courtrooms.schemas import StaffAccountIn
from tests.conftest import ADMIN_TOKEN
from tests.exhibit_files import png
from tests.web.support import (
    API,
    HEARING_START,
    DatabaseState,
    Reply,
    World,
    assert_error,
    call,
    hearing_body,
    valid_body,
)
from web.api import api
from web.endpoints import (
    ANYONE,
    CALLER,
    STAFF,
    STAFF_COOKIE,
    Auth,
    Caller,
    Endpoint,
    EndpointTable,
)
from web.errors import json_errors
from web.keys import ADMIN_TOKEN as ADMIN_TOKEN_KEY
from web.keys import SETTINGS, STAFF_ACCOUNTS

GUARDED = [e for e in api.endpoints if e.auth != "none"]
HEARING_ROUTES = [e for e in api.endpoints if e.auth in ("review", "participant")]


def label(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path[len(API):]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def send(client: TestClient, endpoint: Endpoint, path: str, headers: dict[str, str],
               world: World) -> Reply:
    """The endpoint called with a body it would accept, so only the credential is wrong."""
    headers = dict(headers)
    if endpoint.raw_body:
        headers["Content-Type"] = endpoint.raw_body[0]
        return await call(client, endpoint.method, path, headers=headers, data=png(),
                          params={"title": "证据"})
    json_body = valid_body(endpoint, world) if endpoint.body else None
    return await call(client, endpoint.method, path, headers=headers, json=json_body)


def test_every_route_declares_who_may_call_it() -> None:
    assert len(api.endpoints) >= 50
    open_routes = {label(e) for e in api.endpoints if e.auth == "none"}
    assert "GET /openapi.json" in open_routes
    assert open_routes <= {"GET /openapi.json", "GET /vocabulary", "GET /join/{token}",
                           "POST /session", "GET /session", "DELETE /session",
                           "DELETE /session/everywhere"}
    # Every route that takes a participant's token names the hearing it is checked against.
    assert HEARING_ROUTES and all("{id}" in e.path for e in HEARING_ROUTES)
    assert {label(e) for e in api.endpoints if e.roles} == {
        "PATCH /hearings/{id}/transcript/{segment_id}", "GET /hearings/{id}/attendance",
        "GET /hearings/{id}/identity-checks", "GET /hearings/{id}/identity-checks/{seq}/still",
        "POST /hearings/{id}/signing/corrections/{request_id}",
        "POST /hearings/{id}/transcript/edits"}


def test_a_route_cannot_be_declared_unguarded_by_mistake() -> None:
    table = EndpointTable(API)

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    with pytest.raises(ValueError, match="names its hearing"):
        table.route("GET", "/recordings", auth="review", staff=Permission.SEE, summary="x",
                    tag="x")(handler)
    with pytest.raises(ValueError, match="roles"):
        table.route("GET", "/courts", roles={Role.JUDGE}, staff=Permission.READ_PLACES,
                    summary="x", tag="x")(handler)
    # A route staff may call says what they need; one they may not says nothing of it.
    for auth in ("admin", "review", "participant"):
        with pytest.raises(ValueError, match="names the permission staff need"):
            table.route("GET", "/hearings/{id}", auth=auth, summary="x", tag="x")(handler)
    with pytest.raises(ValueError, match="names the permission staff need"):
        table.route("GET", "/open", auth="none", staff=Permission.SEE, summary="x",
                    tag="x")(handler)
    # The default is the admin's.
    table.route("GET", "/courts", staff=Permission.READ_PLACES, summary="x", tag="x")(handler)
    assert table.endpoints[0].auth == "admin"


async def test_handlers_run_only_after_the_table_resolved_the_caller(
    aiohttp_client: Any, tmp_path: Path,
) -> None:
    """A handler that checks nothing: the table alone keeps it shut, and says who called."""
    table = EndpointTable(API)
    seen: list[Caller] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request[CALLER])
        return web.json_response({})

    routes: tuple[tuple[Auth, str], ...] = (
        ("admin", "/staff"), ("device", "/kiosk"), ("none", "/open"))
    for auth, path in routes:
        table.route("GET", path, auth=auth, summary="x", tag="x",
                    staff=Permission.READ_PLACES if auth == "admin" else None)(handler)
    app = web.Application(middlewares=[json_errors])
    app[ADMIN_TOKEN_KEY] = ADMIN_TOKEN
    # No accounts here to look up: the admin token is kept.
    app[SETTINGS] = load_settings(environ={}, data_dir=tmp_path, keep_admin_token=True)
    table.add_to(app)
    client = await aiohttp_client(app)

    for path, headers in (("/staff", {}), ("/staff", bearer("x")),
                          ("/staff", {"Authorization": f"Device {ADMIN_TOKEN}"}),
                          ("/kiosk", {}), ("/kiosk", bearer(ADMIN_TOKEN))):
        assert_error(await call(client, "GET", API + path, headers=headers), 401,
                     "unauthorized")
    assert seen == []
    for path, headers in (("/staff", bearer(ADMIN_TOKEN)),
                          ("/kiosk", {"Authorization": "Device k"}), ("/open", {})):
        assert (await call(client, "GET", API + path, headers=headers)).status == 200
    assert seen == [STAFF, Caller(actor="device", device_key="k"), ANYONE]


async def test_every_guarded_route_refuses_no_credential_and_the_wrong_kind(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
) -> None:
    before = await db_state.snapshot()
    device = {"Authorization": f"Device {world.device_key}"}
    wrong_kind = {
        # A join token or a device key is not the admin token.
        "admin": [bearer(world.judge_token), device, {"Authorization": f"Device {ADMIN_TOKEN}"}],
        # Nor is the admin token (or a join token) a device's credential.
        "device": [admin, bearer(world.judge_token)],
        # A prison terminal's key does not stand for a participant of the hearing.
        "review": [device],
        "participant": [device],
    }
    for endpoint in GUARDED:
        path = world.path(endpoint.path)
        for headers in ({}, *wrong_kind[endpoint.auth]):
            reply = await send(client, endpoint, path, headers, world)
            what = f"{label(endpoint)} with {headers}"
            assert reply.status == 401, what
            assert_error(reply, 401, "unauthorized")
            scheme = "Device" if endpoint.auth == "device" else "Bearer"
            assert reply.headers["WWW-Authenticate"].startswith(scheme), what
    await db_state.assert_unchanged(before, "requests without the route's credential")


async def test_a_participant_of_one_hearing_is_refused_the_routes_of_another(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
) -> None:
    other = await call(client, "POST", f"{API}/hearings", headers=admin,
                       json=hearing_body(HEARING_START + timedelta(days=1), title="另案"))
    assert other.status == 201, other.text
    b = other.json["id"]
    judge_b = await call(client, "POST", f"{API}/hearings/{b}/participants", headers=admin,
                         json={"name": "李审判员", "role": "judge", "location": "courtroom"})
    assert judge_b.status == 201, judge_b.text
    # The defendant of A may review A's recordings but is not its judge or clerk.
    permitted = await call(client, "PUT",
                           f"{API}/hearings/{world.hearing_id}/participants/"
                           f"{world.defendant_id}/review", headers=admin,
                           json={"may_review": True})
    assert permitted.status == 200, permitted.text

    before = await db_state.snapshot()
    for endpoint in HEARING_ROUTES:
        path_a = world.path(endpoint.path)
        path_b = path_a.replace(world.hearing_id, b, 1)
        assert path_b != path_a
        for path, token in ((path_b, world.judge_token), (path_b, world.defendant_token),
                            (path_a, judge_b.json["token"])):
            reply = await call(client, endpoint.method, path, headers=bearer(token),
                               json=valid_body(endpoint, world) if endpoint.body else None)
            error = assert_error(reply, 403, "access_denied")
            assert "another hearing" in error["message"], (label(endpoint), error)
        if endpoint.roles:
            reply = await send(client, endpoint, path_a, bearer(world.defendant_token), world)
            error = assert_error(reply, 403, "forbidden")
            assert all(role.value in error["message"] for role in endpoint.roles), error
    await db_state.assert_unchanged(before, "one hearing's participants on another's routes")
    # A's judge does reach A's routes: the refusals were the hearing's.
    transcript = await call(client, "GET", f"{API}/hearings/{world.hearing_id}/transcript",
                            headers=bearer(world.judge_token))
    assert transcript.status == 200, transcript.text
    forged_id = str(uuid.uuid4())
    stranger = await call(client, "GET", f"{API}/hearings/{forged_id}/transcript",
                          headers=bearer(world.judge_token))
    assert_error(stranger, 403, "access_denied")


# -- staff accounts: each role on the routes it may and may not call (issue 19 part 3) --------

STAFF_PASSWORD = "一个测试用的密码 2026"


async def staff_account(client: TestClient, login: str, role: StaffRole,
                        court_id: str | None) -> tuple[StaffAccount, dict[str, str]]:
    """An account with `role` in the court, signed in: the headers its browser sends."""
    account = await client.server.app[STAFF_ACCOUNTS].add(
        StaffAccountIn(name=login, login=login, roles=[role],
                       court_id=uuid.UUID(court_id) if court_id else None),
        STAFF_PASSWORD, "clerk:test")
    client.session.cookie_jar.clear()
    reply = await call(client, "POST", f"{API}/session",
                       json={"login": login, "password": STAFF_PASSWORD})
    assert reply.status == 201, reply.text
    secret = next(m.value for m in client.session.cookie_jar if m.key == STAFF_COOKIE)
    client.session.cookie_jar.clear()
    return account, {"Cookie": f"{STAFF_COOKIE}={secret}", "X-CSRF-Token": reply.json["csrf_token"]}


STAFF_ROUTES = [e for e in api.endpoints if e.staff is not None]


def test_every_route_staff_may_call_names_the_roles_it_accepts() -> None:
    assert {e.auth for e in STAFF_ROUTES} == {"admin", "review", "participant"}
    assert all(e.auth in ("none", "device") for e in api.endpoints if e.staff is None)
    needs = {label(e): roles_for(e.staff) for e in STAFF_ROUTES if e.staff is not None}
    assert needs["POST /courts"] == needs["GET /audit"] == (StaffRole.ADMINISTRATOR,)
    assert needs["POST /hearings"] == needs["POST /hearings/{id}/participants"] == (
        StaffRole.CLERK,)
    assert needs["POST /hearings/{id}/transcript/seal"] == (StaffRole.JUDGE,)
    assert needs["POST /hearings/{id}/start"] == (StaffRole.CLERK, StaffRole.JUDGE)
    assert needs["GET /hearings/{id}/transcript"] == (
        StaffRole.CLERK, StaffRole.JUDGE, StaffRole.SUPERVISOR)
    assert set(needs["GET /courtrooms"]) == set(StaffRole)


async def test_an_account_without_the_role_is_refused_every_route_and_changes_nothing(
    client: TestClient, world: World, db_state: DatabaseState,
) -> None:
    headers = {role: (await staff_account(client, role.value, role, world.court_id))[1]
               for role in StaffRole}
    before = await db_state.snapshot()
    refused = 0
    for endpoint in STAFF_ROUTES:
        assert endpoint.staff is not None
        for role in set(StaffRole) - set(roles_for(endpoint.staff)):
            reply = await send(client, endpoint, world.path(endpoint.path), headers[role],
                               world)
            error = assert_error(reply, 403, "not_permitted")
            assert error["message"].startswith("this needs the "), error
            assert role.value in error["message"]  # what the account has
            refused += 1
    assert refused > 60
    await db_state.assert_unchanged(before, "routes refused for lack of a role")


async def test_each_role_acts_on_its_court_s_and_its_own_hearings_only(
    client: TestClient, admin: dict[str, str], world: World,
) -> None:
    other_court = (await call(client, "POST", f"{API}/courts", json={"name": "海淀区人民法院"},
                              headers=admin)).json["id"]
    far_room = (await call(client, "POST", f"{API}/courtrooms", headers=admin,
                           json={"court_id": other_court, "name": "第二法庭"})).json["id"]
    judge, as_judge = await staff_account(client, "wang.judge", StaffRole.JUDGE,
                                          world.court_id)
    _, as_other_judge = await staff_account(client, "li.judge", StaffRole.JUDGE,
                                            world.court_id)
    clerk, as_clerk = await staff_account(client, "zhao.clerk", StaffRole.CLERK,
                                          world.court_id)
    _, as_far_clerk = await staff_account(client, "qian.clerk", StaffRole.CLERK, other_court)
    _, as_supervisor = await staff_account(client, "sun.sup", StaffRole.SUPERVISOR,
                                           world.court_id)
    _, as_far_supervisor = await staff_account(client, "zhou.sup", StaffRole.SUPERVISOR,
                                               other_court)
    _, as_administrator = await staff_account(client, "root", StaffRole.ADMINISTRATOR, None)
    hearing = f"{API}/hearings/{world.hearing_id}"
    given = await call(client, "PATCH", hearing, json={"judge_account_id": str(judge.id)},
                       headers=admin)
    assert given.status == 200 and given.json["judge_account_id"] == str(judge.id), given.text

    def ids(reply: Reply) -> set[str]:
        assert reply.status == 200, reply.text
        return {h["id"] for h in reply.json["items"]}

    # A clerk of another court: refused the hearing, its room, and does not see it listed.
    for method, path, body in (("GET", hearing, None), ("PATCH", hearing, {"title": "改"}),
                               ("POST", f"{hearing}/participants",
                                {"name": "旁听", "role": "observer", "location": "remote"}),
                               ("POST", f"{hearing}/open", None)):
        error = assert_error(await call(client, method, path, json=body,
                                        headers=as_far_clerk), 403, "not_permitted")
        assert "not of this account's court" in error["message"]
    far = await call(client, "POST", f"{API}/hearings", headers=as_far_clerk,
                     json=hearing_body(courtroom_id=world.courtroom_id))
    assert_error(far, 403, "not_permitted")
    assert ids(await call(client, "GET", f"{API}/hearings", headers=as_far_clerk)) == set()
    # ... and schedules in their own court, as its clerk.
    own = await call(client, "POST", f"{API}/hearings", headers=as_far_clerk,
                     json=hearing_body(courtroom_id=far_room, case_number="(2026)京0108刑初1号"))
    assert own.status == 201, own.text
    assert own.json["court_id"] == other_court and own.json["clerk_account_id"] is not None
    # The court's own clerk moves the hearing and sees it; not into another court's room.
    assert (await call(client, "PATCH", hearing, json={"title": "张某盗窃一案"},
                       headers=as_clerk)).status == 200
    assert_error(await call(client, "PATCH", hearing, json={"courtroom_id": far_room},
                            headers=as_clerk), 403, "not_permitted")
    assert ids(await call(client, "GET", f"{API}/hearings", headers=as_clerk)) == {
        world.hearing_id}

    # A judge on someone else's hearing is refused it; the hearing's judge reads its record,
    # and may seal it (refused here only because the hearing is not closed).
    for method, path in (("GET", hearing), ("GET", f"{hearing}/transcript"),
                         ("POST", f"{hearing}/transcript/seal"), ("POST", f"{hearing}/start")):
        error = assert_error(await call(client, method, path, headers=as_other_judge), 403,
                             "not_permitted")
        assert "hearing's judge" in error["message"]
    assert (await call(client, "GET", f"{hearing}/transcript", headers=as_judge)).status == 200
    assert_error(await call(client, "POST", f"{hearing}/transcript/seal", headers=as_judge),
                 409)
    assert ids(await call(client, "GET", f"{API}/hearings", headers=as_judge)) == {
        world.hearing_id}
    assert ids(await call(client, "GET", f"{API}/hearings", headers=as_other_judge)) == set()
    # The clerk may not seal; a judge may not schedule.
    assert_error(await call(client, "POST", f"{hearing}/transcript/seal", headers=as_clerk),
                 403, "not_permitted")
    assert_error(await call(client, "POST", f"{API}/hearings", headers=as_judge,
                            json=hearing_body()), 403, "not_permitted")

    # A supervisor sees their court's hearings, and calls no clerk's or administrator's route.
    assert (await call(client, "GET", hearing, headers=as_supervisor)).status == 200
    assert_error(await call(client, "GET", hearing, headers=as_far_supervisor), 403,
                 "not_permitted")
    for method, path, body in (("POST", f"{hearing}/participants",
                                {"name": "孙监督员", "role": "observer", "location": "remote"}),
                               ("POST", f"{hearing}/cancel", None),
                               ("POST", f"{API}/courts", {"name": "新法院"}),
                               ("GET", f"{API}/audit", None)):
        assert_error(await call(client, method, path, json=body, headers=as_supervisor), 403,
                     "not_permitted")
    # An administrator manages places and reads the audit, and no hearing.
    made = await call(client, "POST", f"{API}/courts", json={"name": "新法院"},
                      headers=as_administrator)
    assert made.status == 201, made.text
    assert (await call(client, "GET", f"{API}/audit", headers=as_administrator)).status == 200
    assert_error(await call(client, "GET", hearing, headers=as_administrator), 403,
                 "not_permitted")
    # The admin token (the bootstrap administrator) still may do everything.
    assert (await call(client, "GET", hearing, headers=admin)).status == 200
    assert ids(await call(client, "GET", f"{API}/hearings", headers=admin)) == {
        world.hearing_id, own.json["id"]}
    assert clerk.id != judge.id


async def test_what_an_account_did_is_named_by_the_account_s_name_when_read(
    client: TestClient, admin: dict[str, str], world: World,
) -> None:
    """The data keeps `account:<id>`; the record, its corrections and the audit name the
    person, as the account is named now."""
    judge, as_judge = await staff_account(client, "wang.judge", StaffRole.JUDGE,
                                          world.court_id)
    hearing = f"{API}/hearings/{world.hearing_id}"
    assert (await call(client, "PATCH", hearing, headers=admin,
                       json={"judge_account_id": str(judge.id)})).status == 200
    corrected = await call(client, "PATCH", f"{hearing}/transcript/{world.segment_id}",
                           json={"text": "现在开庭，核对当事人身份。"}, headers=as_judge)
    assert corrected.status == 200, corrected.text
    for action in ("open", "start", "close"):
        moved = await call(client, "POST", f"{hearing}/{action}", headers=as_judge)
        assert moved.status == 200, moved.text
    sealed = await call(client, "POST", f"{hearing}/transcript/seal", headers=as_judge)
    assert sealed.status == 200, sealed.text
    assert sealed.json["by"] == judge.actor and sealed.json["by_name"] == "wang.judge"
    record = await call(client, "GET", f"{hearing}/transcript", headers=admin)
    assert record.json["sealed"]["by_name"] == "wang.judge"
    [revision] = (await call(client, "GET",
                             f"{hearing}/transcript/{world.segment_id}/revisions",
                             headers=admin)).json["items"]
    assert (revision["author"], revision["author_name"]) == (judge.actor, "wang.judge")
    audit = await call(client, "GET", f"{API}/audit", headers=admin,
                       params={"hearing_id": world.hearing_id, "limit": "200"})
    named = {(e["action"], e["actor_name"]) for e in audit.json["items"]
             if e["actor"] == judge.actor}
    assert {("hearing.start", "wang.judge"), ("transcript.sealed_by_judge", "wang.judge")} <= named
    assert all(e["actor_name"] is None for e in audit.json["items"] if e["actor"] == "admin")

"""The endpoint table refuses callers before any handler runs, for every route it holds.

The routes are read from the table itself: a route added tomorrow is walked too, and the only
way to open one to anyone is to declare it `auth="none"`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from courtrooms.models import Role
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
from web.endpoints import ANYONE, CALLER, STAFF, Auth, Caller, Endpoint, EndpointTable
from web.errors import json_errors
from web.keys import ADMIN_TOKEN as ADMIN_TOKEN_KEY

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
        table.route("GET", "/recordings", auth="review", summary="x", tag="x")(handler)
    with pytest.raises(ValueError, match="roles"):
        table.route("GET", "/courts", roles={Role.JUDGE}, summary="x", tag="x")(handler)
    # The default is the admin's.
    table.route("GET", "/courts", summary="x", tag="x")(handler)
    assert table.endpoints[0].auth == "admin"


async def test_handlers_run_only_after_the_table_resolved_the_caller(
    aiohttp_client: Any,
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
        table.route("GET", path, auth=auth, summary="x", tag="x")(handler)
    app = web.Application(middlewares=[json_errors])
    app[ADMIN_TOKEN_KEY] = ADMIN_TOKEN
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

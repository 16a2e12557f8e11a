"""The OpenAPI document: valid, complete, and a true description of what the server does."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from tests.conftest import ADMIN_TOKEN, FakeClock
from tests.web.support import (
    API,
    World,
    call,
    hearing_body,
    valid_body,
)
from web.api import api
from web.endpoints import Endpoint
from web.openapi import build_openapi


async def fetch_document(client: TestClient) -> dict[str, Any]:
    reply = await call(client, "GET", API + "/openapi.json")  # no credentials needed
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    return reply.json


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A JSON Schema 2020-12 validator for `schema`, resolving refs into the components."""
    root = {**schema, "components": document["components"]}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/"), ref
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


async def test_document_is_valid_openapi(client: TestClient) -> None:
    document = await fetch_document(client)
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "Tingshen API" and document["info"]["version"]
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for op_id in ids:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", op_id), op_id


async def test_every_api_route_is_documented_and_nothing_else(client: TestClient) -> None:
    document = await fetch_document(client)
    registered = set()
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path == API or path.startswith(API + "/"):
            registered.add((route.method.lower(), path))
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert len(registered) >= 35
    assert registered - documented == set(), "routes missing from the OpenAPI document"
    assert documented - registered == set(), "documented operations the server does not have"
    for path, ops in document["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        for op in ops.values():
            in_path = [p["name"] for p in op["parameters"] if p["in"] == "path"]
            assert in_path == names, (path, in_path)


@pytest.mark.parametrize("endpoint", api.endpoints,
                         ids=lambda e: f"{e.method} {e.path[len(API):]}")
def test_operation_declares_auth_body_query_and_errors(endpoint: Endpoint) -> None:
    document = build_openapi(api, "test")
    op = document["paths"][endpoint.path][endpoint.method.lower()]
    responses = op["responses"]
    assert str(endpoint.status) in responses
    if endpoint.auth == "admin":
        assert op["security"] == [{"bearer": []}, {"staffSession": []}] and "401" in responses
    elif endpoint.auth == "device":
        assert op["security"] == [{"device": []}]
        assert {"401", "403"} <= set(responses)
    elif endpoint.auth == "review":
        assert op["security"] == [{"bearer": []}, {"staffSession": []}, {"reviewer": []},
                                  {"signedLink": []}]
        assert {"401", "403"} <= set(responses)
        assert set(document["components"]["securitySchemes"]) >= {"reviewer", "signedLink"}
    elif endpoint.auth == "participant":
        assert op["security"] == [{"bearer": []}, {"staffSession": []}, {"participant": []},
                                  {"signedLink": []}]
        assert {"401", "403"} <= set(responses)
        assert set(document["components"]["securitySchemes"]) >= {"participant", "signedLink",
                                                                  "staffSession"}
    else:
        assert op["security"] == []
    if endpoint.raw_body:
        content = op["requestBody"]["content"]
        assert set(content) == set(endpoint.raw_body) and {"413", "415"} <= set(responses)
    elif endpoint.body is None:
        assert "requestBody" not in op
    else:
        body = op["requestBody"]
        assert body["required"] is True
        schema = body["content"]["application/json"]["schema"]
        component = resolve(document, schema["$ref"])
        model = endpoint.body
        assert set(component["properties"]) == set(model.model_fields)
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert set(component.get("required", [])) == required
        assert component["additionalProperties"] is False  # unknown keys are refused
        assert {"400", "413", "415", "422"} <= set(responses)
    if endpoint.query is not None:
        documented = {p["name"] for p in op["parameters"] if p["in"] == "query"}
        expected = {f.alias or n for n, f in endpoint.query.model_fields.items()}
        assert documented == expected and "422" in responses
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}


async def test_example_hearing_body_validates_against_the_document(
    client: TestClient, admin: dict[str, str]
) -> None:
    document = await fetch_document(client)
    op = document["paths"][API + "/hearings"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    body_schema = validator(document, schema)
    example = hearing_body(language="zh", auto_admit=True)
    body_schema.validate(example)
    for broken in (
        {k: v for k, v in example.items() if k != "title"},
        {**example, "judge": "王审判员"},
        {**example, "kind": "duel"},
        {**example, "auto_admit": "yes"},
        {**example, "courtroom_id": 7},
        {**example, "scheduled_start": "not a time"},
    ):
        assert not body_schema.is_valid(broken), broken

    # The server agrees: it takes the example, and answers as documented.
    reply = await call(client, "POST", API + "/hearings", json=example, headers=admin)
    assert reply.status == 201, reply.text
    validator(document, op["responses"]["201"]["content"]["application/json"]["schema"]
              ).validate(reply.json)


async def test_responses_match_the_documented_statuses_and_schemas(
    client: TestClient, admin: dict[str, str], world: World, clock: FakeClock
) -> None:
    """Walk the API like a clerk would; every answer's status and body is as documented."""
    document = await fetch_document(client)
    checked: set[tuple[str, str, int]] = set()

    async def check(endpoint: Endpoint, *, path: str | None = None, body: Any = None,
                    headers: dict[str, str] | None = None) -> Any:
        reply = await call(client, endpoint.method, path or world.path(endpoint.path),
                           json=body, headers=admin if headers is None else headers)
        responses = document["paths"][endpoint.path][endpoint.method.lower()]["responses"]
        where = f"{endpoint.method} {endpoint.path} -> {reply.status}: {reply.text[:300]}"
        assert str(reply.status) in responses, f"undocumented status: {where}"
        content = responses[str(reply.status)].get("content")
        if content is None:
            assert reply.text == "", where
        else:
            validator(document, content["application/json"]["schema"]).validate(reply.json)
        checked.add((endpoint.method, endpoint.path, reply.status))
        return reply.json

    by_route = {(e.method, e.path[len(API):]): e for e in api.endpoints}

    def ep(method: str, path: str) -> Endpoint:
        return by_route[(method, path)]

    device = {"Authorization": f"Device {world.device_key}"}
    for endpoint in api.endpoints:
        if endpoint.method == "GET":
            await check(endpoint, headers=device if endpoint.auth == "device" else None)
    await check(ep("GET", "/terminal/assignment"), headers={})
    await check(ep("GET", "/terminal/assignment"), headers={"Authorization": "Device x"})
    await check(ep("GET", "/courts"), headers={})
    await check(ep("GET", "/hearings"), path=API + "/hearings?limit=0")
    await check(ep("GET", "/courts/{id}"), path=f"{API}/courts/{uuid.uuid4()}")

    for endpoint in api.endpoints:
        if endpoint.body is not None:
            await check(endpoint, body=valid_body(endpoint, world))
            await check(endpoint, body={"unknown": 1})
    await check(ep("POST", "/hearings"), body=hearing_body(courtroom_id=world.courtroom_id))
    await check(ep("POST", "/prison-terminals/{id}/rotate-key"))
    made = await check(ep("POST", "/tokens"),
                       body={"name": "庭审直播平台", "scopes": ["read_records"]})
    revoke = f"{API}/tokens/{made['id']}/revoke"
    await check(ep("POST", "/tokens/{id}/revoke"), path=revoke)
    await check(ep("POST", "/tokens/{id}/revoke"), path=revoke)  # again: 409
    await check(ep("POST", "/tokens/{id}/revoke"), path=f"{API}/tokens/{uuid.uuid4()}/revoke")
    participants = f"{API}/hearings/{world.hearing_id}/participants/{world.judge_id}"
    await check(ep("DELETE", "/hearings/{id}/participants/{participant_id}/token"),
                path=participants + "/token")
    await check(ep("POST", "/hearings/{id}/participants/{participant_id}/token"),
                path=participants + "/token")
    await check(ep("DELETE", "/courts/{id}"))
    await check(ep("DELETE", "/courtrooms/{id}"))
    await check(ep("DELETE", "/prison-terminals/{id}"))
    await check(ep("POST", "/hearings/{id}/exhibits"),
                path=f"{API}/hearings/{world.hearing_id}/exhibits?title=x")  # no body: 415
    await check(ep("POST", "/hearings/{id}/transcript/seal"))  # not closed yet: 409
    await check(ep("POST", "/hearings/{id}/enter"))  # the admin token holds no seat: 403
    await check(ep("POST", "/hearings/{id}/transcript/seal"),
                headers={"Authorization": f"Bearer {world.defendant_token}"})

    clock.advance(timedelta(hours=9))
    await check(ep("GET", "/join/{token}"), path=f"{API}/join/{world.defendant_token}", headers={})
    await check(ep("GET", "/terminal/assignment"), headers={
        "Authorization": f"Device {world.device_key}"})
    await check(ep("POST", "/hearings/{id}/start"))
    for action in ("open", "start", "recess", "resume", "close", "cancel"):
        await check(ep("POST", f"/hearings/{{id}}/{action}"))
    await check(ep("DELETE", "/hearings/{id}/participants/{participant_id}"))
    await check(ep("POST", "/hearings/{id}/composite"))
    await check(ep("DELETE", "/hearings/{id}/composite"))
    await check(ep("POST", "/hearings/{id}/transcript/seal"))
    await check(ep("GET", "/hearings/{id}/transcript"))
    await check(ep("GET", "/audit/verify"))
    await check(ep("POST", "/hearings/{id}/links"),
                body={"path": f"{API}/hearings/{world.hearing_id}/transcript"})
    # Signing in (last: the client keeps the session's cookie).
    await check(ep("POST", "/session"), body={"token": "wrong"}, headers={})
    session = await check(ep("POST", "/session"), body={"token": ADMIN_TOKEN}, headers={})
    await check(ep("GET", "/session"), headers={})
    await check(ep("DELETE", "/session"), headers={"X-CSRF-Token": session["csrf_token"]})
    await check(ep("POST", "/session"), body={"login": "nobody", "password": "wrong"},
                headers={})
    session = await check(ep("POST", "/session"), body={"token": ADMIN_TOKEN}, headers={})
    await check(ep("DELETE", "/session/everywhere"),
                headers={"X-CSRF-Token": session["csrf_token"]})
    client.session.cookie_jar.clear()

    statuses = {status for _m, _p, status in checked}
    assert {200, 201, 204, 401, 403, 404, 409, 422} <= statuses
    assert {(e.method, e.path) for e in api.endpoints} <= {(m, p) for m, p, _s in checked}

"""Bodies and query strings invalid by construction get a 4xx JSON error and change nothing.

Every endpoint that takes a body (from the API table) is fuzzed; paths point at existing entities
so that it is validation, not a missing id, that answers. The database is compared row by row,
with the audit chain's head, before and after each request.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.json_values import is_json, json_type
from tests.web.support import (
    API,
    DatabaseState,
    Reply,
    Snapshot,
    World,
    assert_error,
    call,
    valid_body,
)
from web.api import api
from web.endpoints import Endpoint

# Signing in has its own tests (tests/web/test_api_session.py): a wrong token is audited and
# rate-limited, which fuzzing it here would only exercise as refusals.
BODY_ENDPOINTS = [e for e in api.endpoints
                  if e.body is not None and (e.method, e.path) != ("POST", "/api/v1/session")]
# Pages of lists (a query with limit and offset); a version of the record is fuzzed apart.
LIST_ENDPOINTS = [e for e in api.endpoints if e.query is not None and e.method == "GET"
                  and "limit" in e.query.model_fields]
# Body endpoints that only answer a question: a valid body changes nothing either.
# Signing the record: only once the hearing is closed, and only by its participants.
NEEDS_A_CLOSED_HEARING = {
    "POST /hearings/{id}/signing/signature", "POST /hearings/{id}/signing/refusal",
    "POST /hearings/{id}/signing/corrections",
    "POST /hearings/{id}/signing/corrections/{request_id}"}
READ_ONLY = {"POST /hearings/conflicts", "POST /hearings/{id}/links"}
JSON_TYPE = {"Content-Type": "application/json"}

fuzz = hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def endpoint_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path[len(API):]}"


# -- what each body model allows, read from its JSON schema ----------------------------------


@dataclass(frozen=True)
class FieldSpec:
    name: str
    json_types: frozenset[str]  # JSON types the field accepts ("null" when it may be null)
    kind: str  # "text", "uuid", "datetime", "enum", "pattern", "boolean", "array",
    # "number" or "integer"
    required: bool
    item_kind: str | None = None  # an array's items: "text", "uuid" or "enum"
    max_items: int | None = None
    bounds: tuple[float, float] | None = None  # a number's least and greatest values
    pattern: str | None = None  # what a "pattern" field's text must match
    item_values: tuple[str, ...] = ()  # an "enum" array's values


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    if "$ref" in prop:
        return _resolve(defs[prop["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in prop:
        return [leaf for option in prop["anyOf"] for leaf in _resolve(option, defs)]
    return [prop]


@functools.cache
def field_specs(model: type[BaseModel]) -> list[FieldSpec]:
    schema = model.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    specs = []
    for name, prop in schema["properties"].items():
        leaves = _resolve(prop, defs)
        types = frozenset(leaf["type"] for leaf in leaves)
        main = next(leaf for leaf in leaves if leaf["type"] != "null")
        if main["type"] == "array":
            [item] = _resolve(main["items"], defs)
            assert "maxItems" in main, (model, name, main)  # every list is bounded
            item_kind = ("uuid" if item.get("format") == "uuid"
                         else "enum" if "enum" in item else "text")
            assert item_kind != "text" or "maxLength" in item, (model, name, item)
            specs.append(FieldSpec(name, types, "array", name in required, item_kind,
                                   main["maxItems"], item_values=tuple(item.get("enum", ()))))
            continue
        if main["type"] in ("number", "integer"):
            # Every number is bounded: its wrong values are out of its range.
            assert "maximum" in main and "minimum" in main, (model, name, main)
            specs.append(FieldSpec(name, types, main["type"], name in required,
                                   bounds=(main["minimum"], main["maximum"])))
            continue
        if main["type"] == "boolean":
            kind = "boolean"
        elif "enum" in main:
            kind = "enum"
        elif main.get("format") == "uuid":
            kind = "uuid"
        elif main.get("format") == "date-time":
            kind = "datetime"
        elif "pattern" in main:
            kind = "pattern"
        else:
            assert main["type"] == "string" and "maxLength" in main, (model, name, main)
            kind = "text"
        specs.append(FieldSpec(name, types, kind, name in required, pattern=main.get("pattern")))
    return specs


# -- strategies of invalid bodies ------------------------------------------------------------

# A case is (raw body, expected status, expected code, expected field or None for "no field").
Case = tuple[bytes, int, str, str | None]

huge_ints = st.one_of(
    st.integers(min_value=2**63, max_value=10**400),
    st.integers(max_value=-(2**63), min_value=-(10**400)),
)
any_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), huge_ints,
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=6,
)
control_chars = st.sampled_from([chr(c) for c in range(0x20)] + ["\x7f"])
plain_text = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=20)
# Datetimes a hearing cannot use: naive ones, or in formats that are not ISO 8601.
naive_datetimes = st.datetimes().map(lambda d: d.isoformat())
BAD_FORMATS = ("%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M:%SZ", "%d.%m.%Y %H:%M +0800", "%c",
               "%Y年%m月%d日 %H时%M分", "%Y-%m-%dT%H:%M:%S+25:00", "%Y-%m-%dT%H:%M:%S EST",
               "%Y-%m-%d")
odd_datetimes = st.builds(lambda d, f: d.strftime(f), st.datetimes(min_value=datetime(1900, 1, 1)),
                          st.sampled_from(BAD_FORMATS))
bad_datetime_words = st.sampled_from(["", "now", "tomorrow", "2026-11-23T25:00:00Z",
                                      "2026-02-30T10:00:00Z", "2026-11-23T10:00:00+8",
                                      "T10:00:00Z", "2026-W48-1T10:00Z", "infinity", "NaN"])


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def invalid_cases(base: dict[str, Any], specs: list[FieldSpec]) -> st.SearchStrategy[Case]:
    """Bodies made invalid in one way each, with what the API must answer."""
    names = {s.name for s in specs}
    strategies: list[st.SearchStrategy[Case]] = []

    not_json = st.one_of(st.binary(max_size=200), st.text(max_size=60).map(str.encode)).filter(
        lambda raw: not is_json(raw)
    )
    strategies.append(not_json.map(lambda raw: (raw, 400, "malformed_json", None)))

    not_object = any_json_value.filter(lambda v: not isinstance(v, dict))
    strategies.append(not_object.map(lambda v: (encode(v), 422, "invalid", None)))

    def extra_key(key: str, value: Any) -> Case:
        return encode({**base, key: value}), 422, "invalid", key

    strategies.append(
        st.builds(extra_key, st.text(min_size=1, max_size=30).filter(lambda k: k not in names),
                  any_json_value)
    )

    required = [s for s in specs if s.required]
    if required:
        strategies.append(
            st.sampled_from(required).map(
                lambda s: (encode({k: v for k, v in base.items() if k != s.name}), 422,
                           "invalid", s.name)
            )
        )

    def with_value(spec: FieldSpec) -> Callable[[Any], Case]:
        return lambda value: (encode({**base, spec.name: value}), 422, "invalid", spec.name)

    for spec in specs:
        wrong_type = any_json_value.filter(lambda v, s=spec: json_type(v) not in s.json_types
                                           and not (json_type(v) == "integer"
                                                    and "number" in s.json_types))
        strategies.append(wrong_type.map(with_value(spec)))
        strategies.append(huge_ints.map(with_value(spec)))
        if "string" in spec.json_types:
            # A control character inside the value, where stripping spaces cannot remove it.
            with_control = st.builds(lambda a, c, b: a + c + b, plain_text, control_chars,
                                     plain_text)
            strategies.append(with_control.map(with_value(spec)))
        if spec.kind == "datetime":
            strategies.append(
                st.one_of(naive_datetimes, odd_datetimes, bad_datetime_words)
                .map(with_value(spec))
            )
        if spec.kind in ("uuid", "enum", "pattern"):
            # Not text the field takes: "auto" is a language, "123X" the end of an ID number.
            strategies.append(plain_text.filter(lambda t, s=spec: len(t) > 3 and not t.isdigit()
                                                and not (s.pattern and re.search(s.pattern, t)))
                              .map(with_value(spec)))
        if spec.kind == "text":
            strategies.append(st.sampled_from(["", " ", "\u3000", "   \t "]).map(with_value(spec)))
    return st.one_of(strategies)


async def check_refused(client: TestClient, admin: dict[str, str], path: str, method: str,
                        case: Case, db_state: DatabaseState, before: Snapshot) -> Reply:
    raw, status, code, field = case
    reply = await call(client, method, path, data=raw, headers={**admin, **JSON_TYPE})
    what = f"{method} {path} {raw[:200]!r}"
    assert reply.status < 500, what
    error = assert_error(reply, status, code)
    if field is None:
        assert "field" not in error, (what, error)
    else:
        assert error.get("field") == field, (what, error)
    await db_state.assert_unchanged(before, what)
    return reply


def test_the_fuzzed_endpoints_are_all_the_body_and_list_endpoints() -> None:
    assert {endpoint_id(e) for e in BODY_ENDPOINTS} == {
        "POST /courts", "PATCH /courts/{id}", "POST /courtrooms", "PATCH /courtrooms/{id}",
        "POST /prison-terminals", "PATCH /prison-terminals/{id}", "POST /hearings",
        "POST /hearings/conflicts", "PATCH /hearings/{id}", "POST /hearings/{id}/participants",
        "POST /hearings/{id}/watch", "POST /tokens",
        "PUT /hearings/{id}/participants/{participant_id}/review",
        "PATCH /hearings/{id}/transcript/{segment_id}", "POST /hearings/{id}/links",
        "POST /hearings/{id}/transcript/edits",
        "POST /hearings/{id}/signing/signature", "POST /hearings/{id}/signing/refusal",
        "POST /hearings/{id}/signing/corrections",
        "POST /hearings/{id}/signing/corrections/{request_id}",
    }
    assert {endpoint_id(e) for e in LIST_ENDPOINTS} >= {
        "GET /courts", "GET /courtrooms", "GET /prison-terminals", "GET /hearings", "GET /audit",
    }


def fixed_cases(base: dict[str, Any], specs: list[FieldSpec]) -> list[Case]:
    cases: list[Case] = [
        (b"\x00garbage", 400, "malformed_json", None),
        (b'{"name": ', 400, "malformed_json", None),
        (b"[]", 422, "invalid", None),
        (b"null", 422, "invalid", None),
        (b"12345678901234567890123456789012345678901234567890", 422, "invalid", None),
        (encode({**base, "unexpected": 1}), 422, "invalid", "unexpected"),
    ]
    for spec in specs:
        if spec.required:
            cases.append((encode({k: v for k, v in base.items() if k != spec.name}), 422,
                          "invalid", spec.name))
        if spec.kind in ("number", "integer"):
            assert spec.bounds is not None
            low, high = spec.bounds
            numbers: list[Any] = [{}, [], "1", True, low - 1, high + 1, 10**30]
            numbers += [1.5] if spec.kind == "integer" else []
            cases += [(encode({**base, spec.name: v}), 422, "invalid", spec.name)
                      for v in numbers]
            continue
        wrong: list[Any] = [1, 1.5, {}, 10**30]
        wrong += [] if spec.kind == "array" else [[]]
        wrong += [] if "null" in spec.json_types else [None]
        if spec.kind == "array":
            assert spec.max_items is not None
            wrong += ["a"]
            valid_item = (str(uuid.uuid4()) if spec.item_kind == "uuid"
                          else spec.item_values[0] if spec.item_kind == "enum" else "Judge Wang")
            cases.append((encode({**base, spec.name: [valid_item] * (spec.max_items + 1)}),
                          422, "invalid", spec.name))
            bad_items: list[Any] = [1, None, [], {}]
            bad_items += (["not-a-uuid"] if spec.item_kind == "uuid"
                          else ["", "a\x00b", "x" * 10_000])
            for item in bad_items:
                cases.append((encode({**base, spec.name: [valid_item, item]}), 422, "invalid",
                              f"{spec.name}.1"))
        wrong += ["true"] if spec.kind == "boolean" else [True]
        if "string" in spec.json_types:
            wrong += ["a\x00b", "a\nb", "a\x1fb", "a\x7fb"]
        if spec.kind == "datetime":
            wrong += ["2026-11-23T10:00:00", "2026-11-23 10:00", "23/11/2026 10:00", "now"]
        for value in wrong:
            cases.append((encode({**base, spec.name: value}), 422, "invalid", spec.name))
    return cases


async def test_each_kind_of_invalid_body_is_refused_and_the_valid_one_accepted(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
) -> None:
    """One example of every kind for every body endpoint, whatever hypothesis draws."""
    for endpoint in BODY_ENDPOINTS:
        assert endpoint.body is not None
        path = world.path(endpoint.path)
        base = valid_body(endpoint, world)
        before = await db_state.snapshot()
        for case in fixed_cases(base, field_specs(endpoint.body)):
            await check_refused(client, admin, path, endpoint.method, case, db_state, before)
        if endpoint_id(endpoint) in NEEDS_A_CLOSED_HEARING:
            continue  # accepted in tests/web/test_api_signing.py, by participants
        # The base body is valid, so each refusal above was for what was broken in it.
        reply = await call(client, endpoint.method, path, json=base, headers=admin)
        assert reply.status == endpoint.status, (endpoint_id(endpoint), reply.text)
        if endpoint_id(endpoint) in READ_ONLY:
            await db_state.assert_unchanged(before, endpoint_id(endpoint))
            continue
        after = await db_state.snapshot()
        assert after.audit_head != before.audit_head, endpoint_id(endpoint)
        assert after.tables != before.tables, endpoint_id(endpoint)


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=endpoint_id)
@fuzz
@given(data=st.data())
async def test_invalid_bodies_are_refused_and_change_nothing(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    endpoint: Endpoint, data: st.DataObject,
) -> None:
    assert endpoint.body is not None
    base = valid_body(endpoint, world)
    case = data.draw(invalid_cases(base, field_specs(endpoint.body)), label="case")
    await check_refused(client, admin, world.path(endpoint.path), endpoint.method, case,
                        db_state, await db_state.baseline())


# -- query strings ---------------------------------------------------------------------------


def query_fields(endpoint: Endpoint) -> list[str]:
    """The parameters the endpoint documents (by alias where there is one)."""
    assert endpoint.query is not None
    return [f.alias or name for name, f in endpoint.query.model_fields.items()]


def accepted_names(endpoint: Endpoint) -> set[str]:
    # HearingQuery also takes its Python field name `from_` for `from`.
    assert endpoint.query is not None
    return set(query_fields(endpoint)) | set(endpoint.query.model_fields)


query_values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-5, max_value=300).map(str),
    huge_ints.map(str),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    naive_datetimes,
    st.uuids().map(str),
    st.sampled_from(["scheduled", "in_session", "closed", "1e3", "0x10", " 5", "NaN", ""]),
)
no_digits = st.text(alphabet=st.characters(categories=["L", "P", "S"]), min_size=1, max_size=8)
bad_limit = st.one_of(st.integers(max_value=0), st.integers(min_value=201), huge_ints,
                      no_digits).map(str)
bad_offset = st.one_of(st.integers(max_value=-1), huge_ints,
                       st.sampled_from(["x", "1.5", "--1", "1e3"]), no_digits).map(str)


@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS, ids=endpoint_id)
@fuzz
@given(data=st.data())
async def test_query_strings_get_a_page_or_a_json_error(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    endpoint: Endpoint, data: st.DataObject,
) -> None:
    """Any query string gets a page or a 422 naming a parameter; a broken one always the 422."""
    known = accepted_names(endpoint)
    keys = st.one_of(st.sampled_from(query_fields(endpoint)), st.text(min_size=1, max_size=12))
    params = data.draw(st.dictionaries(keys, query_values, max_size=4), label="params")
    unknown = st.text(min_size=1, max_size=12).filter(lambda k: k not in known)
    broken = data.draw(st.one_of(
        st.none(),
        st.tuples(unknown, query_values),
        st.tuples(st.just("limit"), bad_limit),
        st.tuples(st.just("offset"), bad_offset),
    ), label="broken parameter")
    if broken is not None:
        params = {k: v for k, v in params.items() if k not in ("limit", "offset")}
        params[broken[0]] = broken[1]
    before = await db_state.baseline()
    reply = await call(client, "GET", endpoint.path, params=params, headers=admin)
    what = f"GET {endpoint.path} {params!r}"
    if "token" in params:  # a credential in a URL is refused before the query is read
        assert_error(reply, 401, "token_in_url", field="token")
        await db_state.assert_unchanged(before, what)
        return
    assert reply.status in (200, 422), (what, reply.text[:300])
    if reply.status == 200:
        assert broken is None, what
        page = reply.json
        assert set(page) == {"items", "total", "limit", "offset"}, what
        assert len(page["items"]) <= page["limit"] <= 200, what
        assert page["offset"] >= 0 and page["total"] >= 0, what
        assert set(params) <= known, what  # unknown keys are never ignored
    else:
        error = assert_error(reply, 422, "invalid")
        assert error.get("field") in params, (what, error)
        if broken is not None and broken[0] in ("limit", "offset") and len(params) == 1:
            assert error["field"] == broken[0], (what, error)
    await db_state.assert_unchanged(before, what)

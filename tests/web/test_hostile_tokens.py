"""Expired, forged and cross-hearing join tokens and device keys, over REST and the WebSocket.

Every route that takes a participant's token (review, trial record, seal, exhibits) is walked
with tokens nobody was given, one character off, cut short, revoked, a device key, another
hearing's judge's; each gets a 401/403 JSON error and the database is unchanged, row by row.
A join outside the hearing's window, or after it ended, is refused the same way; a judge of
one hearing commands nobody in another.
"""

from __future__ import annotations

import re
import string
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.clients import HearingClient
from tests.conftest import ADMIN_TOKEN, FakeClock
from tests.exhibit_files import png
from tests.web.support import (
    API,
    HEARING_START,
    DatabaseState,
    Reply,
    World,
    add_recording,
    assert_error,
    call,
    hearing_body,
)
from web.api import HUB, api
from web.endpoints import Endpoint

# Live hearings and hypothesis run on SQLite; the token look-ups on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TOKEN_ENDPOINTS = [e for e in api.endpoints if e.auth in ("review", "participant")]
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


def endpoint_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path[len(API):]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Court:
    """Hearing A with a recording, an exhibit and a line of record; hearing B beside it."""

    world: World
    recording_id: str
    exhibit_id: str
    other_hearing: str
    other_judge_token: str
    revoked_token: str
    observer_token: str

    def path(self, endpoint: Endpoint) -> str:
        values = {"id": self.world.hearing_id, "recording_id": self.recording_id,
                  "exhibit_id": self.exhibit_id, "segment_id": self.world.segment_id,
                  "format": "txt", "n": "1"}
        return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], endpoint.path)


async def invite(client: TestClient, admin: dict[str, str], hearing_id: str, name: str,
                 role: str) -> dict[str, Any]:
    reply = await call(client, "POST", f"{API}/hearings/{hearing_id}/participants",
                       headers=admin, json={"name": name, "role": role, "location": "remote"})
    assert reply.status == 201, reply.text
    return dict(reply.json)


@pytest.fixture
async def court(client: TestClient, admin: dict[str, str], world: World) -> Court:
    recording_id = await add_recording(client, world.hearing_id, world.judge_id, b"webm" * 100)
    exhibit = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/exhibits",
                         data=png(), params={"title": "借款合同"},
                         headers={**bearer(world.judge_token), "Content-Type": "image/png"})
    assert exhibit.status == 201, exhibit.text
    other = await call(client, "POST", f"{API}/hearings", headers=admin,
                       json=hearing_body(HEARING_START + timedelta(days=1), title="另案"))
    other_judge = await invite(client, admin, other.json["id"], "李审判员", "judge")
    clerk = await invite(client, admin, world.hearing_id, "刘书记员", "clerk")
    revoked = await call(client, "DELETE",
                         f"{API}/hearings/{world.hearing_id}/participants/{clerk['id']}/token",
                         headers=admin)
    assert revoked.status == 204
    observer = await invite(client, admin, world.hearing_id, "监督员", "observer")
    return Court(world, recording_id, exhibit.json["id"], other.json["id"],
                 other_judge["token"], clerk["token"], observer["token"])


def one_changed(token: str, i: int, c: str) -> str:
    i %= len(token)
    if token[i] == c:
        c = "A" if c != "A" else "B"
    return token[:i] + c + token[i + 1:]


def forged(court: Court) -> list[tuple[str, str]]:
    """Tokens nobody holds for hearing A, with what each stands for."""
    judge = court.world.judge_token
    return [
        ("random, right length and alphabet", "Q" * 21 + "-" + "7" * 21),
        ("one character changed", one_changed(judge, 17, "x")),
        ("cut short", judge[:-1]),
        ("one character more", judge + "A"),
        ("upper-cased", judge.upper() if judge.upper() != judge else judge.lower()),
        ("another hearing's judge", court.other_judge_token),
        ("revoked", court.revoked_token),
        ("a device key", court.world.device_key),
        ("the admin token, one character off", one_changed(ADMIN_TOKEN, 3, "X")),
        ("long", "A" * 4000),
        ("not ASCII", "审判长" * 10),
    ]


async def request(client: TestClient, endpoint: Endpoint, path: str,
                  headers: dict[str, str], params: dict[str, str] | None = None) -> Reply:
    """The endpoint called as a client would, with a body it would accept from its holder."""
    data: Any = None
    json_body: Any = None
    params = dict(params or {})
    headers = dict(headers)
    if endpoint.method == "POST" and endpoint.raw_body:
        data, params["title"] = png(), "反证"
        headers["Content-Type"] = "image/png"
    elif endpoint.method == "PATCH":
        json_body = {"text": "被告人：我认罪。"}
    return await call(client, endpoint.method, path, headers=headers, json=json_body,
                      data=data, params=params)


def test_the_walked_endpoints_are_every_one_that_takes_a_participant_token() -> None:
    assert {endpoint_id(e) for e in TOKEN_ENDPOINTS} >= {
        "GET /hearings/{id}/recordings", "GET /hearings/{id}/recordings/{recording_id}/media",
        "GET /hearings/{id}/transcript", "PATCH /hearings/{id}/transcript/{segment_id}",
        "POST /hearings/{id}/transcript/seal", "POST /hearings/{id}/exhibits",
        "GET /hearings/{id}/exhibits/{exhibit_id}/file",
        "GET /hearings/{id}/exhibits/{exhibit_id}/pages/{n}",
    }


async def test_forged_and_foreign_tokens_open_no_route_and_change_nothing(
    client: TestClient, court: Court, db_state: DatabaseState,
) -> None:
    before = await db_state.snapshot()
    checked = 0
    for endpoint in TOKEN_ENDPOINTS:
        path = court.path(endpoint)
        for what, token in forged(court):
            # As a bearer, and as the `token` query parameter an <img> or <video> sends.
            for headers, params in ((bearer(token), None), ({}, {"token": token})):
                reply = await request(client, endpoint, path, headers, params)
                label = f"{endpoint_id(endpoint)} with {what}"
                error = assert_error(reply, 403, "access_denied")
                if what == "another hearing's judge":
                    assert "another hearing" in error["message"], (label, error)
                assert token not in reply.text, label  # a token is never echoed
                checked += 1
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer  "},
                        {"Authorization": f"Device {court.world.device_key}"},
                        {"Authorization": f"Basic {court.world.judge_token}"}):
            reply = await request(client, endpoint, path, headers)
            assert_error(reply, 401, "unauthorized")
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert checked == len(TOKEN_ENDPOINTS) * len(forged(court)) * 2
    await db_state.assert_unchanged(before, "forged and foreign tokens")
    # The same calls with the judge's own token are answered: the refusals were the token's.
    judge = bearer(court.world.judge_token)
    for endpoint in TOKEN_ENDPOINTS:
        if endpoint.method == "GET":
            async with client.get(court.path(endpoint), headers=judge) as resp:
                assert resp.status == 200, (endpoint_id(endpoint), await resp.read())


async def test_a_judge_reaches_nothing_of_another_hearing(
    client: TestClient, admin: dict[str, str], court: Court, db_state: DatabaseState,
) -> None:
    """Hearing B's id in the path with hearing A's judge's token; A's ids under B's path."""
    before = await db_state.snapshot()
    b = court.other_hearing
    judge_a = bearer(court.world.judge_token)
    for endpoint in TOKEN_ENDPOINTS:
        path = court.path(endpoint).replace(court.world.hearing_id, b, 1)
        error = assert_error(await request(client, endpoint, path, judge_a), 403,
                             "access_denied")
        assert "another hearing" in error["message"], (endpoint_id(endpoint), error)
        # The admin reaches B, but A's recording, exhibit and line are not B's.
        if "{recording_id}" in endpoint.path or "{exhibit_id}" in endpoint.path or (
                "{segment_id}" in endpoint.path):
            reply = await request(client, endpoint, path, admin)
            assert_error(reply, 404)
    # Nor any of the court's own routes: a join token is not the admin's.
    for method, path, body in (
        ("POST", f"/hearings/{b}/close", None), ("POST", f"/hearings/{b}/open", None),
        ("GET", f"/hearings/{b}/participants", None), ("PATCH", f"/hearings/{b}", {"title": "x"}),
        ("PUT", f"/hearings/{b}/participants/{court.world.judge_id}/review", {"may_review": True}),
    ):
        reply = await call(client, method, API + path, headers=judge_a, json=body)
        assert_error(reply, 401, "unauthorized")
    await db_state.assert_unchanged(before, "a judge of another hearing")


fuzz = hypothesis_settings(max_examples=40, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture])


@sqlite_only
@fuzz
@given(data=st.data())
async def test_any_forged_token_is_refused(
    client: TestClient, court: Court, db_state: DatabaseState, data: st.DataObject,
) -> None:
    judge = court.world.judge_token
    token = data.draw(st.one_of(
        st.text(alphabet=TOKEN_ALPHABET, min_size=43, max_size=43),
        st.builds(one_changed, st.just(judge), st.integers(0, 42),
                  st.sampled_from(TOKEN_ALPHABET)),
        st.integers(1, 42).map(lambda n: judge[:n]),
        st.text(min_size=1, max_size=100),
    ).filter(lambda t: t not in (judge, court.world.defendant_token, ADMIN_TOKEN)
             and t.strip() == t and t.strip()), label="token")
    endpoint = data.draw(st.sampled_from(TOKEN_ENDPOINTS), label="endpoint")
    reply = await request(client, endpoint, court.path(endpoint), {}, {"token": token})
    assert_error(reply, 403, "access_denied")
    await db_state.assert_unchanged(await db_state.baseline(), f"{endpoint_id(endpoint)}")


# -- joining: outside the window, after the end, with keys rotated ----------------------------


async def join_reply(base_url: str, participants: list[HearingClient], **credential: str
                     ) -> HearingClient:
    c = HearingClient(base_url, "joining")
    participants.append(c)
    await c.join(**credential)
    await c.wait_for(lambda: any(m["type"] in ("error", "welcome") for m in c.messages), 10)
    return c


def only_error(c: HearingClient) -> dict[str, Any]:
    kinds = [m["type"] for m in c.messages]
    assert "welcome" not in kinds, kinds
    return next(m for m in c.messages if m["type"] == "error")


@sqlite_only
async def test_joining_before_the_window_after_the_end_or_with_an_old_key_is_refused(
    client: TestClient, admin: dict[str, str], clock: FakeClock, court: Court,
    db_state: DatabaseState, participants: list[HearingClient],
) -> None:
    world = court.world
    base = str(client.make_url("")).rstrip("/")
    before = await db_state.snapshot()
    # The link opens 30 minutes before the start: earlier, it says when.
    early = only_error(await join_reply(base, participants, token=world.judge_token))
    assert early["code"] == "access_denied" and "opens at" in early["message"]
    rest = assert_error(await call(client, "GET", f"{API}/join/{world.judge_token}"), 403,
                        "access_denied")
    assert rest["opens_at"].startswith("2026-11-23T09:30")
    for what, token in forged(court):
        c = await join_reply(base, participants, token=token[:200])
        assert only_error(c)["code"] in ("access_denied", "invalid"), what
        reply = await call(client, "GET", f"{API}/join/{token}")
        assert_error(reply, 403, "access_denied")
    await db_state.assert_unchanged(before, "joins refused before the window")

    # A rotated device key is refused at once; the new one works.
    rotated = await call(client, "POST",
                         f"{API}/prison-terminals/{world.terminal_id}/rotate-key", headers=admin)
    assert rotated.status == 200
    clock.advance(timedelta(hours=9))  # 10:00, the hearing's start
    old_key = only_error(await join_reply(base, participants, device_key=world.device_key))
    assert old_key["code"] == "access_denied"
    assert_error(await call(client, "GET", f"{API}/terminal/assignment",
                            headers={"Authorization": f"Device {world.device_key}"}), 403)
    new_key = await join_reply(base, participants, device_key=rotated.json["device_key"])
    assert any(m["type"] == "welcome" for m in new_key.messages)
    await new_key.close()

    # After the close nobody joins: the link, the terminal, the WebSocket all say so.
    for action in ("open", "start", "close"):
        assert (await call(client, "POST", f"{API}/hearings/{world.hearing_id}/{action}",
                           headers=admin)).status == 200
    before = await db_state.snapshot()
    late = await join_reply(base, participants, token=world.defendant_token)
    assert only_error(late)["code"] == "hearing_finished"
    await late.wait_for(lambda: late.closed_code == 4000)
    assert_error(await call(client, "GET", f"{API}/join/{world.defendant_token}"), 403,
                 "hearing_finished")
    gone = only_error(await join_reply(base, participants,
                                       device_key=rotated.json["device_key"]))
    assert gone["code"] == "access_denied" and "no hearing" in gone["message"]
    await db_state.assert_unchanged(before, "joins after the close")
    # The record stays open to its judge: a closed hearing's token still reviews it.
    reply = await call(client, "GET", f"{API}/hearings/{world.hearing_id}/transcript",
                       headers=bearer(world.judge_token))
    assert reply.status == 200


@sqlite_only
async def test_a_judge_commands_nobody_of_another_hearing(
    client: TestClient, admin: dict[str, str], clock: FakeClock, court: Court,
    db_state: DatabaseState, participants: list[HearingClient],
) -> None:
    """Joined to hearing A, the judge names hearing B's people: none of them has joined A."""
    world = court.world
    clock.advance(timedelta(hours=9))
    base = str(client.make_url("")).rstrip("/")
    b = court.other_hearing
    r = await call(client, "PATCH", f"{API}/hearings/{b}", headers=admin, json={
        "scheduled_start": (clock.now - timedelta(minutes=5)).isoformat(),
        "scheduled_end": (clock.now + timedelta(hours=1)).isoformat()})
    assert r.status == 200, r.text
    party_b = await invite(client, admin, b, "王某", "party")
    judge_a = HearingClient(base, "judge A")
    other = HearingClient(base, "party B")
    judge_a.publish = other.publish = False
    participants += [judge_a, other]
    await judge_a.join(world.judge_token)
    await other.join(party_b["token"])
    await judge_a.next_message("welcome")
    await other.next_message("welcome")
    before = await db_state.snapshot()
    for action in ("admit", "remove", "mute", "unmute", "permit_review", "revoke_review",
                   "grant_consultation", "deny_consultation", "end_consultation"):
        for target in (party_b["id"], court.other_judge_token[:64], str(uuid.uuid4())):
            mark = len(judge_a.messages)
            await judge_a.send({"type": "command", "action": action, "participant_id": target})
            error = await judge_a.next_message("error", after=mark)
            assert error["code"] == "unknown_participant" and error["field"] == "participant_id"
    await db_state.assert_unchanged(before, "commands on another hearing's people")
    seat = await client.server.app[HUB].bus.seat(b, party_b["id"])
    assert seat is not None and seat.admitted is False and seat.muted_by_court is False
    assert not [m for m in other.messages if m["type"] in ("admitted", "removed", "error")]

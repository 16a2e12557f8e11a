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
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

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
    link,
)
from web.api import api
from web.endpoints import Endpoint
from web.keys import HUB, LINKS

# Live hearings and hypothesis run on SQLite; the token look-ups on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TOKEN_ENDPOINTS = [e for e in api.endpoints if e.auth in ("review", "participant")]
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
# Inside hearing A's join window, where its participants reach its exhibits.
IN_WINDOW = HEARING_START - timedelta(minutes=15)
# Digits str.isdigit() takes and int() reads, that no link is made with.
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))


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
    revoked_id: str

    def path(self, endpoint: Endpoint) -> str:
        values = {"id": self.world.hearing_id, "recording_id": self.recording_id,
                  "exhibit_id": self.exhibit_id, "segment_id": self.world.segment_id,
                  "format": "txt", "n": "1", "participant_id": self.world.judge_id,
                  "seq": "1", "request_id": str(uuid.uuid4())}
        return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], endpoint.path)


async def invite(client: TestClient, admin: dict[str, str], hearing_id: str, name: str,
                 role: str) -> dict[str, Any]:
    reply = await call(client, "POST", f"{API}/hearings/{hearing_id}/participants",
                       headers=admin, json={"name": name, "role": role, "location": "remote"})
    assert reply.status == 201, reply.text
    return dict(reply.json)


@pytest.fixture
async def court(client: TestClient, admin: dict[str, str], world: World,
                clock: FakeClock) -> Court:
    recording_id = await add_recording(client, world.hearing_id, world.judge_id, b"webm" * 100)
    # The judge presents inside the hearing's window (exhibits follow it as joining does).
    before_window = clock.now
    clock.now = IN_WINDOW
    exhibit = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/exhibits",
                         data=png(), params={"title": "借款合同"},
                         headers={**bearer(world.judge_token), "Content-Type": "image/png"})
    assert exhibit.status == 201, exhibit.text
    clock.now = before_window
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
                 other_judge["token"], clerk["token"], observer["token"], clerk["id"])


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


# Routes the judge's own token opens, but whose answer needs a closed hearing or a check made.
NEEDS_WHAT_THE_WORLD_LACKS = {
    "GET /hearings/{id}/signing", "GET /hearings/{id}/signing/recording",
    "GET /hearings/{id}/signing/{participant_id}/signature",
    "GET /hearings/{id}/identity-checks/{seq}/still"}


def test_the_walked_endpoints_are_every_one_that_takes_a_participant_token() -> None:
    assert {endpoint_id(e) for e in TOKEN_ENDPOINTS} >= {
        "GET /hearings/{id}/recordings", "GET /hearings/{id}/recordings/{recording_id}/media",
        "GET /hearings/{id}/transcript", "PATCH /hearings/{id}/transcript/{segment_id}",
        "POST /hearings/{id}/transcript/seal", "POST /hearings/{id}/exhibits",
        "GET /hearings/{id}/exhibits/{exhibit_id}/file",
        "GET /hearings/{id}/exhibits/{exhibit_id}/pages/{n}",
    }


async def test_forged_and_foreign_tokens_open_no_route_and_change_nothing(
    client: TestClient, court: Court, db_state: DatabaseState, clock: FakeClock,
) -> None:
    before = await db_state.snapshot()
    checked = 0
    for endpoint in TOKEN_ENDPOINTS:
        path = court.path(endpoint)
        for what, token in forged(court):
            reply = await request(client, endpoint, path, bearer(token))
            label = f"{endpoint_id(endpoint)} with {what}"
            error = assert_error(reply, 403, "access_denied")
            if what == "another hearing's judge":
                assert "another hearing" in error["message"], (label, error)
            assert token not in reply.text, label  # a token is never echoed
            # Never from the URL (logs, history, Referer): refused before it is even looked up.
            in_url = await request(client, endpoint, path, {}, {"token": token})
            assert_error(in_url, 401, "token_in_url")
            assert token not in in_url.text, label
            checked += 1
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer  "},
                        {"Authorization": f"Device {court.world.device_key}"},
                        {"Authorization": f"Basic {court.world.judge_token}"}):
            reply = await request(client, endpoint, path, headers)
            assert_error(reply, 401, "unauthorized")
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert checked == len(TOKEN_ENDPOINTS) * len(forged(court))
    await db_state.assert_unchanged(before, "forged and foreign tokens")
    # The same calls with the judge's own token are answered (the exhibits inside the
    # hearing's window): the refusals were the token's.
    clock.now = IN_WINDOW
    judge = bearer(court.world.judge_token)
    for endpoint in TOKEN_ENDPOINTS:
        if endpoint.method == "GET":
            async with client.get(court.path(endpoint), headers=judge) as resp:
                if endpoint_id(endpoint) in NEEDS_WHAT_THE_WORLD_LACKS:
                    # (not closed yet: nothing to sign; no check was made: no still)
                    assert resp.status in (404, 409), (endpoint_id(endpoint), resp.status)
                else:
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
    reply = await request(client, endpoint, court.path(endpoint), bearer_or_none(token))
    assert reply.status in (401, 403), reply.text
    assert_error(reply, reply.status, "access_denied" if reply.status == 403 else "unauthorized")
    # The same text as a link's signature opens nothing either.
    reply = await request(client, endpoint, court.path(endpoint), {}, {
        "exp": str(int(time.time()) + 600), "who": f"participant:{court.world.judge_id}",
        "sig": token})
    assert_error(reply, 401, "bad_link" if endpoint.method == "GET" else "unauthorized")
    await db_state.assert_unchanged(await db_state.baseline(), f"{endpoint_id(endpoint)}")


def bearer_or_none(token: str) -> dict[str, str]:
    """`token` as a bearer, where HTTP can carry it in a header at all."""
    try:
        value = f"Bearer {token}".encode("latin-1").decode("latin-1")
    except UnicodeEncodeError:
        return {}
    # The control characters an HTTP client refuses to send (a tab is folded whitespace).
    return {} if re.search("[\x00-\x08\x0a-\x1f\x7f]", value) else {"Authorization": value}


async def test_signed_links_open_only_what_they_were_made_for(
    client: TestClient, court: Court, db_state: DatabaseState, clock: FakeClock,
) -> None:
    """A link stands for its holder, its path and its time: any change, or the holder's token
    revoked since, and it opens nothing."""
    clock.now = IN_WINDOW
    links = client.server.app[LINKS]
    world = court.world
    judge = f"participant:{world.judge_id}"
    gets = [e for e in TOKEN_ENDPOINTS if e.method == "GET"]
    made_for: dict[str, dict[str, str]] = {}
    for endpoint in gets:
        path = court.path(endpoint)
        made = await link(client, world.judge_token, path)
        assert made.status == 201, made.text
        url = made.json["url"]
        assert world.judge_token not in url
        async with client.get(url) as opened:
            if endpoint_id(endpoint) in NEEDS_WHAT_THE_WORLD_LACKS:
                assert opened.status in (404, 409), (endpoint_id(endpoint), opened.status)
            else:
                assert opened.status == 200, (endpoint_id(endpoint), await opened.read())
        made_for[path] = dict(parse_qsl(url.partition("?")[2]))
    # What the refusals below may not change (a viewing above is audited, once).
    before = await db_state.snapshot()
    for path, query in made_for.items():
        other = next(p for p in made_for if p != path)
        expired, _ = links.sign(path, judge, ttl_s=-1)
        for what, target, params in (
            ("its signature changed", path, {**query, "sig": one_changed(query["sig"], 5, "0")}),
            ("made for another person", path,
             {**query, "who": f"participant:{world.defendant_id}"}),
            ("its expiry moved", path, {**query, "exp": str(int(query["exp"]) + 3600)}),
            ("used on another path", other, query),
            ("expired", path, dict(parse_qsl(expired.partition("?")[2]))),
            ("without its expiry", path, {k: v for k, v in query.items() if k != "exp"}),
            # isdigit() takes these; int() fails on the first, reads the second as the expiry.
            ("its expiry a superscript", path, {**query, "exp": "\u00b2"}),
            ("its expiry in Arabic-Indic digits", path,
             {**query, "exp": query["exp"].translate(ARABIC_INDIC)}),
        ):
            reply = await call(client, "GET", target, params=params)
            assert reply.status == 401, (what, reply.text)
            assert_error(reply, 401, "bad_link")
    # Made for the clerk before their token was revoked: it dies with the token.
    stale, _ = links.sign(court.path(gets[0]), f"participant:{court.revoked_id}")
    assert "revoked" in assert_error(await call(client, "GET", stale), 403,
                                     "access_denied")["message"]
    # A link is asked for with a credential and for a path of that hearing only.
    assert_error(await link(client, world.judge_token,
                            f"{API}/hearings/{court.other_hearing}/transcript"), 403)
    for path in (f"{API}/hearings/{court.other_hearing}/transcript", f"{API}/courts",
                 f"{API}/hearings/{world.hearing_id}/transcript?x=1",
                 f"{API}/hearings/{world.hearing_id}/../../courts"):
        reply = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/links",
                           headers=bearer(world.judge_token), json={"path": path})
        assert assert_error(reply, 422, "invalid")["field"] == "path", path
    await db_state.assert_unchanged(before, "signed links")


async def test_links_are_made_only_for_a_file_their_holder_may_open(
    client: TestClient, court: Court, db_state: DatabaseState, clock: FakeClock,
) -> None:
    """A link is refused when it asks for what its holder could not open (the recordings, for
    an observer the judge has not permitted), for a path no file of the hearing is at, or for a
    path that reads otherwise once normalised; a link opens nothing but a GET."""
    clock.now = IN_WINDOW
    world = court.world
    hearing = f"{API}/hearings/{world.hearing_id}"
    media = f"{hearing}/recordings/{court.recording_id}/media"
    before = await db_state.snapshot()
    refused = await link(client, court.observer_token, media)
    assert "review" in assert_error(refused, 403, "access_denied")["message"]
    assert (await link(client, court.observer_token, f"{hearing}/exhibits")).status == 201
    for path in (
        f"{hearing}/transcript/",  # a trailing slash
        f"{hearing}//transcript",
        f"{hearing}/./transcript",
        f"{hearing}/%2e%2e/{court.other_hearing}/transcript",
        f"{hearing}/exhibits/..",
        f"{hearing}/exhibits/%2Fetc",
        f"{hearing}/exhibits/{court.exhibit_id}/pages/1\nadmin",  # splits the signed text
        f"{hearing}/exhibits/{court.exhibit_id}/pages/\u0661",
        f"{hearing}/exhibits/a b",
        f"{hearing}/exhibits\\..\\..",
        f"{hearing}/nothing-here",
        f"{hearing}/transcript/seal",  # a POST: a link opens GETs only
        f"{hearing}/participants",  # staff only: a link opens a participant's routes
    ):
        reply = await link(client, world.judge_token, path)
        error = assert_error(reply, 422, "invalid", field="path")
        assert "path" in error["message"], (path, error)
    await db_state.assert_unchanged(before, "links refused")
    # A valid link names a GET: with another method it is no credential at all.
    made = await link(client, world.judge_token,
                      f"{hearing}/transcript/{world.segment_id}/revisions")
    assert made.status == 201, made.text
    query = dict(parse_qsl(made.json["url"].partition("?")[2]))
    patched = await call(client, "PATCH", f"{hearing}/transcript/{world.segment_id}",
                         params=query, json={"text": "篡改"})
    assert_error(patched, 401, "unauthorized")
    async with client.head(made.json["url"]) as head:
        assert head.status == 405
    await db_state.assert_unchanged(before, "a link used to change the record")


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
    before = await db_state.settled()
    for action in ("admit", "remove", "mute", "unmute", "permit_review", "revoke_review",
                   "grant_consultation", "deny_consultation", "end_consultation"):
        for target in (party_b["id"], court.other_judge_token[:64], str(uuid.uuid4())):
            mark = len(judge_a.messages)
            await judge_a.send({"type": "command", "action": action, "participant_id": target})
            error = await judge_a.next_message("error", after=mark)
            assert error["code"] == "unknown_participant" and error["field"] == "participant_id"
    await db_state.assert_unchanged(before, "commands on another hearing's people")
    seat = next((s for s in await client.server.app[HUB].seats(uuid.UUID(b))
                 if s.participant_id == party_b["id"]), None)
    assert seat is not None and seat.admitted is False and seat.muted_by_court is False
    assert not [m for m in other.messages if m["type"] in ("admitted", "removed", "error")]

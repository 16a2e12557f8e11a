"""Staff sessions (web/api_session.py, courtrooms/staff.py): the staff pages hold a cookie the
server keeps the session behind, never the admin token; changes need the CSRF token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from config import Settings
from courtrooms.models import StaffAccount, StaffRole
from courtrooms.schemas import AuditQuery, StaffAccountIn
from courtrooms.secrets import digest
from tests.conftest import ADMIN_TOKEN, FakeClock
from tests.web.support import API, DatabaseState, World, assert_error, call
from web.app import DATABASE, create_app
from web.endpoints import STAFF_COOKIE
from web.keys import REGISTRY, STAFF_ACCOUNTS
from web.signin_limits import SIGN_IN_BURST, SignInLimits


async def sign_in(client: TestClient, token: str = ADMIN_TOKEN) -> Any:
    reply = await call(client, "POST", f"{API}/session", json={"token": token})
    assert reply.status == 201, reply.text
    return reply


def cookie(client: TestClient) -> str:
    [morsel] = [m for m in client.session.cookie_jar if m.key == STAFF_COOKIE]
    return morsel.value


async def audited(client: TestClient, action: str) -> list[Any]:
    events, _ = await client.server.app[REGISTRY].audit_events(AuditQuery(limit=200))
    return [e for e in events if e.action == action]


async def test_signing_in_sets_an_httponly_strict_cookie_and_keeps_only_its_hash(
    client: TestClient, settings: Settings
) -> None:
    reply = await sign_in(client)
    header = reply.headers["Set-Cookie"]
    attributes = {a.strip().split("=")[0].lower() for a in header.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes and "secure" not in attributes
    assert "SameSite=Strict" in header
    secret = cookie(client)
    assert ADMIN_TOKEN not in header and ADMIN_TOKEN not in reply.text
    body = reply.json
    assert body["actor"] == "admin" and len(body["csrf_token"]) >= 32
    assert body["idle_minutes"] == 30
    # The server keeps the secret's hash only.
    async with client.server.app[DATABASE].read() as db:
        rows = (await db.execute(sa.text("select id from staff_sessions"))).scalars().all()
    assert rows == [digest(secret)]
    [event] = await audited(client, "staff.signed_in")
    assert event.actor == "admin" and secret not in str(event.data)
    # The page learns the CSRF token back from the cookie alone.
    again = await call(client, "GET", f"{API}/session")
    assert again.status == 200 and again.json["csrf_token"] == body["csrf_token"]
    assert again.json["signed_in"] is True
    client.session.cookie_jar.clear()
    nobody = await call(client, "GET", f"{API}/session")
    assert nobody.status == 200 and nobody.json["signed_in"] is False
    assert nobody.json["csrf_token"] is None and nobody.json["ended"] is False


async def test_a_session_reads_freely_but_changes_only_with_its_csrf_token(
    client: TestClient, db_state: DatabaseState
) -> None:
    csrf = (await sign_in(client)).json["csrf_token"]
    listing = await call(client, "GET", f"{API}/courts")
    assert listing.status == 200, listing.text
    before = await db_state.snapshot()
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": csrf + "x"}):
        refused = await call(client, "POST", f"{API}/courts", headers=headers,
                             json={"name": "跨站请求法院"})
        assert "X-CSRF-Token" in assert_error(refused, 403, "csrf")["message"]
    await db_state.assert_unchanged(before, "changes without the CSRF token")
    made = await call(client, "POST", f"{API}/courts", headers={"X-CSRF-Token": csrf},
                      json={"name": "上海市第一中级人民法院"})
    assert made.status == 201, made.text
    # A bearer (an integration) needs no CSRF token: no browser sends it by itself.
    client.session.cookie_jar.clear()
    by_bearer = await call(client, "POST", f"{API}/courts", json={"name": "第二法院"},
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert by_bearer.status == 201, by_bearer.text


async def test_sessions_end_when_idle_at_their_lifetime_and_at_sign_out(
    client: TestClient, clock: FakeClock
) -> None:
    await sign_in(client)
    # Idle: 29 minutes between requests keep it; 30 without one end it.
    for _ in range(3):
        clock.advance(timedelta(minutes=29))
        assert (await call(client, "GET", f"{API}/courts")).status == 200
    clock.advance(timedelta(minutes=30))
    assert_error(await call(client, "GET", f"{API}/courts"), 401, "session_expired")

    # The lifetime: 12 hours after sign-in, however busy.
    client.session.cookie_jar.clear()
    await sign_in(client)
    for _ in range(12 * 60 // 25 + 1):
        clock.advance(timedelta(minutes=25))
        reply = await call(client, "GET", f"{API}/courts")
        if reply.status != 200:
            break
    assert_error(reply, 401, "session_expired")

    # Signing out ends it on the server: the cookie, kept and sent again, opens nothing.
    client.session.cookie_jar.clear()
    csrf = (await sign_in(client)).json["csrf_token"]
    kept = cookie(client)
    assert_error(await call(client, "DELETE", f"{API}/session"), 403, "csrf")
    out = await call(client, "DELETE", f"{API}/session", headers={"X-CSRF-Token": csrf})
    assert out.status == 204
    assert not [m for m in client.session.cookie_jar if m.key == STAFF_COOKIE and m.value]
    replayed = await call(client, "GET", f"{API}/courts",
                          headers={"Cookie": f"{STAFF_COOKIE}={kept}"})
    assert_error(replayed, 401, "session_expired")
    ended = await call(client, "GET", f"{API}/session",
                       headers={"Cookie": f"{STAFF_COOKIE}={kept}"})
    assert ended.json["signed_in"] is False and ended.json["ended"] is True
    assert ended.json["csrf_token"] is None
    [event] = await audited(client, "staff.signed_out")
    assert event.actor == "admin"


async def test_wrong_tokens_are_audited_and_a_guesser_is_stopped(
    client: TestClient, db_state: DatabaseState
) -> None:
    for n in range(5):
        reply = await call(client, "POST", f"{API}/session", json={"token": f"guess-{n}"})
        assert assert_error(reply, 401, "unauthorized")["field"] == "token"
        assert f"guess-{n}" not in reply.text
    # The sixth try is refused before the token is even compared: the right one too.
    for token in ("guess-5", ADMIN_TOKEN):
        blocked = await call(client, "POST", f"{API}/session", json={"token": token})
        assert_error(blocked, 429, "too_many_attempts")
        assert blocked.headers["Retry-After"] == "60"
    assert not [m for m in client.session.cookie_jar if m.key == STAFF_COOKIE]
    refusals = await audited(client, "staff.sign_in_refused")
    assert [e.data["reason"] for e in refusals] == ["wrong token"] * 5 + ["too many attempts"] * 2
    assert all("guess" not in str(e.data) for e in refusals)
    # Malformed sign-ins are refused as any body is, and name the problem.
    for body, code in (({}, "invalid"), ({"token": ""}, "invalid"), ({"token": 7}, "invalid"),
                       ({"token": "x", "user": "admin"}, "invalid")):
        assert_error(await call(client, "POST", f"{API}/session", json=body), 422, code)


async def test_the_cookie_is_secure_when_the_court_serves_https(
    aiohttp_client: Any, settings: Settings, clock: FakeClock
) -> None:
    https = settings.model_copy(update={"public_url": "https://court.example"})
    client = await aiohttp_client(create_app(https, clock=clock))
    header = (await sign_in(client)).headers["Set-Cookie"]
    assert "Secure" in header and "HttpOnly" in header


async def test_a_cross_site_request_changes_nothing_with_the_cookie(
    client: TestClient, world: World, db_state: DatabaseState
) -> None:
    """What another site (or a page's injected form) can send along with the cookie: no
    X-CSRF-Token, a simple content type, a method smuggled in a header or the query."""
    csrf = (await sign_in(client)).json["csrf_token"]
    hearing = f"{API}/hearings/{world.hearing_id}"
    before = await db_state.snapshot()
    for method, path, kwargs in (
        ("POST", f"{API}/courts", {"data": '{"name": "跨站"}',
                                   "headers": {"Content-Type": "text/plain"}}),
        ("POST", f"{API}/courts", {"data": {"name": "跨站"}}),  # a form
        ("PATCH", f"{hearing}/transcript/{world.segment_id}", {"json": {"text": "篡改"}}),
        ("POST", f"{hearing}/transcript/seal", {}),
        ("POST", f"{hearing}/links", {"json": {"path": f"{hearing}/transcript"}}),
        ("DELETE", f"{API}/session", {}),
    ):
        reply = await call(client, method, path, **kwargs)
        assert_error(reply, 403, "csrf")
    for override in ("X-HTTP-Method-Override", "X-Method-Override"):
        listed = await call(client, "GET", f"{API}/courts", headers={override: "POST"})
        assert listed.status == 200 and listed.json["total"] == 1, listed.text
    smuggled = await call(client, "GET", f"{API}/courts", params={"_method": "POST"})
    assert_error(smuggled, 422, "invalid", field="_method")
    for method in ("HEAD", "OPTIONS", "TRACE"):
        async with client.request(method, f"{API}/courts") as reply:
            assert reply.status == 405, method
    await db_state.assert_unchanged(before, "cross-site requests")
    # The session still works, and the CSRF token of another session is not its own.
    client.session.cookie_jar.clear()
    await sign_in(client)
    stale = await call(client, "POST", f"{API}/courts", headers={"X-CSRF-Token": csrf},
                       json={"name": "跨站"})
    assert_error(stale, 403, "csrf")


async def test_the_credential_sent_decides_and_never_adds_to_the_cookie(
    client: TestClient, world: World
) -> None:
    """A participant's bearer beside a staff cookie calls as the participant: staff routes
    refuse it, and their own routes need no CSRF token (a browser never adds the header)."""
    await sign_in(client)
    judge = {"Authorization": f"Bearer {world.judge_token}"}
    assert_error(await call(client, "GET", f"{API}/courts", headers=judge), 401,
                 "unauthorized")
    assert_error(await call(client, "POST", f"{API}/courts", headers=judge,
                            json={"name": "越权"}), 401, "unauthorized")
    edited = await call(client, "PATCH",
                        f"{API}/hearings/{world.hearing_id}/transcript/{world.segment_id}",
                        headers=judge, json={"text": "现在开庭。"})
    assert edited.status == 200 and edited.json["participant"], edited.text


async def test_a_cookie_chosen_before_sign_in_is_replaced(
    client: TestClient, db_state: DatabaseState
) -> None:
    """Session fixation: the secret is the server's, whatever the browser held before."""
    planted = "attacker-chosen-" + "A" * 27
    signed = await call(client, "POST", f"{API}/session", json={"token": ADMIN_TOKEN},
                        headers={"Cookie": f"{STAFF_COOKIE}={planted}"})
    assert signed.status == 201, signed.text
    assert signed.headers["Set-Cookie"].startswith(f"{STAFF_COOKIE}=")
    assert cookie(client) != planted and planted not in signed.headers["Set-Cookie"]
    client.session.cookie_jar.clear()
    assert_error(await call(client, "GET", f"{API}/courts",
                            headers={"Cookie": f"{STAFF_COOKIE}={planted}"}),
                 401, "session_expired")


async def test_odd_cookies_and_signing_out_without_one_are_refused_cleanly(
    client: TestClient, db_state: DatabaseState
) -> None:
    before = await db_state.snapshot()
    assert_error(await call(client, "DELETE", f"{API}/session"), 401, "unauthorized")
    for value in ("a" * 7000, "审判长".encode().decode("latin-1"), '"quoted"', "x;y"):
        reply = await call(client, "GET", f"{API}/courts",
                           headers={"Cookie": f"{STAFF_COOKIE}={value}"})
        assert_error(reply, 401)
        assert value not in reply.text
        # Signing out of a cookie that holds no session only clears the cookie.
        out = await call(client, "DELETE", f"{API}/session",
                         headers={"Cookie": f"{STAFF_COOKIE}={value}"})
        assert out.status == 204, out.text
        assert f"{STAFF_COOKIE}=\"\"" in out.headers["Set-Cookie"], out.headers["Set-Cookie"]
    await db_state.assert_unchanged(before, "odd cookies")
    assert not await audited(client, "staff.signed_out")


async def test_a_link_made_in_a_session_closes_with_it(
    client: TestClient, world: World, admin: dict[str, str]
) -> None:
    """A signed link stands for the session it was made in: signing out closes it."""
    csrf = (await sign_in(client)).json["csrf_token"]
    kept = cookie(client)
    transcript = f"{API}/hearings/{world.hearing_id}/transcript"
    made = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/links",
                      headers={"X-CSRF-Token": csrf}, json={"path": transcript})
    assert made.status == 201, made.text
    url = made.json["url"]
    assert kept not in url
    client.session.cookie_jar.clear()
    assert (await call(client, "GET", url)).status == 200
    out = await call(client, "DELETE", f"{API}/session",
                     headers={"X-CSRF-Token": csrf, "Cookie": f"{STAFF_COOKIE}={kept}"})
    assert out.status == 204
    closed = await call(client, "GET", url)
    assert "session" in assert_error(closed, 401, "session_expired")["message"]
    # One made with the admin token (an integration) stands for that token.
    by_token = await call(client, "POST", f"{API}/hearings/{world.hearing_id}/links",
                          headers=admin, json={"path": transcript})
    assert by_token.status == 201, by_token.text
    assert (await call(client, "GET", by_token.json["url"])).status == 200


def test_one_guesser_on_ipv6_is_one_address() -> None:
    """A host holds a whole /64: each address in it does not get its own five guesses."""
    limits = SignInLimits()
    for n in range(SIGN_IN_BURST):
        limits.failed(f"2001:db8:1:2::{n + 1:x}")
    assert limits.blocked("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert not limits.blocked("2001:db8:1:3::1")
    for _ in range(SIGN_IN_BURST):
        limits.failed("198.51.100.7")
    assert limits.blocked("::ffff:198.51.100.7") and limits.blocked("198.51.100.7")
    assert not limits.blocked("198.51.100.8")
    assert not limits.blocked("unknown")


async def test_signing_out_of_an_ended_session_clears_its_cookie_and_signing_in_again_ends_the_old(
    client: TestClient, clock: FakeClock
) -> None:
    # Idle too long: signing out still works, and leaves no cookie behind.
    await sign_in(client)
    clock.advance(timedelta(hours=1))
    out = await call(client, "DELETE", f"{API}/session")
    assert out.status == 204, out.text
    assert not [m for m in client.session.cookie_jar if m.key == STAFF_COOKIE and m.value]
    # Signing in again in a browser that holds a live session ends that session first.
    await sign_in(client)
    first = cookie(client)
    await sign_in(client)
    assert cookie(client) != first
    assert (await call(client, "GET", f"{API}/courts")).status == 200
    client.session.cookie_jar.clear()
    replayed = await call(client, "GET", f"{API}/courts",
                          headers={"Cookie": f"{STAFF_COOKIE}={first}"})
    assert_error(replayed, 401, "session_expired")


async def test_the_court_s_proxy_names_the_client_and_nobody_else_does(
    aiohttp_client: Any, client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    """Behind the court's reverse proxy every sign-in comes from the proxy's address: the
    limiter and the audit must see the client it names; a client naming itself is ignored."""
    wrong = {"token": "guess"}
    # No trusted proxy (the default): X-Forwarded-For is whatever the client says, ignored.
    for n in range(5):
        await call(client, "POST", f"{API}/session", json=wrong,
                   headers={"X-Forwarded-For": f"198.51.100.{n}"})
    spoofed = await call(client, "POST", f"{API}/session", json=wrong,
                         headers={"X-Forwarded-For": "198.51.100.99"})
    assert_error(spoofed, 429, "too_many_attempts")
    header = (await sign_in_as(aiohttp_client, settings, clock, {"X-Forwarded-Proto": "https"},
                               trusted=False))
    assert "Secure" not in header

    # The court's proxy on 127.0.0.1: the client it names is limited, others are not.
    behind = await aiohttp_client(create_app(
        settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]}), clock=clock))
    guesser = {"X-Forwarded-For": "203.0.113.5"}
    earlier = len(await audited(behind, "staff.sign_in_refused"))  # (one database for both)
    for _ in range(5):
        await call(behind, "POST", f"{API}/session", json=wrong, headers=guesser)
    assert_error(await call(behind, "POST", f"{API}/session", json=wrong, headers=guesser),
                 429, "too_many_attempts")
    # A client behind the proxy that prepends its own X-Forwarded-For gains nothing.
    forged = {"X-Forwarded-For": "192.0.2.1, 203.0.113.5"}
    assert_error(await call(behind, "POST", f"{API}/session", json=wrong, headers=forged),
                 429, "too_many_attempts")
    other = await call(behind, "POST", f"{API}/session", json=wrong,
                       headers={"X-Forwarded-For": "203.0.113.6"})
    assert_error(other, 401, "unauthorized")
    refused = (await audited(behind, "staff.sign_in_refused"))[earlier:]
    assert {e.data["address"] for e in refused} == {"203.0.113.5", "203.0.113.6"}
    header = await sign_in_as(aiohttp_client, settings, clock, {"X-Forwarded-Proto": "https"},
                              trusted=True)
    assert "Secure" in header


async def sign_in_as(aiohttp_client: Any, settings: Settings, clock: FakeClock,
                     headers: dict[str, str], *, trusted: bool) -> str:
    app = create_app(settings.model_copy(
        update={"trusted_proxies": ["127.0.0.1"] if trusted else []}), clock=clock)
    fresh = await aiohttp_client(app)
    reply = await call(fresh, "POST", f"{API}/session", json={"token": ADMIN_TOKEN},
                       headers=headers)
    assert reply.status == 201, reply.text
    return str(reply.headers["Set-Cookie"])


# -- accounts (issue 19) ------------------------------------------------------------------------

PASSWORD = "审判员的密码 0123"


async def add_account(client: TestClient, login: str = "wang.fang", name: str = "王芳",
                      roles: tuple[StaffRole, ...] = (StaffRole.JUDGE,)) -> StaffAccount:
    return await client.server.app[STAFF_ACCOUNTS].add(
        StaffAccountIn(name=name, login=login, roles=list(roles)), PASSWORD, "clerk:test")


async def sign_in_with(client: TestClient, login: str, password: str = PASSWORD,
                       **headers: str) -> Any:
    return await call(client, "POST", f"{API}/session",
                      json={"login": login, "password": password}, headers=headers)


async def test_staff_sign_in_with_their_login_and_act_as_their_account(
    client: TestClient
) -> None:
    account = await add_account(client, roles=(StaffRole.ADMINISTRATOR, StaffRole.SUPERVISOR))
    reply = await sign_in_with(client, "Wang.Fang")  # the login's case does not matter
    assert reply.status == 201, reply.text
    assert "HttpOnly" in reply.headers["Set-Cookie"] and "SameSite=Strict" in \
        reply.headers["Set-Cookie"]
    body = reply.json
    assert body["actor"] == f"account:{account.id}"
    assert body["account"] == {"id": str(account.id), "name": "王芳", "login": "wang.fang",
                               "court_id": None, "roles": ["administrator", "supervisor"],
                               "disabled": False}
    assert PASSWORD not in reply.text
    again = await call(client, "GET", f"{API}/session")
    assert again.json["account"]["name"] == "王芳" and again.json["signed_in"] is True
    # What the session does is audited as the account's, the sign-in naming the person.
    made = await call(client, "POST", f"{API}/courts", json={"name": "朝阳区人民法院"},
                      headers={"X-CSRF-Token": body["csrf_token"]})
    assert made.status == 201, made.text
    [signed] = await audited(client, "staff.signed_in")
    assert signed.actor == f"account:{account.id}"
    assert signed.data["login"] == "wang.fang" and signed.data["name"] == "王芳"
    [created] = await audited(client, "court.created")
    assert created.actor == f"account:{account.id}"


async def test_a_wrong_password_is_refused_audited_and_counted(client: TestClient) -> None:
    account = await add_account(client)
    for login, password in (("wang.fang", "not the password"), ("nobody", PASSWORD),
                            ("wang.fang", PASSWORD + "x")):
        reply = await sign_in_with(client, login, password)
        error = assert_error(reply, 401, "unauthorized")
        assert error["message"] == "that login and password do not open an account"
        assert password not in reply.text
    refusals = await audited(client, "staff.sign_in_refused")
    assert [(e.data["reason"], e.data.get("account_id")) for e in refusals] == [
        ("wrong password", str(account.id)), ("unknown login", None),
        ("wrong password", str(account.id))]
    assert all(PASSWORD not in str(e.data) and "not the password" not in str(e.data)
               for e in refusals)
    # Five wrong tries from an address, then even the right password waits.
    for _ in range(2):
        await sign_in_with(client, "wang.fang", "still not it")
    blocked = await sign_in_with(client, "wang.fang")
    assert_error(blocked, 429, "too_many_attempts")
    assert not [m for m in client.session.cookie_jar if m.key == STAFF_COOKIE]
    async with client.server.app[DATABASE].read() as db:
        assert not (await db.execute(sa.text("select id from staff_sessions"))).all()
    # Half a sign-in names the problem.
    for half in ({"login": "wang.fang"}, {"password": PASSWORD},
                 {"login": "wang.fang", "password": PASSWORD, "token": ADMIN_TOKEN}):
        assert_error(await call(client, "POST", f"{API}/session", json=half), 422, "invalid")


async def test_a_disabled_account_s_open_session_is_refused_at_its_next_request(
    client: TestClient
) -> None:
    await add_account(client)
    csrf = (await sign_in_with(client, "wang.fang")).json["csrf_token"]
    assert (await call(client, "GET", f"{API}/courts")).status == 200
    await client.server.app[STAFF_ACCOUNTS].disable("wang.fang", "clerk:test")
    assert_error(await call(client, "GET", f"{API}/courts"), 401, "session_expired")
    assert_error(await call(client, "POST", f"{API}/courts", json={"name": "停用之后"},
                            headers={"X-CSRF-Token": csrf}), 401, "session_expired")
    ended = await call(client, "GET", f"{API}/session")
    assert ended.json["signed_in"] is False and ended.json["ended"] is True
    # Nor can it sign in again, with the right password.
    assert_error(await sign_in_with(client, "wang.fang"), 401, "unauthorized")
    [refused] = await audited(client, "staff.sign_in_refused")
    assert refused.data["reason"] == "account disabled"


async def test_signing_out_everywhere_ends_every_session_of_the_account_only(
    client: TestClient
) -> None:
    await add_account(client)
    await add_account(client, "li.ming", "李明", (StaffRole.CLERK,))
    browsers = []
    for _ in range(3):
        client.session.cookie_jar.clear()
        csrf = (await sign_in_with(client, "wang.fang")).json["csrf_token"]
        browsers.append({"Cookie": f"{STAFF_COOKIE}={cookie(client)}", "X-CSRF-Token": csrf})
    client.session.cookie_jar.clear()
    await sign_in_with(client, "li.ming")
    someone_else = {"Cookie": f"{STAFF_COOKIE}={cookie(client)}"}
    client.session.cookie_jar.clear()

    forged = {**browsers[0], "X-CSRF-Token": "forged"}
    assert_error(await call(client, "DELETE", f"{API}/session/everywhere", headers=forged),
                 403, "csrf")
    out = await call(client, "DELETE", f"{API}/session/everywhere", headers=browsers[1])
    assert out.status == 204, out.text
    assert f"{STAFF_COOKIE}=\"\"" in out.headers["Set-Cookie"]
    for headers in browsers:
        assert_error(await call(client, "GET", f"{API}/courts", headers=headers), 401,
                     "session_expired")
    assert (await call(client, "GET", f"{API}/courts", headers=someone_else)).status == 200
    [event] = await audited(client, "staff.signed_out_everywhere")
    assert event.data["sessions_ended"] == 3
    assert_error(await call(client, "DELETE", f"{API}/session/everywhere"), 401,
                 "unauthorized")


async def test_the_admin_token_signs_in_only_until_an_administrator_exists(
    client: TestClient, admin: dict[str, str]
) -> None:
    """The token sets the server up; once an administrator has an account, people sign in
    with theirs. As a bearer (integrations) it still works."""
    await add_account(client)  # a judge is not an administrator
    assert (await sign_in(client)).json["account"] is None
    client.session.cookie_jar.clear()
    await add_account(client, "root", "管理员", (StaffRole.ADMINISTRATOR,))
    refused = await call(client, "POST", f"{API}/session", json={"token": ADMIN_TOKEN})
    assert_error(refused, 403, "token_sign_in_off")
    assert not [m for m in client.session.cookie_jar if m.key == STAFF_COOKIE]
    assert (await call(client, "GET", f"{API}/courts", headers=admin)).status == 200
    assert (await sign_in_with(client, "root")).status == 201
    # A disabled administrator is none: the token opens the server again, to repair it.
    await client.server.app[STAFF_ACCOUNTS].disable("root", "clerk:test")
    client.session.cookie_jar.clear()
    assert (await sign_in(client)).status == 201

"""Staff sign-in under /api/v1/session, and signed links for what a page cannot send a header
with (players, images, downloads).

Staff sign in with their account's login and password, which opens a server-side session
whose secret rides in an HttpOnly, SameSite=Strict cookie (Secure under https); state-changing
requests also carry the session's CSRF token, which the page reads from GET /session. The
admin token opens a session only until an administrator account exists (it sets the server
up); as a bearer it stays the integrations' credential.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import web

from courtrooms.access import Permission
from courtrooms.errors import SignInRefused
from courtrooms.models import StaffAccount
from courtrooms.schemas import (
    LinkOut,
    LinkRequest,
    SignIn,
    StaffAccountOut,
    StaffSessionOut,
)
from courtrooms.staff import SignedIn
from web.clients import client_address, over_https
from web.endpoints import (
    ADMIN_ACTOR,
    API_PREFIX,
    CALLER,
    STAFF_COOKIE,
    EndpointTable,
    admit,
    body,
    is_admin_token,
    link_holder,
    linkable,
    path_id,
    respond,
    staff_session,
)
from web.errors import ApiError
from web.keys import LINKS, SETTINGS, SIGN_IN_LIMITS, STAFF_ACCOUNTS, STAFF_SESSIONS

routes = EndpointTable(API_PREFIX)
# What a link may name: segments of RFC 3986's unreserved characters, none starting with a dot.
# The path signed is then the one the browser sends and the router matches, character for
# character: nothing for either to decode or normalise differently (%2e%2e, //, a trailing
# slash), and no newline to split the signed text at.
LINK_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


def _address(request: web.Request) -> str:
    return client_address(request)


async def _session_out(request: web.Request, signed_in: SignedIn) -> StaffSessionOut:
    sessions = request.app[STAFF_SESSIONS]
    account = None
    if signed_in.account_id is not None:
        found = await request.app[STAFF_ACCOUNTS].get(signed_in.account_id)
        account = StaffAccountOut.model_validate(found)
    return StaffSessionOut(signed_in=True, actor=signed_in.actor, account=account,
                           csrf_token=signed_in.csrf,
                           idle_minutes=sessions.idle.total_seconds() / 60,
                           expires_at=signed_in.expires_at)


async def _signs_in(request: web.Request, given: SignIn, address: str) -> StaffAccount | None:
    """The account the sign-in opens (None: the admin token's), or the refusal, audited."""
    limits = request.app[SIGN_IN_LIMITS]
    sessions = request.app[STAFF_SESSIONS]
    accounts = request.app[STAFF_ACCOUNTS]
    if given.token is not None:
        if not is_admin_token(request, given.token):
            limits.failed(address)
            await sessions.refused(address, "wrong token")
            raise ApiError(401, "unauthorized", "that token is not valid", field="token")
        if await accounts.has_administrator():
            await sessions.refused(address, "admin token sign-in is off")
            raise ApiError(403, "token_sign_in_off", "an administrator account exists: staff "
                           "sign in with their login and password (the admin token remains "
                           "the API's bearer)", field="token")
        return None
    assert given.login is not None and given.password is not None  # SignIn's validator
    try:
        return await accounts.authenticate(given.login, given.password)
    except SignInRefused as e:
        limits.failed(address)
        await sessions.refused(address, e.details["reason"],
                               **{k: v for k, v in e.details.items() if k == "account_id"})
        raise ApiError(401, "unauthorized", "that login and password do not open an account",
                       field="password") from None


@routes.route("POST", "/session", auth="none", body=SignIn, response=StaffSessionOut,
              status=201, errors=(401, 403, 429),
              summary="Sign staff in: the session rides in an HttpOnly cookie", tag="session")
async def sign_in(request: web.Request) -> web.Response:
    limits = request.app[SIGN_IN_LIMITS]
    address = _address(request)
    sessions = request.app[STAFF_SESSIONS]
    given = await body(request, SignIn)
    if limits.blocked(address):
        await sessions.refused(address, "too many attempts")
        raise ApiError(429, "too_many_attempts", "too many failed sign-ins from this address; "
                       "wait a minute and try again", headers={"Retry-After": "60"})
    account = await _signs_in(request, given, address)
    # Signing in again in this browser ends the session it had: one session per browser.
    previous = request.cookies.get(STAFF_COOKIE)
    still = await sessions.find(previous) if previous else None
    if still is not None:
        await sessions.end(still, address)
    if account is None:
        secret, signed_in = await sessions.open(ADMIN_ACTOR, address)
    else:
        secret, signed_in = await sessions.open(account.actor, address, account)
    response = respond(await _session_out(request, signed_in), status=201)
    public = request.app[SETTINGS].public_url or ""
    response.set_cookie(STAFF_COOKIE, secret, httponly=True, samesite="Strict",
                        secure=over_https(request) or public.startswith("https://"),
                        path="/",
                        max_age=int(sessions.lifetime.total_seconds()))
    return response


@routes.route("GET", "/session", auth="none", response=StaffSessionOut,
              summary="Whether this browser is signed in (and its session's CSRF token)",
              tag="session")
async def current_session(request: web.Request) -> web.Response:
    # Answered to anyone (a page asks before it knows): what it says is the cookie's own.
    try:
        signed_in = await staff_session(request)
    except ApiError:
        return respond(StaffSessionOut(signed_in=False, ended=True))
    if signed_in is None:
        return respond(StaffSessionOut(signed_in=False))
    return respond(await _session_out(request, signed_in))


@routes.route("DELETE", "/session", auth="none", status=204, errors=(401, 403),
              summary="Sign out: the session ends on the server and the cookie is cleared",
              tag="session")
async def sign_out(request: web.Request) -> web.Response:
    if STAFF_COOKIE not in request.cookies:
        raise ApiError(401, "unauthorized", "not signed in (no staff session cookie)")
    try:
        signed_in = await staff_session(request)  # a live one needs its CSRF token
    except ApiError as e:
        if e.code != "session_expired":
            raise
        signed_in = None  # already over: only the cookie is left to clear
    if signed_in is not None:
        await request.app[STAFF_SESSIONS].end(signed_in, _address(request))
    response = web.Response(status=204)
    response.del_cookie(STAFF_COOKIE, path="/")
    return response


@routes.route("DELETE", "/session/everywhere", auth="none", status=204, errors=(401, 403),
              summary="Sign out everywhere: every session of the account signed in ends, this "
                      "one too", tag="session")
async def sign_out_everywhere(request: web.Request) -> web.Response:
    signed_in = await staff_session(request)  # a live one, with its CSRF token
    if signed_in is None:
        raise ApiError(401, "unauthorized", "not signed in (no staff session cookie)")
    await request.app[STAFF_SESSIONS].end_everywhere(signed_in, _address(request))
    response = web.Response(status=204)
    response.del_cookie(STAFF_COOKIE, path="/")
    return response


@routes.route("POST", "/hearings/{id}/links", auth="participant", body=LinkRequest,
              staff=Permission.SEE,
              response=LinkOut, status=201, errors=(401, 403, 404, 422),
              summary="A short-lived signed link to one of the hearing's files, for a player, "
                      "an image or a download (which cannot send a header)", tag="session")
async def make_link(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    wanted = (await body(request, LinkRequest)).path
    prefix = f"{API_PREFIX}/hearings/{hearing_id}/"
    if not wanted.startswith(prefix) or not LINK_PATH.fullmatch(wanted):
        raise ApiError(422, "invalid", f"a link opens a path under {prefix}, without a query, "
                       "its segments letters, digits and -._~ (none empty or a dot segment)",
                       field="path")
    target = linkable(request, wanted)
    if target is None:
        raise ApiError(422, "invalid", f"nothing a link opens is at path {wanted} (a file, "
                       "a list or the record of the hearing that its participants GET)",
                       field="path")
    caller = request[CALLER]
    if caller.participant is not None:  # refused now rather than when opened
        admit(request, caller.participant, target.auth, target.roles)
    url, expires = request.app[LINKS].sign(wanted, link_holder(caller))
    return respond(LinkOut(url=url, expires_at=datetime.fromtimestamp(expires, UTC)),
                   status=201)

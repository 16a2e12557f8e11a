"""The endpoint table: each route's auth, body, query and response, for routing and OpenAPI.

The table resolves who calls before a handler runs, from the credential the route declares, and
hands the handler a `Caller` (`request[CALLER]`): a handler never checks credentials itself.
Every route that staff may call names the `Permission` it needs (`staff=`); a staff account
without a role granting it, or on a hearing outside its reach (another court's, another
judge's), is refused with 403 `not_permitted` before the handler runs (courtrooms/access.py).
"""

from __future__ import annotations

import functools
import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from courtrooms import access
from courtrooms.access import ADMIN, Permission, StaffMember
from courtrooms.models import Participant, Role
from courtrooms.staff import SESSION_REF, SignedIn
from courtrooms.tokens import is_api_token
from web.errors import ApiError, validation_error
from web.keys import (
    ADMIN_TOKEN,
    API_TOKENS,
    LINKS,
    RECORDINGS,
    REGISTRY,
    SETTINGS,
    STAFF_ACCOUNTS,
    STAFF_SESSIONS,
)
from web.links import PARAMS as LINK_PARAMS
from web.links import BadLink

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024
ADMIN_ACTOR = "admin"
# Who may call a route:
# "admin": staff: an integration's API token as a bearer (only with a scope granting the route's
#   `staff` permission), a staff session's cookie (the staff pages; a state-changing request
#   also carries the session's X-CSRF-Token; an account's session only with a role granting
#   the permission), or the admin token as a bearer (refused once an administrator account
#   exists, unless `keep_admin_token`).
# "device": a prison terminal's `Authorization: Device <key>` (the key is checked by the look-up
#   the route makes with it: a terminal's assignment).
# "review": staff, or the join token of a participant of the path's hearing allowed to review
#   its recordings (as a bearer or, for a <video> element, a signed link made for them).
# "participant": staff, or the join token of any participant of the path's hearing (not
#   revoked; at any time), passed the same two ways.
# "none": anyone.
# No credential is ever taken from a URL: a `?token=` is refused, a signed link (web/links.py)
# stands in for it.
Auth = Literal["admin", "device", "review", "participant", "none"]
B = TypeVar("B", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Caller:
    """Who called, as the table resolved them: `actor` is how the audit trail names them."""

    actor: str
    # The participant of the path's hearing, when one called with their join token.
    participant: Participant | None = None
    # A prison terminal's key, on a "device" route.
    device_key: str | None = None
    # The staff session, when staff called with its cookie (a link made then names it).
    session: SignedIn | None = None
    # Staff: what their account may do (courtrooms/access.py); the admin token may do all.
    staff: StaffMember | None = None


CALLER = web.RequestKey("caller", Caller)
STAFF = Caller(actor=ADMIN_ACTOR, staff=ADMIN)
ANYONE = Caller(actor="anonymous")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "admin"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    # Media types of a raw (not JSON) request body, and of a file answered instead of JSON.
    raw_body: tuple[str, ...] = ()
    raw_response: tuple[str, ...] = ()
    # On "review" and "participant" routes: the roles a participant must have.
    roles: frozenset[Role] = frozenset()
    # What staff need to call it (every route staff may call names one).
    staff: Permission | None = None

    @property
    def on_hearing(self) -> bool:
        """Whether its {id} is a hearing's, whose reach a staff account must have."""
        return self.path.startswith(f"{API_PREFIX}/hearings/{{id}}")


@dataclass
class EndpointTable:
    prefix: str
    endpoints: list[Endpoint] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: Auth = "admin",
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        raw_body: tuple[str, ...] = (),
        raw_response: tuple[str, ...] = (),
        roles: Collection[Role] = (),
        staff: Permission | None = None,
    ) -> Callable[[Handler], Handler]:
        if auth in ("review", "participant") and "{id}" not in path:
            raise ValueError(f"{method} {path}: a {auth!r} route names its hearing as {{id}}")
        if roles and auth not in ("review", "participant"):
            raise ValueError(f"{method} {path}: roles are a participant's, not {auth!r}'s")
        if (staff is None) != (auth in ("none", "device")):
            raise ValueError(f"{method} {path}: a route staff may call ({auth!r}) names the "
                             "permission staff need, and only such a route")
        needed = frozenset(roles)

        def register(handler: Handler) -> Handler:
            endpoint: Endpoint

            @functools.wraps(handler)
            async def guarded(request: web.Request) -> web.StreamResponse:
                caller = await resolve_caller(request, auth, needed)
                if caller.staff is not None:
                    if caller.staff.token:
                        await admin_token_on(request)
                    await authorize(request, caller.staff, endpoint)
                request[CALLER] = caller
                return await handler(request)

            endpoint = Endpoint(
                method, self.prefix + path, guarded, summary, tag, auth, body, query,
                response, status, errors, raw_body, raw_response, needed, staff,
            )
            self.endpoints.append(endpoint)
            return handler

        return register

    def include(self, other: EndpointTable) -> None:
        """Serve `other`'s endpoints too, after those already here (routes match in order)."""
        if other.prefix != self.prefix:
            raise ValueError(f"{other.prefix} is not under {self.prefix}")
        self.endpoints.extend(other.endpoints)

    def add_to(self, app: web.Application) -> None:
        app[ENDPOINTS] = self
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)


# The table the app serves, for what a signed link may name.
ENDPOINTS = web.AppKey("endpoints", EndpointTable)


def bearer(request: web.Request, scheme: str = "Bearer") -> str | None:
    header = request.headers.get("Authorization", "")
    given_scheme, _, credential = header.partition(" ")
    if given_scheme.lower() != scheme.lower() or not credential.strip():
        return None
    return credential.strip()


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tingshen"'}
STAFF_COOKIE = "tingshen_staff"
CSRF_HEADER = "X-CSRF-Token"
DEVICE_CHALLENGE = {"WWW-Authenticate": 'Device realm="tingshen"'}


def is_admin_token(request: web.Request, token: str) -> bool:
    expected = request.app[ADMIN_TOKEN]
    return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected.encode())


async def admin_token_on(request: web.Request) -> None:
    """Refuse the admin token (as a bearer, a session opened with it, or a link made with it)
    once an administrator account exists, unless the settings keep it: it only sets the
    server up, and integrations have API tokens of their own."""
    if request.app[SETTINGS].keep_admin_token:
        return
    if await request.app[STAFF_ACCOUNTS].has_administrator():
        raise ApiError(401, "admin_token_off",
                       "an administrator account exists, so the admin token is off (it only "
                       "sets the server up; the keep_admin_token setting keeps it): staff sign "
                       "in with their account, integrations use an API token (POST "
                       "/api/v1/tokens, or `tingshen token add`)", headers=CHALLENGE)


async def bearer_caller(request: web.Request, token: str) -> Caller | None:
    """Staff calling with a bearer: the admin token or an integration's API token (not
    revoked); None when it is neither."""
    if is_admin_token(request, token):
        return STAFF
    if not is_api_token(token):  # a join token: no look-up among API tokens
        return None
    holder = await request.app[API_TOKENS].find(token)
    if holder is None:
        return None
    return Caller(actor=holder.actor, staff=holder.member)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def staff_session(request: web.Request) -> SignedIn | None:
    """The staff session behind the request's cookie, if it has a live one. A state-changing
    request must also carry the session's CSRF token (another site's form cannot)."""
    secret = request.cookies.get(STAFF_COOKIE)
    if not secret:
        return None
    signed_in = await request.app[STAFF_SESSIONS].find(secret)
    if signed_in is None:
        raise ApiError(401, "session_expired",
                       "the staff session has ended (signed out, idle or expired); sign in "
                       "again", headers=CHALLENGE)
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                   signed_in.csrf.encode()):
            raise ApiError(403, "csrf", f"a staff session's {request.method} needs its "
                           f"{CSRF_HEADER} header")
    return signed_in


async def resolve_caller(request: web.Request, auth: Auth, roles: frozenset[Role]) -> Caller:
    """Who calls, if the route's `auth` lets them; else a 401 (no or wrong credential) or 403."""
    if auth == "none":
        return ANYONE
    if "token" in request.query:
        raise ApiError(401, "token_in_url", "credentials are not accepted in URLs: send an "
                       "Authorization header, or open a signed link (POST /api/v1/hearings/"
                       "{id}/links)", field="token", headers=CHALLENGE)
    if auth == "device":
        key = bearer(request, "Device")
        if key is None:
            raise ApiError(401, "unauthorized",
                           "an Authorization: Device <key> header is required",
                           headers=DEVICE_CHALLENGE)
        return Caller(actor="device", device_key=key)
    token = bearer(request)
    if token is not None:
        staff = await bearer_caller(request, token)
        if staff is not None:
            return staff
    else:
        signed_in = await staff_session(request)
        if signed_in is not None:
            return Caller(actor=signed_in.actor, session=signed_in, staff=signed_in.member)
    if auth == "admin":
        raise ApiError(401, "unauthorized",
                       "the bearer token is not valid (unknown, or a revoked API token)"
                       if token is not None
                       else "sign in, or send an Authorization: Bearer token",
                       headers=CHALLENGE)
    hearing_id = path_id(request)
    if token is not None:
        person = await request.app[RECORDINGS].holder(hearing_id, token)
    else:
        linked = await _link_holder(request, hearing_id)
        if isinstance(linked, Caller):
            return linked
        person = linked
    return admit(request, person, auth, roles)


async def authorize(request: web.Request, member: StaffMember, endpoint: Endpoint) -> None:
    """Refuse (403 not_permitted) a staff account without a role granting the endpoint's
    permission, or whose reach does not cover the path's hearing."""
    if member.token or endpoint.staff is None:
        return
    scope = None
    if endpoint.on_hearing:
        scope = await request.app[REGISTRY].hearing_scope(path_id(request))
    access.check(member, endpoint.staff, scope)


def staff_member(request: web.Request) -> StaffMember:
    """The member of staff calling (on a route only staff call)."""
    member = request[CALLER].staff
    if member is None:
        raise ApiError(403, "not_permitted", "only staff do this")
    return member


def admit(request: web.Request, person: Participant, auth: Auth, roles: frozenset[Role]
          ) -> Caller:
    """`person` as the caller of a "review" or "participant" route, if they may call it."""
    if auth == "review":
        request.app[RECORDINGS].check_review(person)
    if roles and person.role not in roles:
        names = " or ".join(r.value for r in Role if r in roles)
        raise ApiError(403, "forbidden", f"only the hearing's {names} may do this")
    return Caller(actor=f"participant:{person.id}", participant=person)


# A link made in a staff session names the session (its id's first characters, as the audit
# does), so that signing out closes it; one made with an API token names the token, so that
# revoking it closes it; one made with the admin token names staff.
SESSION_LINK = "session:"


def link_holder(caller: Caller) -> str:
    """Whom a signed link made by `caller` stands for (its `who`)."""
    if caller.session is not None:
        return SESSION_LINK + caller.session.secret_hash[:SESSION_REF]
    return caller.actor


def linkable(request: web.Request, path: str) -> Endpoint | None:
    """The route a signed link to `path` would open, if a link opens it: a GET of a
    "review" or "participant" route (the only ones that take a link)."""
    # The first GET whose path matches, as the router picks (routes match in table order).
    for endpoint in request.app[ENDPOINTS].endpoints:
        if endpoint.method == "GET" and _pattern(endpoint.path).fullmatch(path):
            return endpoint if endpoint.auth in ("review", "participant") else None
    return None


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    """A route's path as a regular expression: each {name} one segment, as aiohttp has it."""
    parts = re.split(r"({\w+})", template)
    return re.compile("".join("[^{}/]+" if p.startswith("{") else re.escape(p) for p in parts))


async def _link_holder(request: web.Request, hearing_id: uuid.UUID) -> Participant | Caller:
    """Who a signed link in the URL was made for, if it is valid and they still hold what it
    was made with (a participant, a token of the hearing; staff, the session or the token)."""
    try:
        holder = (request.app[LINKS].check(request.path, dict(request.query))
                  if request.method in ("GET", "HEAD") else None)
    except BadLink as e:
        raise ApiError(401, "bad_link", str(e), headers=CHALLENGE) from None
    if holder is None:
        raise ApiError(401, "unauthorized", "a bearer token (or a signed link) is required",
                       headers=CHALLENGE)
    if holder.who == ADMIN_ACTOR:
        return STAFF  # made with the admin token (staff open everything of every hearing)
    if holder.who.startswith(SESSION_LINK):
        signed_in = await request.app[STAFF_SESSIONS].made_in(holder.who[len(SESSION_LINK):])
        if signed_in is None:
            raise ApiError(401, "session_expired", "the staff session this link was made in "
                           "has ended (signed out, idle or expired)", headers=CHALLENGE)
        return Caller(actor=signed_in.actor, session=signed_in, staff=signed_in.member)
    kind, _, ident = holder.who.partition(":")
    try:
        made_for = uuid.UUID(ident)
    except ValueError:
        raise ApiError(401, "bad_link", "the link was not made for a participant") from None
    if kind == "token":
        api_token = await request.app[API_TOKENS].live(made_for)
        if api_token is None:
            raise ApiError(401, "token_revoked", "the API token this link was made with has "
                           "been revoked", headers=CHALLENGE)
        return Caller(actor=api_token.actor, staff=api_token.member)
    if kind != "participant":
        raise ApiError(401, "bad_link", "the link was not made for a participant")
    return await request.app[RECORDINGS].holder_by_id(hearing_id, made_for)


async def body(request: web.Request, model: type[B]) -> B:
    """Read and validate a JSON body; nothing else is accepted."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(
            413, "body_too_large", f"request bodies are limited to {MAX_BODY_BYTES} bytes"
        )
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    raw = await request.read()
    if not raw:
        raise ApiError(400, "malformed_json", "the body is empty; a JSON object is required")
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        raise validation_error(e) from e


def query(request: web.Request, model: type[Q]) -> Q:
    params: dict[str, str] = {}
    signed = "sig" in request.query  # a signed link's own parameters are not the route's
    for key, value in request.query.items():
        if signed and key in LINK_PARAMS:
            continue
        if key in params:
            raise ApiError(422, "invalid", f"query parameter {key} is given twice", field=key)
        params[key] = value
    try:
        return model.model_validate(params)
    except ValidationError as e:
        raise validation_error(e, "query") from e


def path_id(request: web.Request, name: str = "id") -> uuid.UUID:
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(404, "not_found", f"{raw!r} is not an id that exists", field=name) from None


def file_inside(roots: Sequence[Path], path: Path, missing: str) -> Path:
    """`path` with its links resolved, if that is a file under one of `roots`; else a 404.

    A link planted in the data directory (or a path in a row that leads out of its folder)
    never serves another file: not the admin token beside it, nothing outside it.
    """
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a link loop, a NUL byte
        raise ApiError(404, "not_found", missing) from None
    if not real.is_file() or not any(real.is_relative_to(r.resolve()) for r in roots):
        raise ApiError(404, "not_found", missing)
    return real


def respond(data: BaseModel | Mapping[str, Any], status: int = 200) -> web.Response:
    text = (
        data.model_dump_json()
        if isinstance(data, BaseModel)
        else json.dumps(data, ensure_ascii=False, default=str)
    )
    return web.Response(status=status, text=text, content_type="application/json")


def page(model: type[BaseModel], items: Sequence[Any], total: int, q: Any) -> dict[str, Any]:
    """One page of a list: `items` as `model`, with the total and the query's limit and offset."""
    return {
        "items": [model.model_validate(i).model_dump(mode="json") for i in items],
        "total": total,
        "limit": q.limit,
        "offset": q.offset,
    }


def join_url(request: web.Request, token: str) -> str:
    return f"{request.app[SETTINGS].base_url}/join/{token}"

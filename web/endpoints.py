"""A declared API endpoint: its route, auth, body, query and response, for routing and OpenAPI."""

from __future__ import annotations

import functools
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from web.errors import ApiError, validation_error

MAX_BODY_BYTES = 1024 * 1024
# "review": the admin token, or the join token of a participant allowed to review the
# hearing's recordings (as a bearer or, for a <video> element, a `token` query parameter).
# "participant": the admin token, or the join token of any participant of the hearing (not
# revoked; at any time), passed the same two ways; the handler may ask for a role.
Auth = Literal["admin", "device", "review", "participant", "none"]
B = TypeVar("B", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)

ADMIN_TOKEN = web.AppKey("admin_token", str)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
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
    ) -> Callable[
        [Callable[[web.Request], Awaitable[web.StreamResponse]]],
        Callable[[web.Request], Awaitable[web.StreamResponse]],
    ]:
        def register(
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
            @functools.wraps(handler)
            async def guarded(request: web.Request) -> web.StreamResponse:
                if auth == "admin":
                    require_admin(request)
                return await handler(request)

            self.endpoints.append(
                Endpoint(
                    method, self.prefix + path, guarded, summary, tag, auth, body, query,
                    response, status, errors, raw_body, raw_response,
                )
            )
            return handler

        return register

    def add_to(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)


def bearer(request: web.Request, scheme: str = "Bearer") -> str | None:
    header = request.headers.get("Authorization", "")
    given_scheme, _, credential = header.partition(" ")
    if given_scheme.lower() != scheme.lower() or not credential.strip():
        return None
    return credential.strip()


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tingshen"'}


def is_admin_token(request: web.Request, token: str) -> bool:
    expected = request.app[ADMIN_TOKEN]
    return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected.encode())


def require_admin(request: web.Request) -> None:
    token = bearer(request)
    if token is None:
        raise ApiError(401, "unauthorized", "an Authorization: Bearer token is required",
                       headers=CHALLENGE)
    if not is_admin_token(request, token):
        raise ApiError(401, "unauthorized", "the bearer token is not valid", headers=CHALLENGE)


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
    for key, value in request.query.items():
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

"""One middleware turns every error into `{"error": {"code", "message", "field"?}}`."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from courtrooms.errors import (
    AccessDenied,
    CourtroomsError,
    ExhibitTooLarge,
    InUse,
    InvalidInput,
    InvalidTransition,
    NotEditable,
    NotFound,
    QuotaExceeded,
    ScheduleConflict,
)

log = logging.getLogger(__name__)
# The error's code, kept on the response for the operators' error counts.
ERROR_CODE = web.ResponseKey("error_code", str)


class ApiError(Exception):
    """An error found at the HTTP edge itself (authentication, malformed body)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


class LoadTestError(Exception):
    """`tingshen loadtest` cannot run as asked: a bad plan, or the server refused to set it up."""


REGISTRY_STATUS: dict[type[CourtroomsError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    InvalidTransition: 409,
    ScheduleConflict: 409,
    InUse: 409,
    NotEditable: 409,
    AccessDenied: 403,
    ExhibitTooLarge: 413,
    QuotaExceeded: 409,
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **details: Any,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(details)
    response = web.Response(
        status=status,
        text=json.dumps({"error": error}, ensure_ascii=False, default=str),
        content_type="application/json",
        headers=headers,
    )
    response[ERROR_CODE] = code
    return response


def validation_error(e: ValidationError, where: str = "body") -> ApiError:
    first = e.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "json_invalid":
        return ApiError(400, "malformed_json", f"the {where} is not valid JSON: {message}")
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if field:
        message = f"{field}: {message}"
    return ApiError(422, "invalid", f"invalid {where}: {message}", field=field)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.code, e.message, field=e.field, headers=e.headers)
    except CourtroomsError as e:
        status = next((s for cls, s in REGISTRY_STATUS.items() if isinstance(e, cls)), 400)
        return error_response(status, e.code, e.message, field=e.field, **e.details)
    except web.HTTPException as e:
        if e.empty_body or not request.path.startswith("/api/") or e.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            e.status, "http_error"
        )
        return error_response(e.status, code, e.reason, headers=_allow_header(e))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error; the request was not applied")


def _allow_header(e: web.HTTPException) -> dict[str, str] | None:
    allow = e.headers.get("Allow")
    return {"Allow": allow} if allow else None

"""The OpenAPI 3.1 document, built from the endpoint table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from courtrooms.access import GRANTS as STAFF_GRANTS
from courtrooms.access import Span, roles_for, scopes_for
from web.endpoints import Endpoint, EndpointTable

REF = "#/components/schemas/{model}"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}
STATUS_TEXT = {
    200: "OK", 201: "Created", 204: "No content", 400: "Malformed request",
    401: "Missing or wrong credentials", 403: "Not allowed now", 404: "Not found",
    408: "Body sent too slowly",
    409: "Conflicts with the current state or schedule", 413: "Body over the size limit",
    415: "Body of a type this operation does not take", 416: "Range not satisfiable",
    422: "Invalid field", 202: "Accepted", 429: "Too many attempts",
}
PATH_PARAMETERS = {
    "token": {"type": "string"},
    "format": {"type": "string"},
    "n": {"type": "integer", "minimum": 1},
}
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "admin": [{"bearer": []}, {"staffSession": []}],
    "device": [{"device": []}],
    "review": [{"bearer": []}, {"staffSession": []}, {"reviewer": []}, {"signedLink": []}],
    "participant": [{"bearer": []}, {"staffSession": []}, {"participant": []},
                    {"signedLink": []}],
    "none": [],
}


def _schema_for(target: Any, defs: dict[str, Any], mode: JsonSchemaMode) -> dict[str, Any]:
    """The schema of `target`; models go into components and are referenced."""
    schema = TypeAdapter(target).json_schema(mode=mode, ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    if isinstance(target, type) and issubclass(target, BaseModel):
        # A model may keep its published name (its title) when its class is renamed.
        published = target.model_config.get("title") or target.__name__
        name = re.sub(r"[^A-Za-z0-9._-]", "_", published)
        defs[name] = schema
        return {"$ref": REF.format(model=name)}
    return schema


def _raw(media_types: tuple[str, ...]) -> dict[str, Any]:
    return {t: {"schema": {"type": "string", "contentMediaType": t}} for t in media_types}


def _operation(endpoint: Endpoint, defs: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": PATH_PARAMETERS.get(name, {"type": "string", "format": "uuid"})}
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    if endpoint.query is not None:
        qschema = TypeAdapter(endpoint.query).json_schema(mode="validation", ref_template=REF)
        defs.update(qschema.pop("$defs", {}))
        required = set(qschema.get("required", []))
        for name, prop in qschema["properties"].items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    op: dict[str, Any] = {
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "operationId": endpoint.handler.__name__ + "_" + endpoint.method.lower()
        + re.sub(r"\W+", "_", endpoint.path),
        "parameters": params,
    }
    op["security"] = SECURITY[endpoint.auth]
    if endpoint.staff is not None:
        # The staff roles the route accepts, and over which hearings each (the admin token:
        # every route).
        spans = {r.value: STAFF_GRANTS[r][endpoint.staff].value for r in roles_for(endpoint.staff)}
        op["x-staff-roles"] = sorted(spans)
        scopes = [s.value for s in scopes_for(endpoint.staff)]
        op["x-token-scopes"] = scopes
        op["description"] = (f"Staff accounts: {endpoint.staff.value}, for "
                             + "; ".join(f"{role} ({span} hearings)"
                                         if span != Span.ALL.value or endpoint.on_hearing
                                         else role for role, span in spans.items())
                             + ". API tokens: "
                             + (f"scope {' or '.join(scopes)}" if scopes else "never")
                             + ". The admin token: always (while it is on).")
    if endpoint.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": _schema_for(endpoint.body, defs, "validation")}
            },
        }
    if endpoint.raw_body:
        op["requestBody"] = {"required": True, "content": _raw(endpoint.raw_body)}
    success: dict[str, Any] = {"description": STATUS_TEXT.get(endpoint.status, "OK")}
    if endpoint.response is not None:
        success["content"] = {
            "application/json": {"schema": _schema_for(endpoint.response, defs, "serialization")}
        }
    elif endpoint.raw_response:
        success["content"] = _raw(endpoint.raw_response)
    responses: dict[str, Any] = {str(endpoint.status): success}
    error_statuses = set(endpoint.errors)
    if endpoint.auth == "admin":
        error_statuses |= {401, 403}
    if endpoint.auth in ("review", "participant"):
        error_statuses |= {401, 403}
    if endpoint.body is not None:
        error_statuses |= {400, 413, 415, 422}
    if endpoint.query is not None:
        error_statuses.add(422)
    for status in sorted(error_statuses):
        responses[str(status)] = {
            "description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
        }
    op["responses"] = responses
    return op


def build_openapi(table: EndpointTable, version: str) -> dict[str, Any]:
    defs: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in table.endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, defs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tingshen API",
            "version": version,
            "description": "Courts, courtrooms, prison terminals, hearings and their participants."
            " Errors are {\"error\": {\"code\", \"message\", \"field\"?}}.",
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An integration's API token (POST /tokens), which "
                                          "may do what its scopes grant; or the admin token, "
                                          "until an administrator account exists (unless "
                                          "keep_admin_token)"},
                "device": {"type": "apiKey", "in": "header", "name": "Authorization",
                           "description": "`Device <key>`: a prison terminal's device key"},
                "reviewer": {"type": "http", "scheme": "bearer",
                             "description": "The join token of the hearing's judge or clerk, "
                                            "or of a participant the judge permitted"},
                "participant": {"type": "http", "scheme": "bearer",
                                "description": "The join token of a participant of the "
                                               "hearing (not revoked)"},
                "staffSession": {"type": "apiKey", "in": "cookie", "name": "tingshen_staff",
                                 "description": "A staff session opened by POST /session; "
                                                "changes also send its X-CSRF-Token header"},
                "signedLink": {"type": "apiKey", "in": "query", "name": "sig",
                               "description": "A signed, short-lived link from POST "
                                              "/hearings/{id}/links (with `exp` and `who`), "
                                              "for a <video>, an <img> or a download; GET "
                                              "only. Tokens are never accepted in URLs"},
            },
        },
    }

"""The REST API under /api/v1: every tag's module registered on one endpoint table, here.

Each module (`web/api_<tag>.py`) declares its routes on its own table; `api` serves them in the
order below, the order routes are matched in (a literal path before the `{id}` beside it).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from web import (
    api_accounts,
    api_attendance,
    api_audit,
    api_exhibits,
    api_hearings,
    api_identity,
    api_participants,
    api_places,
    api_recordings,
    api_session,
    api_signing,
    api_tokens,
    api_transcript,
    api_vocabulary,
)
from web.endpoints import API_PREFIX, EndpointTable, respond
from web.keys import OPENAPI

meta = EndpointTable(API_PREFIX)


@meta.route("GET", "/openapi.json", auth="none", summary="This OpenAPI document", tag="meta",
            response=dict[str, Any])
async def openapi_document(request: web.Request) -> web.Response:
    return respond(request.app[OPENAPI])


api = EndpointTable(API_PREFIX)
for module_routes in (
    meta,
    api_session.routes,
    api_signing.routes,
    api_places.routes,
    api_hearings.routes,
    api_attendance.routes,
    api_participants.routes,
    api_audit.routes,
    api_tokens.routes,
    api_accounts.routes,
    api_recordings.routes,
    api_transcript.routes,
    api_exhibits.routes,
    api_identity.routes,
    api_vocabulary.routes,
):
    api.include(module_routes)

"""Identity checks under /api/v1: each check of a hearing (who, verified or refused and why, on
which device, by whom) and the still picture the server took of that moment."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from courtrooms.access import Permission
from courtrooms.models import CONTROL_ROLES
from web.endpoints import API_PREFIX, CALLER, EndpointTable, file_inside, path_id, respond
from web.errors import ApiError
from web.keys import HUB, VIEWINGS

routes = EndpointTable(API_PREFIX)


class IdentityCheckOut(BaseModel):
    seq: int = Field(description="The check's audit event; names its still picture")
    participant_id: uuid.UUID
    outcome: str = Field(description="verified or refused")
    reason: str | None = Field(description="Why it was refused")
    checked_by: str
    at: datetime
    still_sha256: str | None = Field(description="None: no picture could be taken")


class IdentityCheckList(BaseModel):
    items: list[IdentityCheckOut]


@routes.route("GET", "/hearings/{id}/identity-checks", auth="review", roles=CONTROL_ROLES,
              staff=Permission.SEE,
              summary="The hearing's identity checks, oldest first", tag="hearings",
              response=IdentityCheckList, errors=(404,))
async def list_checks(request: web.Request) -> web.Response:
    checks = await request.app[HUB].identity.of_hearing(path_id(request))
    return respond(IdentityCheckList(items=[IdentityCheckOut(
        seq=c.seq, participant_id=c.participant_id, outcome=c.outcome, reason=c.reason,
        checked_by=c.checked_by, at=c.at, still_sha256=c.still_sha256) for c in checks]))


@routes.route("GET", "/hearings/{id}/identity-checks/{seq}/still", auth="review",
              staff=Permission.SEE,
              roles=CONTROL_ROLES, summary="The still picture (JPEG) taken at a check",
              tag="hearings", errors=(404,))
async def still(request: web.Request) -> web.StreamResponse:
    hearing_id = path_id(request)
    identity = request.app[HUB].identity
    seq = request.match_info["seq"]
    check = next((c for c in await identity.of_hearing(hearing_id) if str(c.seq) == seq), None)
    path = None if check is None else identity.still_path(hearing_id, check)
    if check is None or path is None:
        raise ApiError(404, "not_found", f"no identity check {seq} with a picture in this "
                       "hearing", field="seq")
    path = file_inside([identity.data_dir / "identity"], path,
                       "the picture is not on this server")
    await request.app[VIEWINGS].audit(hearing_id, request[CALLER].actor, "identity.viewed",
                                      seq=str(check.seq))
    return web.FileResponse(path, headers={
        "Content-Type": "image/jpeg", "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff"})

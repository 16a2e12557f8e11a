"""The audit trail under /api/v1: read it, and check its hash chain."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from courtrooms.access import Permission
from courtrooms.schemas import AuditEventOut, AuditQuery, Page
from web.endpoints import API_PREFIX, EndpointTable, page, query, respond
from web.keys import REGISTRY, STAFF_ACCOUNTS

routes = EndpointTable(API_PREFIX)


@routes.route("GET", "/audit", summary="The audit trail, oldest first", tag="audit",
              staff=Permission.AUDIT,
              query=AuditQuery, response=Page[AuditEventOut])
async def list_audit(request: web.Request) -> web.Response:
    q = query(request, AuditQuery)
    items, total = await request.app[REGISTRY].audit_events(q)
    listed = page(AuditEventOut, items, total, q)
    # A seat of an account (a judge entering from it) is named by the account it was then.
    acting = [f"account:{e.data['actor_account_id']}" if e.data.get("actor_account_id")
              else e.actor for e in items]
    names = await request.app[STAFF_ACCOUNTS].names(acting)
    for item, actor in zip(listed["items"], acting, strict=True):
        item["actor_name"] = names.get(actor)
    return respond(listed)


class AuditReport(BaseModel):
    ok: bool
    events: int
    broken_seq: int | None
    reason: str | None


@routes.route("GET", "/audit/verify", summary="Check the audit chain", tag="audit",
              staff=Permission.AUDIT,
              response=AuditReport)
async def verify_audit(request: web.Request) -> web.Response:
    report = await request.app[REGISTRY].verify_audit()
    return respond(
        AuditReport(ok=report.ok, events=report.events, broken_seq=report.broken_seq,
                    reason=report.reason)
    )



"""Attendance under /api/v1: who was there, each absence with its cause, warnings."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from courtrooms.access import Permission
from courtrooms.attendance import ParticipantAttendance, attendance
from courtrooms.models import CONTROL_ROLES
from web.endpoints import API_PREFIX, EndpointTable, path_id, respond
from web.keys import REGISTRY

routes = EndpointTable(API_PREFIX)


class AbsenceOut(BaseModel):
    left_at: datetime
    returned_at: datetime | None = Field(description="None: they did not come back")
    cause: str = Field(description="left, page_closed, network_lost, server_restart, "
                       "server_shutdown, not_reading, closed_by_server, removed")
    in_session: bool = Field(description="The hearing was in session when they left")
    walk_out: bool = Field(description="Left by their own choice while the court sat")


class WarningOut(BaseModel):
    at: datetime
    by: str
    reason: str


class AttendanceOut(BaseModel):
    participant_id: uuid.UUID
    name: str
    role: str
    joined_first: datetime | None = Field(description="None: never joined")
    joins: int
    present: bool
    walk_outs: int
    network_failures: int
    absences: list[AbsenceOut]
    warnings: list[WarningOut]
    interprets_for_id: uuid.UUID | None = Field(
        default=None, description="An interpreter's party: the participant they interpret for")


class AttendanceReport(BaseModel):
    items: list[AttendanceOut]


def _out(a: ParticipantAttendance) -> AttendanceOut:
    return AttendanceOut(
        participant_id=a.participant_id, name=a.name, role=a.role,
        joined_first=a.joined_first, joins=a.joins, present=a.present,
        walk_outs=a.walk_outs, network_failures=a.network_failures,
        absences=[AbsenceOut(left_at=x.left_at, returned_at=x.returned_at, cause=x.cause,
                             in_session=x.in_session, walk_out=x.walk_out)
                  for x in a.absences],
        warnings=[WarningOut(at=w.at, by=w.by, reason=w.reason) for w in a.warnings],
        interprets_for_id=a.interprets_for_id,
    )


@routes.route("GET", "/hearings/{id}/attendance", auth="review", roles=CONTROL_ROLES,
              staff=Permission.SEE,
              summary="Who attended: each participant's joins, absences with their cause "
                      "(a walk-out apart from a network failure) and the court's warnings",
              tag="hearings", response=AttendanceReport, errors=(404,))
async def get_attendance(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    registry = request.app[REGISTRY]
    participants = await registry.list_participants(hearing_id)
    events = await registry.hearing_events(hearing_id)
    return respond(AttendanceReport(items=[_out(a) for a in attendance(events, participants)]))

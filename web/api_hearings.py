"""Hearings under /api/v1: schedule, list, check conflicts, move, take through their states."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from courtrooms.access import Permission, Reach, reach
from courtrooms.lifecycle import HearingAction
from courtrooms.models import LIVE_STATES, Role
from courtrooms.scheduling import SEAT_COLUMNS
from courtrooms.schemas import (
    MAX_OFFSET,
    MAX_PAGE,
    HearingDetail,
    HearingIn,
    HearingOut,
    HearingPatch,
    HearingQuery,
    Moment,
    Name,
    Page,
    PageQuery,
)
from web.endpoints import (
    API_PREFIX,
    CALLER,
    EndpointTable,
    body,
    path_id,
    query,
    respond,
    staff_member,
)
from web.keys import HUB, REGISTRY, SETTINGS

routes = EndpointTable(API_PREFIX)
# People named in one conflict check: a bench and its terminals, with room to spare.
MAX_PEOPLE = 100


@routes.route("POST", "/hearings", summary="Schedule a hearing", tag="hearings", body=HearingIn,
              staff=Permission.SCHEDULE,
              response=HearingOut, status=201, errors=(409, 422))
async def create_hearing(request: web.Request) -> web.Response:
    hearing = await request.app[REGISTRY].create_hearing(
        await body(request, HearingIn), request[CALLER].actor,
        request.app[SETTINGS].default_language, staff_member(request),
    )
    return respond(HearingOut.model_validate(hearing), 201)


class HearingListItem(HearingOut):
    terminal_ids: list[uuid.UUID] = Field(
        description="The prison terminals its participants join from"
    )


@routes.route("GET", "/hearings", staff=Permission.SEE,
              summary="List hearings overlapping [from, to), by courtroom, prison terminal or "
                      "state (several states comma-separated)",
              tag="hearings", query=HearingQuery, response=Page[HearingListItem])
async def list_hearings(request: web.Request) -> web.Response:
    q = query(request, HearingQuery)
    hearings, total = await request.app[REGISTRY].list_hearings(
        q, reach(staff_member(request), Permission.SEE))
    items = [
        HearingListItem(**HearingOut.model_validate(h).model_dump(),
                        terminal_ids=[p.terminal_id for p in h.participants if p.terminal_id])
        for h in hearings
    ]
    return respond(Page[HearingListItem](items=items, total=total, limit=q.limit,
                                         offset=q.offset))


class ScheduleCheck(HearingIn):
    """A hearing as it would be scheduled; `hearing_id` names one being moved there.

    `judges` and `terminal_ids` are people it is about to be given (a new hearing's, while the
    clerk fills in the form), checked as adding them as participants would check them; a
    judge who is an account is given as `judge_account_id` and found by the account.
    """

    hearing_id: uuid.UUID | None = None
    judges: list[Name] = Field(default=[], max_length=MAX_PEOPLE,
                               description="Names of judges it will have, as typed")
    terminal_ids: list[uuid.UUID] = Field(default=[], max_length=MAX_PEOPLE,
                                          description="Prison terminals it will have")


class ScheduleConflictOut(BaseModel):
    """An active hearing that already holds the courtroom, judge or prison terminal."""

    resource: Literal["courtroom", "judge", "prison_terminal"]
    hearing_id: uuid.UUID
    case_number: str
    title: str
    scheduled_start: datetime
    scheduled_end: datetime
    courtroom_id: uuid.UUID | None = None
    judge: str | None = None
    judge_account_id: uuid.UUID | None = Field(
        default=None, description="The judge's account, when the judge is one: found by it, "
        "whatever name they were typed with")
    terminal_id: uuid.UUID | None = None


class ScheduleConflicts(BaseModel):
    conflicts: list[ScheduleConflictOut] = Field(
        description="What scheduling or moving would be refused for (409 schedule_conflict); "
                    "empty when it would be accepted"
    )


@routes.route("POST", "/hearings/conflicts", staff=Permission.SCHEDULE,
              summary="Check a schedule before saving it: the conflicts a create or move would "
                      "meet (nothing is saved)",
              tag="hearings", body=ScheduleCheck, response=ScheduleConflicts, errors=(404, 409))
async def schedule_conflicts(request: web.Request) -> web.Response:
    check = await body(request, ScheduleCheck)
    conflicts = await request.app[REGISTRY].schedule_conflicts(
        check, check.hearing_id, judges=check.judges, terminal_ids=check.terminal_ids)
    # The very entries of a 409 schedule_conflict, unchanged.
    return respond({"conflicts": conflicts})


# How far back "my hearings" reaches unless asked: the last two weeks' hearings are recent.
RECENT = timedelta(days=14)


class MyHearingsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    from_: Moment | None = Field(default=None, alias="from", description="Hearings ending "
                                 "after this (default: 14 days ago): the recent and upcoming")
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class MyHearing(HearingListItem):
    roles: list[Role] = Field(description="As whom the account takes part: judge, clerk")
    seat_id: uuid.UUID | None = Field(description="The account's own participant, once it "
                                      "has one (entering makes it when the clerk gave none)")


@routes.route("GET", "/my/hearings", staff=Permission.ENTER, query=MyHearingsQuery,
              response=Page[MyHearing], tag="hearings",
              summary="The signed-in judge's or clerk's own hearings, recent and upcoming, by "
                      "start (none for the admin token, which is no one's)")
async def my_hearings(request: web.Request) -> web.Response:
    q = query(request, MyHearingsQuery)
    account_id = staff_member(request).account_id
    if account_id is None:  # the admin token is no one's judge or clerk
        return respond(Page[MyHearing](items=[], total=0, limit=q.limit, offset=q.offset))
    since = q.from_ or request.app[REGISTRY].clock() - RECENT
    hearings, total = await request.app[REGISTRY].list_hearings(
        HearingQuery(from_=since, limit=q.limit, offset=q.offset),
        Reach(judge_of=account_id, clerk_of=account_id))
    items = [MyHearing(
        **HearingOut.model_validate(h).model_dump(),
        terminal_ids=[p.terminal_id for p in h.participants if p.terminal_id],
        roles=[role for role, column in SEAT_COLUMNS.items()
               if getattr(h, column) == account_id],
        seat_id=next((p.id for p in h.participants if p.account_id == account_id), None),
    ) for h in hearings]
    return respond(Page[MyHearing](items=items, total=total, limit=q.limit, offset=q.offset))


class LiveHearingOut(BaseModel):
    hearing: HearingOut
    present: int = Field(description="Participants (observers not counted) connected now")
    participants: int = Field(description="Participants on the record, observers not counted")
    observers: int = Field(description="Observers connected now")


@routes.route("GET", "/hearings/live", staff=Permission.SEE,
              summary="Hearings open, in session or in recess, with who is connected now",
              tag="hearings", query=PageQuery, response=Page[LiveHearingOut])
async def live_hearings(request: web.Request) -> web.Response:
    q = query(request, PageQuery)
    hearings, total = await request.app[REGISTRY].list_hearings(
        HearingQuery(state=LIVE_STATES, limit=q.limit, offset=q.offset),
        reach(staff_member(request), Permission.SEE),
    )
    items = []
    for h in hearings:
        here = [s for s in await request.app[HUB].seats(h.id) if s.present]
        items.append(LiveHearingOut(
            hearing=HearingOut.model_validate(h),
            present=sum(s.role != Role.OBSERVER.value for s in here),
            participants=sum(p.role is not Role.OBSERVER for p in h.participants),
            observers=sum(s.role == Role.OBSERVER.value for s in here),
        ))
    return respond(Page[LiveHearingOut](items=items, total=total, limit=q.limit, offset=q.offset))


@routes.route("GET", "/hearings/{id}", summary="Get a hearing with its participants",
              staff=Permission.SEE,
              tag="hearings", response=HearingDetail, errors=(404,))
async def get_hearing(request: web.Request) -> web.Response:
    hearing = await request.app[REGISTRY].get_hearing(path_id(request))
    return respond(HearingDetail.model_validate(hearing))


@routes.route("PATCH", "/hearings/{id}", summary="Change or move a scheduled hearing",
              staff=Permission.SCHEDULE,
              tag="hearings", body=HearingPatch, response=HearingDetail, errors=(404, 409, 422))
async def update_hearing(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    hearing = await request.app[REGISTRY].update_hearing(
        hearing_id, await body(request, HearingPatch), request[CALLER].actor,
        staff_member(request),
    )
    return respond(HearingDetail.model_validate(hearing))


def _transition_handler(action: HearingAction) -> None:
    @routes.route("POST", f"/hearings/{{id}}/{action.value}", tag="hearings",
                  staff=(Permission.SCHEDULE if action is HearingAction.CANCEL
                         else Permission.RUN),
                  summary=f"{action.value.capitalize()} the hearing", response=HearingDetail,
                  errors=(404, 409))
    async def handler(request: web.Request) -> web.Response:
        hearing = await request.app[REGISTRY].transition(
            path_id(request), action, request[CALLER].actor
        )
        await request.app[HUB].hearing_changed(hearing.id, hearing.state.value)
        return respond(HearingDetail.model_validate(hearing))


for _action in HearingAction:
    _transition_handler(_action)



"""A hearing's participants under /api/v1: invitations, join links, and what a link opens."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from courtrooms.access import Permission
from courtrooms.errors import NotPermitted
from courtrooms.models import Location, Role
from courtrooms.schemas import (
    HearingOut,
    Input,
    JoinGrantOut,
    Name,
    ParticipantIn,
    ParticipantInvited,
    ParticipantOut,
    TokenIssued,
)
from web.endpoints import (
    API_PREFIX,
    CALLER,
    EndpointTable,
    body,
    join_url,
    path_id,
    respond,
)
from web.errors import ApiError
from web.keys import REGISTRY, STAFF_ACCOUNTS

routes = EndpointTable(API_PREFIX)


class ParticipantList(BaseModel):
    items: list[ParticipantOut]


@routes.route("POST", "/hearings/{id}/participants", summary="Invite a participant",
              staff=Permission.SCHEDULE,
              tag="participants", body=ParticipantIn, response=ParticipantInvited, status=201,
              errors=(404, 409, 422))
async def add_participant(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    issued = await request.app[REGISTRY].add_participant(
        hearing_id, await body(request, ParticipantIn), request[CALLER].actor
    )
    out = ParticipantOut.model_validate(issued.participant).model_dump()
    return respond(
        ParticipantInvited(**out, token=issued.token, join_url=join_url(request, issued.token)),
        201,
    )


class WatchIn(Input):
    name: Name | None = Field(
        default=None,
        description="Only with the admin token, which names no one: how the observer is "
        "shown. An account is named by its own name, and may not give another",
    )


@routes.route("POST", "/hearings/{id}/watch", summary="Watch a live hearing as an observer",
              staff=Permission.WATCH,
              tag="participants", body=WatchIn, response=ParticipantInvited, status=201,
              errors=(404, 409, 422))
async def watch(request: web.Request) -> web.Response:
    """A supervisor's (or the administrator's) observer seat, named by their account: the
    participants see who watches, as the audit names them."""
    given = await body(request, WatchIn)
    caller = request[CALLER]
    account_id = caller.staff.account_id if caller.staff is not None else None
    if account_id is not None:
        if given.name is not None:
            raise ApiError(422, "invalid", "name: an account watches under its own name")
        name = (await request.app[STAFF_ACCOUNTS].get(account_id)).name
    elif given.name is None:
        raise ApiError(422, "invalid", "name: required with the admin token, which names no one")
    else:
        name = given.name
    issued = await request.app[REGISTRY].add_participant(
        path_id(request),
        ParticipantIn(name=name, role=Role.OBSERVER, location=Location.REMOTE),
        caller.actor,
    )
    out = ParticipantOut.model_validate(issued.participant).model_dump()
    return respond(
        ParticipantInvited(**out, token=issued.token, join_url=join_url(request, issued.token)),
        201,
    )


@routes.route("POST", "/hearings/{id}/enter", staff=Permission.ENTER,
              summary="Enter the hearing room from the account: the judge's or clerk's own seat",
              tag="participants", response=ParticipantInvited, status=201, errors=(403, 404))
async def enter(request: web.Request) -> web.Response:
    """A join for the signed-in judge's (or clerk's) own seat in their hearing, named by their
    account: no link is sent to them, and each entry revokes the join the previous one gave."""
    hearing_id = path_id(request)
    caller = request[CALLER]
    account_id = caller.staff.account_id if caller.staff is not None else None
    if account_id is None:
        raise NotPermitted("only a judge's or clerk's account enters its own seat; this "
                           "credential names no account (invite by name instead)",
                           needs=["the hearing's judge or clerk"])
    issued = await request.app[REGISTRY].enter(hearing_id, account_id, caller.actor)
    out = ParticipantOut.model_validate(issued.participant).model_dump()
    return respond(
        ParticipantInvited(**out, token=issued.token, join_url=join_url(request, issued.token)),
        201,
    )


@routes.route("GET", "/hearings/{id}/participants", summary="List a hearing's participants",
              staff=Permission.SEE,
              tag="participants", response=ParticipantList, errors=(404,))
async def list_participants(request: web.Request) -> web.Response:
    people = await request.app[REGISTRY].list_participants(path_id(request))
    return respond({"items": [ParticipantOut.model_validate(p).model_dump(mode="json")
                              for p in people]})


@routes.route("DELETE", "/hearings/{id}/participants/{participant_id}", staff=Permission.SCHEDULE,
              summary="Remove a participant before the hearing starts", tag="participants",
              status=204, errors=(404, 409))
async def remove_participant(request: web.Request) -> web.Response:
    await request.app[REGISTRY].remove_participant(
        path_id(request), path_id(request, "participant_id"), request[CALLER].actor
    )
    return web.Response(status=204)


@routes.route("POST", "/hearings/{id}/participants/{participant_id}/token",
              staff=Permission.SCHEDULE,
              summary="Revoke a participant's links and issue a new one", tag="participants",
              response=TokenIssued, status=201, errors=(404, 409))
async def reissue_token(request: web.Request) -> web.Response:
    issued = await request.app[REGISTRY].reissue_token(
        path_id(request), path_id(request, "participant_id"), request[CALLER].actor
    )
    return respond(
        TokenIssued(
            participant_id=issued.participant.id,
            token=issued.token,
            join_url=join_url(request, issued.token),
            valid_from=issued.valid_from,
        ),
        201,
    )


@routes.route("DELETE", "/hearings/{id}/participants/{participant_id}/token",
              staff=Permission.SCHEDULE,
              summary="Revoke all of a participant's join links", tag="participants",
              status=204, errors=(404,))
async def revoke_tokens(request: web.Request) -> web.Response:
    await request.app[REGISTRY].revoke_tokens(
        path_id(request), path_id(request, "participant_id"), request[CALLER].actor
    )
    return web.Response(status=204)


@routes.route("GET", "/join/{token}", auth="none", summary="What a join token opens, if valid now",
              tag="participants", response=JoinGrantOut, errors=(403,))
async def resolve_join(request: web.Request) -> web.Response:
    grant = await request.app[REGISTRY].resolve_join_token(request.match_info["token"])
    return respond(
        JoinGrantOut(
            participant=ParticipantOut.model_validate(grant.participant),
            hearing=HearingOut.model_validate(grant.hearing),
        )
    )



"""Courts, courtrooms and prison terminals under /api/v1: the places hearings are held from."""

from __future__ import annotations

from aiohttp import web

from courtrooms.access import Permission
from courtrooms.schemas import (
    CourtIn,
    CourtOut,
    CourtPatch,
    CourtroomIn,
    CourtroomOut,
    CourtroomPatch,
    CourtroomQuery,
    HearingOut,
    Page,
    PageQuery,
    ParticipantOut,
    PrisonTerminalCreated,
    PrisonTerminalIn,
    PrisonTerminalOut,
    PrisonTerminalPatch,
    TerminalAssignment,
    TerminalSigning,
)
from web.endpoints import (
    API_PREFIX,
    CALLER,
    EndpointTable,
    body,
    join_url,
    page,
    path_id,
    query,
    respond,
)
from web.keys import HUB, REGISTRY

routes = EndpointTable(API_PREFIX)


# -- courts ----------------------------------------------------------------------------------


@routes.route("POST", "/courts", summary="Create a court", tag="courts", body=CourtIn,
              staff=Permission.MANAGE_PLACES,
              response=CourtOut, status=201, errors=(422,))
async def create_court(request: web.Request) -> web.Response:
    court = await request.app[REGISTRY].create_court(
        await body(request, CourtIn), request[CALLER].actor
    )
    return respond(CourtOut.model_validate(court), 201)


@routes.route("GET", "/courts", summary="List courts", tag="courts", query=PageQuery,
              staff=Permission.READ_PLACES,
              response=Page[CourtOut])
async def list_courts(request: web.Request) -> web.Response:
    q = query(request, PageQuery)
    items, total = await request.app[REGISTRY].list_courts(q)
    return respond(page(CourtOut, items, total, q))


@routes.route("GET", "/courts/{id}", summary="Get a court", tag="courts", response=CourtOut,
              staff=Permission.READ_PLACES,
              errors=(404,))
async def get_court(request: web.Request) -> web.Response:
    return respond(CourtOut.model_validate(await request.app[REGISTRY].get_court(path_id(request))))


@routes.route("PATCH", "/courts/{id}", summary="Rename a court", tag="courts", body=CourtPatch,
              staff=Permission.MANAGE_PLACES,
              response=CourtOut, errors=(404, 422))
async def update_court(request: web.Request) -> web.Response:
    court_id = path_id(request)
    court = await request.app[REGISTRY].update_court(
        court_id, await body(request, CourtPatch), request[CALLER].actor
    )
    return respond(CourtOut.model_validate(court))


@routes.route("DELETE", "/courts/{id}", summary="Delete a court without courtrooms", tag="courts",
              staff=Permission.MANAGE_PLACES,
              status=204, errors=(404, 409))
async def delete_court(request: web.Request) -> web.Response:
    await request.app[REGISTRY].delete_court(path_id(request), request[CALLER].actor)
    return web.Response(status=204)


# -- courtrooms ------------------------------------------------------------------------------


@routes.route("POST", "/courtrooms", summary="Create a courtroom", tag="courtrooms",
              staff=Permission.MANAGE_PLACES,
              body=CourtroomIn, response=CourtroomOut, status=201, errors=(422,))
async def create_courtroom(request: web.Request) -> web.Response:
    room = await request.app[REGISTRY].create_courtroom(
        await body(request, CourtroomIn), request[CALLER].actor
    )
    return respond(CourtroomOut.model_validate(room), 201)


@routes.route("GET", "/courtrooms", summary="List courtrooms", tag="courtrooms",
              staff=Permission.READ_PLACES,
              query=CourtroomQuery, response=Page[CourtroomOut])
async def list_courtrooms(request: web.Request) -> web.Response:
    q = query(request, CourtroomQuery)
    items, total = await request.app[REGISTRY].list_courtrooms(q)
    return respond(page(CourtroomOut, items, total, q))


@routes.route("GET", "/courtrooms/{id}", summary="Get a courtroom", tag="courtrooms",
              staff=Permission.READ_PLACES,
              response=CourtroomOut, errors=(404,))
async def get_courtroom(request: web.Request) -> web.Response:
    room = await request.app[REGISTRY].get_courtroom(path_id(request))
    return respond(CourtroomOut.model_validate(room))


@routes.route("PATCH", "/courtrooms/{id}", summary="Rename a courtroom", tag="courtrooms",
              staff=Permission.MANAGE_PLACES,
              body=CourtroomPatch, response=CourtroomOut, errors=(404, 422))
async def update_courtroom(request: web.Request) -> web.Response:
    room_id = path_id(request)
    room = await request.app[REGISTRY].update_courtroom(
        room_id, await body(request, CourtroomPatch), request[CALLER].actor
    )
    return respond(CourtroomOut.model_validate(room))


@routes.route("DELETE", "/courtrooms/{id}", summary="Delete a courtroom no hearing used",
              staff=Permission.MANAGE_PLACES,
              tag="courtrooms", status=204, errors=(404, 409))
async def delete_courtroom(request: web.Request) -> web.Response:
    await request.app[REGISTRY].delete_courtroom(path_id(request), request[CALLER].actor)
    return web.Response(status=204)


# -- prison terminals ------------------------------------------------------------------------


@routes.route("POST", "/prison-terminals", summary="Register a prison terminal (key shown once)",
              staff=Permission.MANAGE_PLACES,
              tag="prison terminals", body=PrisonTerminalIn, response=PrisonTerminalCreated,
              status=201, errors=(422,))
async def create_terminal(request: web.Request) -> web.Response:
    terminal, key = await request.app[REGISTRY].create_terminal(
        await body(request, PrisonTerminalIn), request[CALLER].actor
    )
    out = PrisonTerminalOut.model_validate(terminal).model_dump()
    return respond(PrisonTerminalCreated(**out, device_key=key), 201)


@routes.route("GET", "/prison-terminals", summary="List prison terminals", tag="prison terminals",
              staff=Permission.READ_PLACES,
              query=PageQuery, response=Page[PrisonTerminalOut])
async def list_terminals(request: web.Request) -> web.Response:
    q = query(request, PageQuery)
    items, total = await request.app[REGISTRY].list_terminals(q)
    return respond(page(PrisonTerminalOut, items, total, q))


@routes.route("GET", "/prison-terminals/{id}", summary="Get a prison terminal",
              staff=Permission.READ_PLACES,
              tag="prison terminals", response=PrisonTerminalOut, errors=(404,))
async def get_terminal(request: web.Request) -> web.Response:
    terminal = await request.app[REGISTRY].get_terminal(path_id(request))
    return respond(PrisonTerminalOut.model_validate(terminal))


@routes.route("PATCH", "/prison-terminals/{id}", summary="Update a prison terminal",
              staff=Permission.MANAGE_PLACES,
              tag="prison terminals", body=PrisonTerminalPatch, response=PrisonTerminalOut,
              errors=(404, 422))
async def update_terminal(request: web.Request) -> web.Response:
    terminal_id = path_id(request)
    terminal = await request.app[REGISTRY].update_terminal(
        terminal_id, await body(request, PrisonTerminalPatch), request[CALLER].actor
    )
    return respond(PrisonTerminalOut.model_validate(terminal))


@routes.route("DELETE", "/prison-terminals/{id}", staff=Permission.MANAGE_PLACES,
              summary="Delete a prison terminal no hearing used", tag="prison terminals",
              status=204, errors=(404, 409))
async def delete_terminal(request: web.Request) -> web.Response:
    await request.app[REGISTRY].delete_terminal(path_id(request), request[CALLER].actor)
    return web.Response(status=204)


@routes.route("POST", "/prison-terminals/{id}/rotate-key", staff=Permission.MANAGE_PLACES,
              summary="Replace a terminal's device key (new key shown once)",
              tag="prison terminals", response=PrisonTerminalCreated, errors=(404,))
async def rotate_terminal_key(request: web.Request) -> web.Response:
    terminal, key = await request.app[REGISTRY].rotate_terminal_key(
        path_id(request), request[CALLER].actor
    )
    out = PrisonTerminalOut.model_validate(terminal).model_dump()
    return respond(PrisonTerminalCreated(**out, device_key=key))


@routes.route("GET", "/terminal/assignment", auth="device",
              summary="A prison terminal's current or next hearing (Authorization: Device <key>)",
              tag="prison terminals", response=TerminalAssignment, errors=(401, 403))
async def terminal_assignment(request: web.Request) -> web.Response:
    key = request[CALLER].device_key
    assert key is not None  # the table resolved a "device" caller
    found = await request.app[REGISTRY].terminal_assignment(key)
    signing = []
    # The detainee signs the closed hearing's record at the kiosk, in the prison.
    for record in await request.app[REGISTRY].terminal_records(key):
        state = await request.app[HUB].signing.state(record.hearing.id)
        signer = next((s for s in state.signers
                       if s.participant_id == record.participant.id), None)
        if state.final or signer is None or signer.done:
            continue
        signing.append(TerminalSigning(
            hearing=HearingOut.model_validate(record.hearing),
            participant=ParticipantOut.model_validate(record.participant), token=record.token,
            sign_url=f"/sign/{record.hearing.id}?kiosk=1#{record.token}"))
    return respond(
        TerminalAssignment(
            terminal=PrisonTerminalOut.model_validate(found.terminal),
            hearing=HearingOut.model_validate(found.hearing) if found.hearing else None,
            participant=(
                ParticipantOut.model_validate(found.participant) if found.participant else None
            ),
            opens_at=found.opens_at,
            token=found.token,
            join_url=join_url(request, found.token) if found.token else None,
            signing=signing,
        )
    )

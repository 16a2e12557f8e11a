"""The REST API under /api/v1: registry management for clerks, join and terminal look-ups."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from config import Settings
from courtrooms.lifecycle import HearingAction
from courtrooms.models import Hearing, Role
from courtrooms.recordings import REVIEW_ROLES, Recordings, Reviewer, manifest_sha256
from courtrooms.schemas import (
    AuditEventOut,
    AuditQuery,
    CompositeStatus,
    CourtIn,
    CourtOut,
    CourtPatch,
    CourtroomIn,
    CourtroomOut,
    CourtroomPatch,
    CourtroomQuery,
    HearingDetail,
    HearingIn,
    HearingOut,
    HearingPatch,
    HearingQuery,
    JoinGrantOut,
    Page,
    PageQuery,
    ParticipantIn,
    ParticipantInvited,
    ParticipantOut,
    PrisonTerminalCreated,
    PrisonTerminalIn,
    PrisonTerminalOut,
    PrisonTerminalPatch,
    RecordingList,
    RecordingOut,
    RecordingSegmentOut,
    ReviewPermission,
    RevisionList,
    RevisionOut,
    SegmentCorrection,
    TerminalAssignment,
    TokenIssued,
    Transcript,
    TranscriptLine,
)
from courtrooms.service import LIVE_STATES, Registry
from signaling.hub import Hub
from signaling.review import COMPOSITE_DIR
from transcription.export import (
    RecordLine,
    TrialRecordHeader,
    to_docx,
    to_srt,
    to_text,
    to_webvtt,
)
from web.endpoints import (
    CHALLENGE,
    EndpointTable,
    bearer,
    body,
    file_inside,
    is_admin_token,
    path_id,
    query,
    respond,
)
from web.errors import ApiError

API_PREFIX = "/api/v1"
REGISTRY = web.AppKey("registry", Registry)
SETTINGS = web.AppKey("settings", Settings)
OPENAPI = web.AppKey("openapi", dict)
HUB = web.AppKey("hub", Hub)
RECORDINGS = web.AppKey("recordings", Recordings)
ADMIN_ACTOR = "admin"
# Where recording files live under the data directory: participants' files, composites.
RECORDING_DIRS = (Path("recordings"), COMPOSITE_DIR)

api = EndpointTable(API_PREFIX)


def _registry(request: web.Request) -> Registry:
    return request.app[REGISTRY]


def _page(model: type[BaseModel], items: Sequence[Any], total: int, q: Any) -> dict[str, Any]:
    return {
        "items": [model.model_validate(i).model_dump(mode="json") for i in items],
        "total": total,
        "limit": q.limit,
        "offset": q.offset,
    }


def join_url(request: web.Request, token: str) -> str:
    return f"{request.app[SETTINGS].base_url}/join/{token}"


class ParticipantList(BaseModel):
    items: list[ParticipantOut]


@api.route("GET", "/openapi.json", auth="none", summary="This OpenAPI document", tag="meta",
           response=dict[str, Any])
async def openapi_document(request: web.Request) -> web.Response:
    return respond(request.app[OPENAPI])


# -- courts ----------------------------------------------------------------------------------


@api.route("POST", "/courts", summary="Create a court", tag="courts", body=CourtIn,
           response=CourtOut, status=201, errors=(422,))
async def create_court(request: web.Request) -> web.Response:
    court = await _registry(request).create_court(await body(request, CourtIn), ADMIN_ACTOR)
    return respond(CourtOut.model_validate(court), 201)


@api.route("GET", "/courts", summary="List courts", tag="courts", query=PageQuery,
           response=Page[CourtOut])
async def list_courts(request: web.Request) -> web.Response:
    q = query(request, PageQuery)
    items, total = await _registry(request).list_courts(q)
    return respond(_page(CourtOut, items, total, q))


@api.route("GET", "/courts/{id}", summary="Get a court", tag="courts", response=CourtOut,
           errors=(404,))
async def get_court(request: web.Request) -> web.Response:
    return respond(CourtOut.model_validate(await _registry(request).get_court(path_id(request))))


@api.route("PATCH", "/courts/{id}", summary="Rename a court", tag="courts", body=CourtPatch,
           response=CourtOut, errors=(404, 422))
async def update_court(request: web.Request) -> web.Response:
    court_id = path_id(request)
    court = await _registry(request).update_court(
        court_id, await body(request, CourtPatch), ADMIN_ACTOR
    )
    return respond(CourtOut.model_validate(court))


@api.route("DELETE", "/courts/{id}", summary="Delete a court without courtrooms", tag="courts",
           status=204, errors=(404, 409))
async def delete_court(request: web.Request) -> web.Response:
    await _registry(request).delete_court(path_id(request), ADMIN_ACTOR)
    return web.Response(status=204)


# -- courtrooms ------------------------------------------------------------------------------


@api.route("POST", "/courtrooms", summary="Create a courtroom", tag="courtrooms",
           body=CourtroomIn, response=CourtroomOut, status=201, errors=(422,))
async def create_courtroom(request: web.Request) -> web.Response:
    room = await _registry(request).create_courtroom(
        await body(request, CourtroomIn), ADMIN_ACTOR
    )
    return respond(CourtroomOut.model_validate(room), 201)


@api.route("GET", "/courtrooms", summary="List courtrooms", tag="courtrooms",
           query=CourtroomQuery, response=Page[CourtroomOut])
async def list_courtrooms(request: web.Request) -> web.Response:
    q = query(request, CourtroomQuery)
    items, total = await _registry(request).list_courtrooms(q)
    return respond(_page(CourtroomOut, items, total, q))


@api.route("GET", "/courtrooms/{id}", summary="Get a courtroom", tag="courtrooms",
           response=CourtroomOut, errors=(404,))
async def get_courtroom(request: web.Request) -> web.Response:
    room = await _registry(request).get_courtroom(path_id(request))
    return respond(CourtroomOut.model_validate(room))


@api.route("PATCH", "/courtrooms/{id}", summary="Rename a courtroom", tag="courtrooms",
           body=CourtroomPatch, response=CourtroomOut, errors=(404, 422))
async def update_courtroom(request: web.Request) -> web.Response:
    room_id = path_id(request)
    room = await _registry(request).update_courtroom(
        room_id, await body(request, CourtroomPatch), ADMIN_ACTOR
    )
    return respond(CourtroomOut.model_validate(room))


@api.route("DELETE", "/courtrooms/{id}", summary="Delete a courtroom no hearing used",
           tag="courtrooms", status=204, errors=(404, 409))
async def delete_courtroom(request: web.Request) -> web.Response:
    await _registry(request).delete_courtroom(path_id(request), ADMIN_ACTOR)
    return web.Response(status=204)


# -- prison terminals ------------------------------------------------------------------------


@api.route("POST", "/prison-terminals", summary="Register a prison terminal (key shown once)",
           tag="prison terminals", body=PrisonTerminalIn, response=PrisonTerminalCreated,
           status=201, errors=(422,))
async def create_terminal(request: web.Request) -> web.Response:
    terminal, key = await _registry(request).create_terminal(
        await body(request, PrisonTerminalIn), ADMIN_ACTOR
    )
    out = PrisonTerminalOut.model_validate(terminal).model_dump()
    return respond(PrisonTerminalCreated(**out, device_key=key), 201)


@api.route("GET", "/prison-terminals", summary="List prison terminals", tag="prison terminals",
           query=PageQuery, response=Page[PrisonTerminalOut])
async def list_terminals(request: web.Request) -> web.Response:
    q = query(request, PageQuery)
    items, total = await _registry(request).list_terminals(q)
    return respond(_page(PrisonTerminalOut, items, total, q))


@api.route("GET", "/prison-terminals/{id}", summary="Get a prison terminal",
           tag="prison terminals", response=PrisonTerminalOut, errors=(404,))
async def get_terminal(request: web.Request) -> web.Response:
    terminal = await _registry(request).get_terminal(path_id(request))
    return respond(PrisonTerminalOut.model_validate(terminal))


@api.route("PATCH", "/prison-terminals/{id}", summary="Update a prison terminal",
           tag="prison terminals", body=PrisonTerminalPatch, response=PrisonTerminalOut,
           errors=(404, 422))
async def update_terminal(request: web.Request) -> web.Response:
    terminal_id = path_id(request)
    terminal = await _registry(request).update_terminal(
        terminal_id, await body(request, PrisonTerminalPatch), ADMIN_ACTOR
    )
    return respond(PrisonTerminalOut.model_validate(terminal))


@api.route("DELETE", "/prison-terminals/{id}", summary="Delete a prison terminal no hearing used",
           tag="prison terminals", status=204, errors=(404, 409))
async def delete_terminal(request: web.Request) -> web.Response:
    await _registry(request).delete_terminal(path_id(request), ADMIN_ACTOR)
    return web.Response(status=204)


@api.route("POST", "/prison-terminals/{id}/rotate-key",
           summary="Replace a terminal's device key (new key shown once)",
           tag="prison terminals", response=PrisonTerminalCreated, errors=(404,))
async def rotate_terminal_key(request: web.Request) -> web.Response:
    terminal, key = await _registry(request).rotate_terminal_key(path_id(request), ADMIN_ACTOR)
    out = PrisonTerminalOut.model_validate(terminal).model_dump()
    return respond(PrisonTerminalCreated(**out, device_key=key))


@api.route("GET", "/terminal/assignment", auth="device",
           summary="A prison terminal's current or next hearing (Authorization: Device <key>)",
           tag="prison terminals", response=TerminalAssignment, errors=(401, 403))
async def terminal_assignment(request: web.Request) -> web.Response:
    key = bearer(request, "Device")
    if key is None:
        raise ApiError(401, "unauthorized", "an Authorization: Device <key> header is required",
                       headers={"WWW-Authenticate": 'Device realm="tingshen"'})
    found = await _registry(request).terminal_assignment(key)
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
        )
    )


# -- hearings --------------------------------------------------------------------------------


@api.route("POST", "/hearings", summary="Schedule a hearing", tag="hearings", body=HearingIn,
           response=HearingOut, status=201, errors=(409, 422))
async def create_hearing(request: web.Request) -> web.Response:
    hearing = await _registry(request).create_hearing(
        await body(request, HearingIn), ADMIN_ACTOR, request.app[SETTINGS].default_language
    )
    return respond(HearingOut.model_validate(hearing), 201)


class HearingListItem(HearingOut):
    terminal_ids: list[uuid.UUID] = Field(
        description="The prison terminals its participants join from"
    )


@api.route("GET", "/hearings",
           summary="List hearings overlapping [from, to), by courtroom, prison terminal or "
                   "state (several states comma-separated)",
           tag="hearings", query=HearingQuery, response=Page[HearingListItem])
async def list_hearings(request: web.Request) -> web.Response:
    q = query(request, HearingQuery)
    hearings, total = await _registry(request).list_hearings(q)
    items = [
        HearingListItem(**HearingOut.model_validate(h).model_dump(),
                        terminal_ids=[p.terminal_id for p in h.participants if p.terminal_id])
        for h in hearings
    ]
    return respond(Page[HearingListItem](items=items, total=total, limit=q.limit,
                                         offset=q.offset))


class ScheduleCheck(HearingIn):
    """A hearing as it would be scheduled; `hearing_id` names one being moved there."""

    hearing_id: uuid.UUID | None = None


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
    terminal_id: uuid.UUID | None = None


class ScheduleConflicts(BaseModel):
    conflicts: list[ScheduleConflictOut] = Field(
        description="What scheduling or moving would be refused for (409 schedule_conflict); "
                    "empty when it would be accepted"
    )


@api.route("POST", "/hearings/conflicts",
           summary="Check a schedule before saving it: the conflicts a create or move would "
                   "meet (nothing is saved)",
           tag="hearings", body=ScheduleCheck, response=ScheduleConflicts, errors=(404, 409))
async def schedule_conflicts(request: web.Request) -> web.Response:
    check = await body(request, ScheduleCheck)
    conflicts = await _registry(request).schedule_conflicts(check, check.hearing_id)
    # The very entries of a 409 schedule_conflict, unchanged.
    return respond({"conflicts": conflicts})


class LiveHearingOut(BaseModel):
    hearing: HearingOut
    present: int = Field(description="Participants (observers not counted) connected now")
    participants: int = Field(description="Participants on the record, observers not counted")
    observers: int = Field(description="Observers connected now")


@api.route("GET", "/hearings/live",
           summary="Hearings open, in session or in recess, with who is connected now",
           tag="hearings", query=PageQuery, response=Page[LiveHearingOut])
async def live_hearings(request: web.Request) -> web.Response:
    q = query(request, PageQuery)
    hearings, total = await _registry(request).list_hearings(
        HearingQuery(state=LIVE_STATES, limit=q.limit, offset=q.offset)
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


@api.route("GET", "/hearings/{id}", summary="Get a hearing with its participants",
           tag="hearings", response=HearingDetail, errors=(404,))
async def get_hearing(request: web.Request) -> web.Response:
    hearing = await _registry(request).get_hearing(path_id(request))
    return respond(HearingDetail.model_validate(hearing))


@api.route("PATCH", "/hearings/{id}", summary="Change or move a scheduled hearing",
           tag="hearings", body=HearingPatch, response=HearingDetail, errors=(404, 409, 422))
async def update_hearing(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    hearing = await _registry(request).update_hearing(
        hearing_id, await body(request, HearingPatch), ADMIN_ACTOR
    )
    return respond(HearingDetail.model_validate(hearing))


def _transition_handler(action: HearingAction) -> None:
    @api.route("POST", f"/hearings/{{id}}/{action.value}", tag="hearings",
               summary=f"{action.value.capitalize()} the hearing", response=HearingDetail,
               errors=(404, 409))
    async def handler(request: web.Request) -> web.Response:
        hearing = await _registry(request).transition(path_id(request), action, ADMIN_ACTOR)
        await request.app[HUB].hearing_changed(hearing.id, hearing.state.value)
        return respond(HearingDetail.model_validate(hearing))


for _action in HearingAction:
    _transition_handler(_action)


@api.route("POST", "/hearings/{id}/participants", summary="Invite a participant",
           tag="participants", body=ParticipantIn, response=ParticipantInvited, status=201,
           errors=(404, 409, 422))
async def add_participant(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    issued = await _registry(request).add_participant(
        hearing_id, await body(request, ParticipantIn), ADMIN_ACTOR
    )
    out = ParticipantOut.model_validate(issued.participant).model_dump()
    return respond(
        ParticipantInvited(**out, token=issued.token, join_url=join_url(request, issued.token)),
        201,
    )


@api.route("GET", "/hearings/{id}/participants", summary="List a hearing's participants",
           tag="participants", response=ParticipantList, errors=(404,))
async def list_participants(request: web.Request) -> web.Response:
    people = await _registry(request).list_participants(path_id(request))
    return respond({"items": [ParticipantOut.model_validate(p).model_dump(mode="json")
                              for p in people]})


@api.route("DELETE", "/hearings/{id}/participants/{participant_id}",
           summary="Remove a participant before the hearing starts", tag="participants",
           status=204, errors=(404, 409))
async def remove_participant(request: web.Request) -> web.Response:
    await _registry(request).remove_participant(
        path_id(request), path_id(request, "participant_id"), ADMIN_ACTOR
    )
    return web.Response(status=204)


@api.route("POST", "/hearings/{id}/participants/{participant_id}/token",
           summary="Revoke a participant's links and issue a new one", tag="participants",
           response=TokenIssued, status=201, errors=(404, 409))
async def reissue_token(request: web.Request) -> web.Response:
    issued = await _registry(request).reissue_token(
        path_id(request), path_id(request, "participant_id"), ADMIN_ACTOR
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


@api.route("DELETE", "/hearings/{id}/participants/{participant_id}/token",
           summary="Revoke all of a participant's join links", tag="participants",
           status=204, errors=(404,))
async def revoke_tokens(request: web.Request) -> web.Response:
    await _registry(request).revoke_tokens(
        path_id(request), path_id(request, "participant_id"), ADMIN_ACTOR
    )
    return web.Response(status=204)


@api.route("GET", "/join/{token}", auth="none", summary="What a join token opens, if valid now",
           tag="participants", response=JoinGrantOut, errors=(403,))
async def resolve_join(request: web.Request) -> web.Response:
    grant = await _registry(request).resolve_join_token(request.match_info["token"])
    return respond(
        JoinGrantOut(
            participant=ParticipantOut.model_validate(grant.participant),
            hearing=HearingOut.model_validate(grant.hearing),
        )
    )


# -- audit -----------------------------------------------------------------------------------


@api.route("GET", "/audit", summary="The audit trail, oldest first", tag="audit",
           query=AuditQuery, response=Page[AuditEventOut])
async def list_audit(request: web.Request) -> web.Response:
    q = query(request, AuditQuery)
    items, total = await _registry(request).audit_events(q)
    return respond(_page(AuditEventOut, items, total, q))


class AuditReport(BaseModel):
    ok: bool
    events: int
    broken_seq: int | None
    reason: str | None


@api.route("GET", "/audit/verify", summary="Check the audit chain", tag="audit",
           response=AuditReport)
async def verify_audit(request: web.Request) -> web.Response:
    report = await _registry(request).verify_audit()
    return respond(
        AuditReport(ok=report.ok, events=report.events, broken_seq=report.broken_seq,
                    reason=report.reason)
    )


# -- recordings (review) ---------------------------------------------------------------------


def _token(request: web.Request) -> str:
    token = bearer(request) or request.query.get("token")
    if not token:
        raise ApiError(401, "unauthorized",
                       "a bearer token (or a token query parameter) is required",
                       headers=CHALLENGE)
    return token


async def _reviewer(request: web.Request, hearing_id: uuid.UUID) -> Reviewer:
    token = _token(request)
    if is_admin_token(request, token):
        return Reviewer(actor=ADMIN_ACTOR)
    return await request.app[RECORDINGS].reviewer(hearing_id, token)


async def participant(request: web.Request, hearing_id: uuid.UUID) -> Reviewer:
    """Who calls a "participant" endpoint: the court's staff, or a participant of the hearing."""
    token = _token(request)
    if is_admin_token(request, token):
        return Reviewer(actor=ADMIN_ACTOR)
    person = await request.app[RECORDINGS].holder(hearing_id, token)
    return Reviewer(actor=f"participant:{person.id}", participant=person)


def _composite_status(request: web.Request, hearing_id: uuid.UUID) -> CompositeStatus:
    progress = request.app[HUB].composites.status(hearing_id)
    return CompositeStatus(state=progress.state, progress=progress.progress,
                           error=progress.error)


@api.route("GET", "/hearings/{id}/recordings", auth="review",
           summary="The hearing's recordings: files, segments, offsets and hashes",
           tag="recordings", response=RecordingList, errors=(404,))
async def list_recordings(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await _reviewer(request, hearing_id)
    recordings = request.app[RECORDINGS]
    files, segments = await recordings.of_hearing(hearing_id)
    hearing = await _registry(request).get_hearing(hearing_id)
    people = {p.id: p for p in hearing.participants}
    items = []
    for f in files:
        out = RecordingOut.model_validate(f)
        person = people.get(f.participant_id) if f.participant_id else None
        items.append(out.model_copy(update={
            "participant_name": person.name if person else None,
            "role": person.role if person else None,
            "url": f"{API_PREFIX}/hearings/{hearing_id}/recordings/{f.id}/media",
        }))
    origin = hearing.timeline_origin
    return respond(RecordingList(
        timeline_origin=None if origin is None else datetime.fromtimestamp(origin, UTC),
        segments=[RecordingSegmentOut.model_validate(s) for s in segments],
        items=items,
        manifest_sha256=manifest_sha256(await recordings.manifest(hearing_id)),
        composite=_composite_status(request, hearing_id),
    ))


@api.route("GET", "/hearings/{id}/recordings/{recording_id}/media", auth="review",
           summary="One recording file (HTTP range requests supported)", tag="recordings",
           errors=(404, 416))
async def recording_media(request: web.Request) -> web.StreamResponse:
    hearing_id = path_id(request)
    reviewer = await _reviewer(request, hearing_id)
    recordings = request.app[RECORDINGS]
    row = await recordings.get(hearing_id, path_id(request, "recording_id"))
    path = file_inside([recordings.data_dir / d for d in RECORDING_DIRS], recordings.path_of(row),
                       "the recording file is not on this server")
    try:
        from_start = request.http_range.start in (None, 0)
    except ValueError:
        from_start = True  # a malformed Range: FileResponse answers it
    if from_start:
        await _registry(request).record(hearing_id, reviewer.actor, "recording.viewed",
                                        recording_id=str(row.id))
    return web.FileResponse(path, headers={
        "Content-Type": row.media_type, "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    })


@api.route("GET", "/hearings/{id}/composite", auth="review",
           summary="Progress of the hearing's review composite", tag="recordings",
           response=CompositeStatus, errors=(404,))
async def composite_status(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await _reviewer(request, hearing_id)
    await _registry(request).get_hearing(hearing_id)
    return respond(_composite_status(request, hearing_id))


@api.route("POST", "/hearings/{id}/composite",
           summary="Render (again) the hearing's review composite in the background",
           tag="recordings", response=CompositeStatus, status=202, errors=(404,))
async def render_composite(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await _registry(request).get_hearing(hearing_id)
    request.app[HUB].composites.start(hearing_id)
    return respond(_composite_status(request, hearing_id), 202)


@api.route("PUT", "/hearings/{id}/participants/{participant_id}/review",
           summary="Allow or stop a participant reviewing the recordings", tag="recordings",
           body=ReviewPermission, response=ParticipantOut, errors=(404,))
async def permit_review(request: web.Request) -> web.Response:
    permission = await body(request, ReviewPermission)
    participant = await request.app[RECORDINGS].permit_review(
        path_id(request), path_id(request, "participant_id"), permission.may_review, ADMIN_ACTOR
    )
    return respond(ParticipantOut.model_validate(participant))


# -- the trial record ------------------------------------------------------------------------

EXPORTS = {
    "vtt": ("text/vtt; charset=utf-8", "vtt"),
    "srt": ("application/x-subrip; charset=utf-8", "srt"),
    "txt": ("text/plain; charset=utf-8", "txt"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
}


async def _lines(request: web.Request, hearing_id: uuid.UUID) -> tuple[int, list[TranscriptLine]]:
    version, segments = await request.app[HUB].transcripts.of_hearing(hearing_id)
    people = {p.id: p for p in await _registry(request).list_participants(hearing_id)}
    lines = []
    for s in segments:
        person = people.get(s.participant_id)
        lines.append(TranscriptLine.model_validate(s).model_copy(update={
            "participant": person.name if person else "",
            "role": person.role if person else None,
        }))
    return version, lines


class RecordSeal(BaseModel):
    """The judge's seal, read from the hearing's `record_sealed_*` columns."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime = Field(validation_alias="record_sealed_at")
    by: str = Field(validation_alias="record_sealed_by",
                    description="`admin`, or `participant:<id>` for the judge")
    sha256: str = Field(validation_alias="record_sha256",
                        description="Hash of the record as sealed, also in the audit chain")


class SealedTranscript(Transcript):
    sealed: RecordSeal | None = Field(
        description="The judge's seal; once set the record takes no more corrections"
    )


def _seal_of(hearing: Hearing) -> RecordSeal | None:
    return None if hearing.record_sealed_at is None else RecordSeal.model_validate(hearing)


@api.route("GET", "/hearings/{id}/transcript", auth="review",
           summary="The trial record: who said what, when, and the judge's seal",
           tag="transcript", response=SealedTranscript, errors=(404,))
async def get_transcript(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await _reviewer(request, hearing_id)
    hearing = await _registry(request).get_hearing(hearing_id)
    version, lines = await _lines(request, hearing_id)
    return respond(SealedTranscript(version=version, items=lines, sealed=_seal_of(hearing)))


@api.route("POST", "/hearings/{id}/transcript/seal", auth="participant",
           summary="The judge seals the closed hearing's trial record: hashed into the audit "
                   "chain, no corrections after (admin token or the judge's join token)",
           tag="transcript", response=RecordSeal, errors=(404, 409))
async def seal_transcript(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    caller = await participant(request, hearing_id)
    hearing = await request.app[HUB].transcripts.seal_by_judge(
        hearing_id, caller.actor, caller.participant
    )
    return respond(RecordSeal.model_validate(hearing))


@api.route("PATCH", "/hearings/{id}/transcript/{segment_id}", auth="review",
           summary="Correct a line of the trial record (the earlier text is kept): the admin "
                   "token, or the hearing's judge or clerk; refused once the judge sealed it",
           tag="transcript", body=SegmentCorrection, response=TranscriptLine,
           errors=(403, 404, 409))
async def correct_line(request: web.Request) -> web.Response:
    hearing_id, segment_id = path_id(request), path_id(request, "segment_id")
    reviewer = await _reviewer(request, hearing_id)
    if reviewer.participant is not None and reviewer.participant.role not in REVIEW_ROLES:
        raise ApiError(403, "forbidden",
                       "only the hearing's judge or clerk may correct the trial record")
    correction = await body(request, SegmentCorrection)
    await request.app[HUB].transcripts.correct(hearing_id, segment_id, correction.text,
                                               reviewer.actor)
    _, lines = await _lines(request, hearing_id)
    return respond(next(line for line in lines if line.id == segment_id))


@api.route("GET", "/hearings/{id}/transcript/{segment_id}/revisions", auth="review",
           summary="A line's corrections: who, when, before, after", tag="transcript",
           response=RevisionList, errors=(404,))
async def line_revisions(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await _reviewer(request, hearing_id)
    revisions = await request.app[HUB].transcripts.revisions(
        hearing_id, path_id(request, "segment_id"))
    return respond(RevisionList(items=[RevisionOut.model_validate(r) for r in revisions]))


@api.route("GET", "/hearings/{id}/transcript/export/{format}", auth="review",
           summary="The trial record as WebVTT, SRT, plain text or DOCX", tag="transcript",
           errors=(404,))
async def export_transcript(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await _reviewer(request, hearing_id)
    fmt = request.match_info["format"]
    if fmt not in EXPORTS:
        raise ApiError(404, "not_found", f"no export format {fmt!r}; use one of "
                       + ", ".join(EXPORTS), field="format")
    registry = _registry(request)
    hearing = await registry.get_hearing(hearing_id)
    _, lines = await _lines(request, hearing_id)
    records = [RecordLine(line.participant, line.role.value if line.role else "",
                          line.start, line.end, line.text) for line in lines]
    court, room = "", None
    if hearing.courtroom_id is not None:
        courtroom = await registry.get_courtroom(hearing.courtroom_id)
        court, room = (await registry.get_court(courtroom.court_id)).name, courtroom.name
    header = TrialRecordHeader(
        court=court, case_number=hearing.case_number, kind=hearing.kind.value,
        started_at=hearing.started_at or hearing.scheduled_start, ended_at=hearing.closed_at,
        participants=tuple((p.name, p.role.value) for p in hearing.participants),
        title=hearing.title, courtroom=room,
    )
    language = hearing.language
    content: str | bytes
    if fmt == "vtt":
        content = to_webvtt(records, language)
    elif fmt == "srt":
        content = to_srt(records, language)
    elif fmt == "txt":
        content = to_text(header, records, language)
    else:
        content = to_docx(header, records, language)
    media_type, extension = EXPORTS[fmt]
    name = f"trial-record-{hearing_id}.{extension}"
    data = content.encode("utf-8") if isinstance(content, str) else content
    return web.Response(body=data, headers={
        "Content-Type": media_type, "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, no-store",
    })


# The exhibit endpoints register themselves on `api`; they use this module's keys and helpers.
from web import api_exhibits  # noqa: E402, F401

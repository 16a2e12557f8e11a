"""The trial record under /api/v1: read it, correct a line, see its corrections, the judge's seal,
and exports as WebVTT, SRT, text or DOCX."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from config.timezone import local
from courtrooms.access import Permission
from courtrooms.editing import RecordEdit
from courtrooms.models import REVIEW_ROLES, Hearing, TrialRecordLine
from courtrooms.schemas import (
    LineCorrection,
    RecordEditIn,
    RecordVersionList,
    RecordVersionOut,
    RevisionList,
    RevisionOut,
    Transcript,
    TranscriptLine,
    UntranscribedOut,
    VersionQuery,
)
from courtrooms.transcripts import LIVE_VERSION, LineHistory
from transcription.export import (
    RecordGap,
    RecordLine,
    TrialRecordHeader,
    to_docx,
    to_srt,
    to_text,
    to_webvtt,
)
from web.endpoints import API_PREFIX, CALLER, EndpointTable, body, path_id, query, respond
from web.errors import ApiError
from web.keys import HUB, REGISTRY, SETTINGS, STAFF_ACCOUNTS, VIEWINGS
from web.record_document import court_document

routes = EndpointTable(API_PREFIX)

EXPORTS = {
    "vtt": ("text/vtt; charset=utf-8", "vtt"),
    "srt": ("application/x-subrip; charset=utf-8", "srt"),
    "txt": ("text/plain; charset=utf-8", "txt"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
}


async def _lines(request: web.Request, hearing_id: uuid.UUID) -> tuple[int, list[TranscriptLine]]:
    version, lines, _ = await _record(request, hearing_id)
    return version, lines


async def _record(request: web.Request, hearing_id: uuid.UUID, version: int | None = None
                  ) -> tuple[int, list[TranscriptLine], list[UntranscribedOut]]:
    """A version of the record (the newest unless named), its lines and the live record's
    holes (speech never transcribed), each named with its speaker."""
    transcripts = request.app[HUB].transcripts
    version, rows = await transcripts.of_hearing(hearing_id, version)
    if not rows and version != LIVE_VERSION and version not in {
            v.version for v in await transcripts.versions(hearing_id)}:
        raise ApiError(404, "not_found", f"the record has no version {version}",
                       field="version")
    people = {p.id: p for p in await request.app[REGISTRY].list_participants(hearing_id)}

    histories = await transcripts.histories(hearing_id)

    def named(participant_id: uuid.UUID) -> dict[str, Any]:
        person = people.get(participant_id)
        return {"participant": person.name if person else "",
                "role": person.role if person else None}

    def described(row: TrialRecordLine) -> dict[str, Any]:
        history = histories.get(row.id, LineHistory())
        return {**named(row.participant_id), "corrections": history.corrections,
                "settled": history.settled}

    lines = [TranscriptLine.model_validate(row).model_copy(update=described(row))
             for row in rows]
    holes = [UntranscribedOut.model_validate(span).model_copy(update=named(span.participant_id))
             for span in await transcripts.untranscribed(hearing_id)]
    return version, lines, holes


class RecordSeal(BaseModel):
    """The judge's seal, read from the hearing's `record_sealed_*` columns."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime = Field(validation_alias="record_sealed_at")
    by: str = Field(validation_alias="record_sealed_by",
                    description="`admin`, `participant:<id>` for the judge by their join "
                    "token, or `account:<id>` for the judge's account")
    by_name: str | None = Field(default=None, description="The judge's account's name, when "
                                "their account sealed it")
    sha256: str = Field(validation_alias="record_sha256",
                        description="Hash of the record as sealed, also in the audit chain")


class SealedTranscript(Transcript):
    sealed: RecordSeal | None = Field(
        description="The judge's seal; once set the record takes no more corrections"
    )


async def _seal_of(request: web.Request, hearing: Hearing) -> RecordSeal | None:
    return None if hearing.record_sealed_at is None else await _seal(request, hearing)


async def _seal(request: web.Request, hearing: Hearing) -> RecordSeal:
    """The hearing's seal, its judge named by their account's name when it sealed."""
    names = await request.app[STAFF_ACCOUNTS].names([hearing.record_sealed_by])
    return RecordSeal.model_validate(hearing).model_copy(
        update={"by_name": names.get(hearing.record_sealed_by or "")})


@routes.route("GET", "/hearings/{id}/transcript", auth="review", query=VersionQuery,
              staff=Permission.SEE,
              summary="The trial record: who said what, when, and the judge's seal (the "
                      "newest version, or the one asked for)",
              tag="transcript", response=SealedTranscript, errors=(404, 422))
async def get_transcript(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    asked = query(request, VersionQuery)
    hearing = await request.app[REGISTRY].get_hearing(hearing_id)
    version, lines, holes = await _record(request, hearing_id, asked.version)
    await request.app[VIEWINGS].audit(hearing_id, request[CALLER].actor, "transcript.viewed")
    return respond(SealedTranscript(version=version, items=lines, untranscribed=holes,
                                    sealed=await _seal_of(request, hearing)))


@routes.route("POST", "/hearings/{id}/transcript/seal", staff=Permission.SEAL, auth="participant",
              summary="The judge seals the closed hearing's trial record: hashed into the audit "
                      "chain, no corrections after (admin token or the judge's join token)",
              tag="transcript", response=RecordSeal, errors=(404, 409))
async def seal_transcript(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    caller = request[CALLER]
    hearing = await request.app[HUB].transcripts.seal_by_judge(
        hearing_id, caller.actor, caller.participant
    )
    return respond(await _seal(request, hearing))


@routes.route("PATCH", "/hearings/{id}/transcript/{segment_id}", auth="review",
              staff=Permission.KEEP_RECORD,
              summary="Correct a line of the trial record (the earlier text is kept): the admin "
                      "token, or the hearing's judge or clerk; refused once the judge sealed it",
              tag="transcript", body=LineCorrection, response=TranscriptLine,
              errors=(403, 404, 409), roles=REVIEW_ROLES)
async def correct_line(request: web.Request) -> web.Response:
    hearing_id, line_id = path_id(request), path_id(request, "segment_id")
    correction = await body(request, LineCorrection)
    await request.app[HUB].transcripts.correct(hearing_id, line_id, correction.text,
                                               request[CALLER].actor)
    _, lines = await _lines(request, hearing_id)
    return respond(next(line for line in lines if line.id == line_id))


@routes.route("POST", "/hearings/{id}/transcript/edits", auth="review",
              staff=Permission.KEEP_RECORD,
              summary="The clerk deletes, inserts, re-attributes, merges or splits lines: the "
                      "record's next version (the earlier one is kept); refused once sealed",
              tag="transcript", body=RecordEditIn, response=Transcript, status=201,
              errors=(403, 404, 409, 422), roles=REVIEW_ROLES)
async def edit_record(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    given = await body(request, RecordEditIn)
    version, _ = await request.app[HUB].transcripts.edit(hearing_id, RecordEdit(
        given.action, tuple(given.line_ids), given.participant_id, given.text, given.start,
        given.end, given.at, given.reason), request[CALLER].actor)
    _, lines, _ = await _record(request, hearing_id, version)
    return respond(Transcript(version=version, items=lines), status=201)


@routes.route("GET", "/hearings/{id}/transcript/versions", staff=Permission.SEE, auth="review",
              summary="Every version of the record: the live one, retranscriptions and the "
                      "clerk's edits (who, when, what)", tag="transcript",
              response=RecordVersionList, errors=(404,))
async def record_versions(request: web.Request) -> web.Response:
    versions = await request.app[HUB].transcripts.versions(path_id(request))
    names = await request.app[STAFF_ACCOUNTS].names(v.made_by for v in versions)
    return respond(RecordVersionList(items=[
        RecordVersionOut.model_validate(v).model_copy(
            update={"made_by_name": names.get(v.made_by or "")}) for v in versions]))


@routes.route("GET", "/hearings/{id}/transcript/{segment_id}/revisions", auth="review",
              staff=Permission.SEE,
              summary="A line's corrections: who, when, before, after", tag="transcript",
              response=RevisionList, errors=(404,))
async def line_revisions(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    revisions = await request.app[HUB].transcripts.revisions(
        hearing_id, path_id(request, "segment_id"))
    names = await request.app[STAFF_ACCOUNTS].names(r.author for r in revisions)
    return respond(RevisionList(items=[
        RevisionOut.model_validate(r).model_copy(update={"author_name": names.get(r.author)})
        for r in revisions]))


@routes.route("GET", "/hearings/{id}/transcript/export/{format}", auth="review",
              staff=Permission.SEE,
              summary="The trial record as WebVTT, SRT, plain text or DOCX", tag="transcript",
              errors=(404,))
async def export_transcript(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    fmt = request.match_info["format"]
    if fmt not in EXPORTS:
        raise ApiError(404, "not_found", f"no export format {fmt!r}; use one of "
                       + ", ".join(EXPORTS), field="format")
    registry = request.app[REGISTRY]
    hearing = await registry.get_hearing(hearing_id)
    _, lines, holes = await _record(request, hearing_id)
    await request.app[VIEWINGS].audit(hearing_id, request[CALLER].actor, "transcript.exported",
                                      format=fmt)
    records = [RecordLine(line.participant, line.role.value if line.role else "",
                          line.start, line.end, line.text, line.recovered) for line in lines]
    gaps = [RecordGap(hole.participant, hole.role.value if hole.role else "", hole.start,
                      hole.end) for hole in holes]
    court, room = "", None
    if hearing.courtroom_id is not None:
        courtroom = await registry.get_courtroom(hearing.courtroom_id)
        court, room = (await registry.get_court(courtroom.court_id)).name, courtroom.name
    zone = request.app[SETTINGS].court_zone
    hub = request.app[HUB]
    extras = await court_document(hearing, await registry.hearing_events(hearing_id),
                                  hub.identity, hub.signing, zone)
    people = {p.id: p for p in hearing.participants}
    header = TrialRecordHeader(
        court=court, case_number=hearing.case_number, kind=hearing.kind.value,
        # In the court's local time, as every document a court reads.
        started_at=local(hearing.started_at or hearing.scheduled_start, zone),
        ended_at=local(hearing.closed_at, zone) if hearing.closed_at is not None else None,
        participants=tuple((p.name, p.role.value) for p in hearing.participants),
        title=hearing.title, courtroom=room,
        interpreters=tuple((p.name, people[p.interprets_for_id].role.value,
                            people[p.interprets_for_id].name)
                           for p in hearing.participants
                           if p.interprets_for_id is not None and p.interprets_for_id in people),
    )
    language = hearing.language
    content: str | bytes
    if fmt == "vtt":
        content = to_webvtt(records, language)
    elif fmt == "srt":
        content = to_srt(records, language)
    elif fmt == "txt":
        content = to_text(header, records, language, gaps, extras)
    else:
        content = to_docx(header, records, language, gaps, extras)
    media_type, extension = EXPORTS[fmt]
    name = f"trial-record-{hearing_id}.{extension}"
    data = content.encode("utf-8") if isinstance(content, str) else content
    return web.Response(body=data, headers={
        "Content-Type": media_type, "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, no-store",
    })

"""A hearing's recordings under /api/v1: the files and segments, each file, the review composite,
and who besides the judge and clerk may review them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from courtrooms.access import Permission
from courtrooms.recordings import manifest_sha256
from courtrooms.schemas import (
    CompositeStatus,
    ParticipantOut,
    RecordingList,
    RecordingOut,
    RecordingSegmentOut,
    ReviewPermission,
    TimelineEvent,
)
from signaling.review import COMPOSITE_DIR
from web.endpoints import (
    API_PREFIX,
    CALLER,
    EndpointTable,
    body,
    file_inside,
    path_id,
    respond,
)
from web.keys import HUB, RECORDINGS, REGISTRY, VIEWINGS

# Where recording files live under the data directory: participants' files, composites.
RECORDING_DIRS = (Path("recordings"), COMPOSITE_DIR)

routes = EndpointTable(API_PREFIX)


def _composite_status(request: web.Request, hearing_id: uuid.UUID) -> CompositeStatus:
    progress = request.app[HUB].composites.status(hearing_id)
    return CompositeStatus(state=progress.state, progress=progress.progress,
                           error=progress.error)


@routes.route("GET", "/hearings/{id}/recordings", staff=Permission.SEE, auth="review",
              summary="The hearing's recordings: files, segments, offsets and hashes",
              tag="recordings", response=RecordingList, errors=(404,))
async def list_recordings(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    recordings = request.app[RECORDINGS]
    files, segments = await recordings.of_hearing(hearing_id)
    hearing = await request.app[REGISTRY].get_hearing(hearing_id)
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
    # Before the hearing first went in session, an event holds from 0 on.
    events = [] if origin is None else [
        TimelineEvent(at=max(0.0, round(e.data["wall"] - origin, 3)), action=e.action,
                      participant_ids=e.data["participant_ids"] if "participant_ids" in e.data
                      else [e.data["participant_id"]])
        for e in await recordings.timeline_events(hearing_id)
    ]
    return respond(RecordingList(
        timeline_origin=None if origin is None else datetime.fromtimestamp(origin, UTC),
        segments=[RecordingSegmentOut.model_validate(s) for s in segments],
        events=events,
        items=items,
        manifest_sha256=manifest_sha256(await recordings.manifest(hearing_id)),
        composite=_composite_status(request, hearing_id),
    ))


@routes.route("GET", "/hearings/{id}/recordings/{recording_id}/media", auth="review",
              staff=Permission.SEE,
              summary="One recording file (HTTP range requests supported)", tag="recordings",
              errors=(404, 416))
async def recording_media(request: web.Request) -> web.StreamResponse:
    hearing_id = path_id(request)
    recordings = request.app[RECORDINGS]
    row = await recordings.get(hearing_id, path_id(request, "recording_id"))
    path = file_inside([recordings.data_dir / d for d in RECORDING_DIRS], recordings.path_of(row),
                       "the recording file is not on this server")
    # Whatever the range (a player seeks from anywhere), once per viewing.
    await request.app[VIEWINGS].audit(hearing_id, request[CALLER].actor, "recording.viewed",
                                      recording_id=str(row.id))
    return web.FileResponse(path, headers={
        "Content-Type": row.media_type, "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    })


@routes.route("GET", "/hearings/{id}/composite", staff=Permission.SEE, auth="review",
              summary="Progress of the hearing's review composite", tag="recordings",
              response=CompositeStatus, errors=(404,))
async def composite_status(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await request.app[REGISTRY].get_hearing(hearing_id)
    return respond(_composite_status(request, hearing_id))


@routes.route("POST", "/hearings/{id}/composite", staff=Permission.KEEP_RECORD,
              summary="Render (again) the hearing's review composite in the background",
              tag="recordings", response=CompositeStatus, status=202, errors=(404,))
async def render_composite(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await request.app[REGISTRY].get_hearing(hearing_id)
    request.app[HUB].composites.start(hearing_id)
    return respond(_composite_status(request, hearing_id), 202)


@routes.route("DELETE", "/hearings/{id}/composite", staff=Permission.KEEP_RECORD,
              summary="Cancel the hearing's review composite render, queued or running",
              tag="recordings", response=CompositeStatus, errors=(404,))
async def cancel_composite(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await request.app[REGISTRY].get_hearing(hearing_id)
    request.app[HUB].composites.cancel(hearing_id)
    return respond(_composite_status(request, hearing_id))


@routes.route("PUT", "/hearings/{id}/participants/{participant_id}/review", staff=Permission.RUN,
              summary="Allow or stop a participant reviewing the recordings", tag="recordings",
              body=ReviewPermission, response=ParticipantOut, errors=(404,))
async def permit_review(request: web.Request) -> web.Response:
    permission = await body(request, ReviewPermission)
    participant = await request.app[RECORDINGS].permit_review(
        path_id(request), path_id(request, "participant_id"), permission.may_review,
        request[CALLER].actor,
    )
    return respond(ParticipantOut.model_validate(participant))



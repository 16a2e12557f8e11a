"""Exhibits under /api/v1 (举证质证): present a file to a hearing, list, fetch and page through.

Every endpoint takes the admin token or the join token of a participant of the hearing (as a
bearer, or `?token=` for an <img> source). A participant reaches the exhibits only while they
could be in the hearing (`Registry.check_attendance`: its join window, the court's admission
and removal); the staff always, and those who may review the hearing (its judge and clerk,
whoever the judge permits) view them at any time, as they view its recordings.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from courtrooms.access import Permission
from courtrooms.exhibits import (
    HEARING_BYTES,
    HEARING_EXHIBITS,
    MAX_EXHIBIT_BYTES,
    MIB,
    PARTICIPANT_BYTES,
    PARTICIPANT_EXHIBITS,
    TYPES,
    Exhibits,
)
from courtrooms.models import REVIEW_ROLES, Exhibit
from courtrooms.schemas import Name, Output
from web.endpoints import API_PREFIX, CALLER, EndpointTable, file_inside, path_id, query, respond
from web.errors import ApiError
from web.keys import HUB, REGISTRY, VIEWINGS

log = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024
# An upload whose next piece does not come within this long, or that has not ended this long
# after it began (50 MiB takes 7 minutes at 1 Mbit/s), is cut off: a connection held open by a
# sender that trickles is a connection nobody else gets.
UPLOAD_CHUNK_TIMEOUT_S = 20.0
UPLOAD_DEADLINE_S = 600.0
# A PDF shown inline may carry scripts; `sandbox` keeps them from running as this site.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
    "Cache-Control": "private, no-store",
}

routes = EndpointTable(API_PREFIX)


class ExhibitOut(Output):
    id: uuid.UUID
    hearing_id: uuid.UUID
    participant_id: uuid.UUID | None = Field(description="Who presented it; null for staff")
    title: str
    media_type: str = Field(description="application/pdf, image/png or image/jpeg")
    size: int = Field(description="Bytes")
    sha256: str = Field(description="Hash of the file, also in the audit chain")
    pages: int = Field(description="Pages of a PDF; 1 for an image")
    created_at: datetime


class ExhibitList(BaseModel):
    items: list[ExhibitOut]


class ExhibitQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Name = Field(description="What the exhibit is, at most 200 characters")
    token: str | None = Field(default=None, description="A join token, instead of the header")


def _exhibits(request: web.Request) -> Exhibits:
    return request.app[HUB].exhibits


async def _attending(request: web.Request, viewing: bool = True) -> None:
    """Refuse a participant who could not be in the hearing now; the staff pass, and so do
    those who may review the hearing when they only look (the review of a closed hearing
    shows its exhibits beside the record)."""
    participant = request[CALLER].participant
    if participant is None:
        return
    if viewing and (participant.role in REVIEW_ROLES or participant.may_review):
        return
    await request.app[REGISTRY].check_attendance(path_id(request), participant)


class _Upload:
    """An exhibit's body as it comes, cut off when it comes too slowly."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.received = 0

    async def body(self) -> AsyncIterator[bytes]:
        # Read here, not with request.read(): the app's body limit is 1 MiB, an exhibit's 50.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + UPLOAD_DEADLINE_S
        while True:
            wait = min(UPLOAD_CHUNK_TIMEOUT_S, deadline - loop.time())
            try:
                async with asyncio.timeout(max(wait, 0)):
                    chunk = await self.request.content.read(CHUNK_BYTES)
            except TimeoutError:
                if wait < UPLOAD_CHUNK_TIMEOUT_S:
                    why = f"it did not end within {UPLOAD_DEADLINE_S:g} s"
                else:
                    why = f"nothing more came for {UPLOAD_CHUNK_TIMEOUT_S:g} s"
                raise ApiError(408, "upload_too_slow", f"the upload was cut off after "
                               f"{self.received:,} bytes: {why}") from None
            except ConnectionError:
                self.aborted()
                raise ApiError(400, "upload_aborted", "the upload was aborted") from None
            if not chunk:
                return
            self.received += len(chunk)
            yield chunk

    def aborted(self) -> None:
        """The sender went away: one line, no traceback (nothing of it is kept)."""
        log.warning("an exhibit upload to hearing %s by %s was aborted after %s bytes: the "
                    "connection was lost", self.request.match_info["id"],
                    self.request[CALLER].actor, f"{self.received:,}")


@routes.route("POST", "/hearings/{id}/exhibits", staff=Permission.RUN, auth="participant",
              summary=f"Present an exhibit: the body is the PDF, PNG or JPEG file itself, at most "
                      f"{MAX_EXHIBIT_BYTES // MIB} MiB (not by observers); a participant "
                      f"presents at most {PARTICIPANT_EXHIBITS} exhibits and "
                      f"{PARTICIPANT_BYTES // MIB} MiB, a hearing takes {HEARING_EXHIBITS} and "
                      f"{HEARING_BYTES // MIB} MiB; an upload that pauses "
                      f"{UPLOAD_CHUNK_TIMEOUT_S:g} s or lasts {UPLOAD_DEADLINE_S:g} s is cut off",
              tag="exhibits", query=ExhibitQuery, response=ExhibitOut, status=201,
              errors=(403, 404, 408, 409, 413, 415, 422), raw_body=tuple(TYPES))
async def add_exhibit(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    caller = request[CALLER]
    q = query(request, ExhibitQuery)
    if request.content_type not in TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "an exhibit is sent as " + ", ".join(TYPES)
                       + f", not {request.content_type}")
    upload = _Upload(request)
    try:
        exhibit = await _exhibits(request).add(
            hearing_id, q.title, request.content_type, upload.body(),
            participant_id=caller.participant.id if caller.participant else None,
            actor=caller.actor, attending=functools.partial(_attending, request, viewing=False),
        )
    except asyncio.CancelledError:
        if request.transport is None:  # gone: a server that cancels the handler then
            upload.aborted()
        raise
    return respond(ExhibitOut.model_validate(exhibit), 201)


@routes.route("GET", "/hearings/{id}/exhibits", staff=Permission.SEE, auth="participant",
              summary="The hearing's exhibits, in the order presented", tag="exhibits",
              response=ExhibitList, errors=(403, 404))
async def list_exhibits(request: web.Request) -> web.Response:
    await _attending(request)
    exhibits = await _exhibits(request).of_hearing(path_id(request))
    return respond(ExhibitList(items=[ExhibitOut.model_validate(e) for e in exhibits]))


async def _exhibit(request: web.Request) -> Exhibit:
    await _attending(request)
    return await _exhibits(request).get(path_id(request), path_id(request, "exhibit_id"))


@routes.route("GET", "/hearings/{id}/exhibits/{exhibit_id}/file", auth="participant",
              staff=Permission.SEE,
              summary="An exhibit's file as presented", tag="exhibits", errors=(403, 404),
              raw_response=tuple(TYPES))
async def exhibit_file(request: web.Request) -> web.StreamResponse:
    exhibit = await _exhibit(request)
    await request.app[VIEWINGS].audit(exhibit.hearing_id, request[CALLER].actor,
                                      "exhibit.viewed", exhibit_id=str(exhibit.id))
    exhibits = _exhibits(request)
    path = file_inside([exhibits.data_dir / "exhibits"], exhibits.path_of(exhibit),
                       "the exhibit's file is not on this server")
    extension = TYPES[exhibit.media_type].extension
    # An ASCII name for every client, the title for those that read RFC 6266's filename*.
    disposition = (f'inline; filename="exhibit-{exhibit.id}.{extension}"; '
                   f"filename*=UTF-8''{quote(f'{exhibit.title}.{extension}', safe='')}")
    return web.FileResponse(path, headers={
        **FILE_HEADERS, "Content-Type": exhibit.media_type, "Content-Disposition": disposition,
    })


@routes.route("GET", "/hearings/{id}/exhibits/{exhibit_id}/pages/{n}", auth="participant",
              staff=Permission.SEE,
              summary="Page n (from 1) of an exhibit as a PNG about 1600 px wide; an image has "
                      "one page", tag="exhibits", errors=(403, 404), raw_response=("image/png",))
async def exhibit_page(request: web.Request) -> web.StreamResponse:
    exhibit = await _exhibit(request)
    raw = request.match_info["n"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise ApiError(404, "unknown_page", f"{raw!r} is not a page number", field="n")
    exhibits = _exhibits(request)
    folder = [exhibits.data_dir / "exhibits"]
    # The file a page is rendered from is checked like the file itself.
    file_inside(folder, exhibits.path_of(exhibit), "the exhibit's file is not on this server")
    png = file_inside(folder, await exhibits.page_png(exhibit, int(raw)),
                      "the rendered page is not on this server")
    await request.app[VIEWINGS].audit(exhibit.hearing_id, request[CALLER].actor,
                                      "exhibit.viewed", exhibit_id=str(exhibit.id))
    return web.FileResponse(png, headers={**FILE_HEADERS, "Content-Type": "image/png"})

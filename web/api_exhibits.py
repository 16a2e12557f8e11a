"""Exhibits under /api/v1 (举证质证): present a file to a hearing, list, fetch and page through.

Registered on the same endpoint table as `web.api`. Every endpoint takes the admin token or the
join token of a participant of the hearing (as a bearer, or `?token=` for an <img> source).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from courtrooms.exhibits import MAX_EXHIBIT_BYTES, TYPES, Exhibits
from courtrooms.models import Exhibit
from courtrooms.schemas import Name, Output
from web.api import HUB, api, participant
from web.endpoints import file_inside, path_id, query, respond
from web.errors import ApiError

CHUNK_BYTES = 64 * 1024
# A PDF shown inline may carry scripts; `sandbox` keeps them from running as this site.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
    "Cache-Control": "private, no-store",
}


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


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    # Read here, not with request.read(): the app's body limit is 1 MiB, an exhibit's 50 MiB.
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        yield chunk


@api.route("POST", "/hearings/{id}/exhibits", auth="participant",
           summary=f"Present an exhibit: the body is the PDF, PNG or JPEG file itself, at most "
                   f"{MAX_EXHIBIT_BYTES // (1024 * 1024)} MiB (not by observers)",
           tag="exhibits", query=ExhibitQuery, response=ExhibitOut, status=201,
           errors=(403, 404, 409, 413, 415, 422), raw_body=tuple(TYPES))
async def add_exhibit(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    caller = await participant(request, hearing_id)
    q = query(request, ExhibitQuery)
    if request.content_type not in TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "an exhibit is sent as " + ", ".join(TYPES)
                       + f", not {request.content_type}")
    exhibit = await _exhibits(request).add(
        hearing_id, q.title, request.content_type, _body(request),
        participant_id=caller.participant.id if caller.participant else None,
        actor=caller.actor,
    )
    return respond(ExhibitOut.model_validate(exhibit), 201)


@api.route("GET", "/hearings/{id}/exhibits", auth="participant",
           summary="The hearing's exhibits, in the order presented", tag="exhibits",
           response=ExhibitList, errors=(404,))
async def list_exhibits(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    await participant(request, hearing_id)
    exhibits = await _exhibits(request).of_hearing(hearing_id)
    return respond(ExhibitList(items=[ExhibitOut.model_validate(e) for e in exhibits]))


async def _exhibit(request: web.Request) -> Exhibit:
    hearing_id = path_id(request)
    await participant(request, hearing_id)
    return await _exhibits(request).get(hearing_id, path_id(request, "exhibit_id"))


@api.route("GET", "/hearings/{id}/exhibits/{exhibit_id}/file", auth="participant",
           summary="An exhibit's file as presented", tag="exhibits", errors=(404,),
           raw_response=tuple(TYPES))
async def exhibit_file(request: web.Request) -> web.StreamResponse:
    exhibit = await _exhibit(request)
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


@api.route("GET", "/hearings/{id}/exhibits/{exhibit_id}/pages/{n}", auth="participant",
           summary="Page n (from 1) of an exhibit as a PNG about 1600 px wide; an image has "
                   "one page", tag="exhibits", errors=(404,), raw_response=("image/png",))
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
    return web.FileResponse(png, headers={**FILE_HEADERS, "Content-Type": "image/png"})

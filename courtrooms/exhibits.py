"""Exhibits (举证): documents and pictures a participant presents in a hearing.

A file is streamed to disk while it is hashed, checked to be the PDF, PNG or JPEG it is
declared as, and kept as `exhibits/<hearing_id>/<sha256>.<ext>` under the data directory; its
hash, size and page count enter the audit chain. Pages are rendered to PNG on demand and
cached beside the files.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import uuid
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pypdfium2 as pdfium
from PIL import Image, ImageOps
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms import audit
from courtrooms.database import Database
from courtrooms.errors import (
    AccessDenied,
    ExhibitTooLarge,
    InvalidExhibit,
    NotEditable,
    NotFound,
    UnknownPage,
)
from courtrooms.models import Exhibit, Hearing, HearingState, Participant, Role

MAX_EXHIBIT_BYTES = 50 * 1024 * 1024
ADDED = "exhibit_added"
PAGE_WIDTH_PX = 1600
# A page rendered taller than this (a long strip) is scaled down to fit.
MAX_PAGE_HEIGHT_PX = 4 * PAGE_WIDTH_PX
# Pictures past this are refused: decoding one would take gigabytes.
MAX_IMAGE_PIXELS = 64_000_000
WRITE_BATCH_BYTES = 1 << 20
FINISHED = (HearingState.CLOSED, HearingState.CANCELLED)
# PDFium is not thread-safe: one call into it at a time in this process.
_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class ExhibitType:
    name: str
    extension: str
    magic: bytes
    pil_format: str | None = None  # None: a PDF, read by PDFium


TYPES = {
    "application/pdf": ExhibitType("PDF", "pdf", b"%PDF-"),
    "image/png": ExhibitType("PNG image", "png", b"\x89PNG\r\n\x1a\n", "PNG"),
    "image/jpeg": ExhibitType("JPEG image", "jpg", b"\xff\xd8\xff", "JPEG"),
}


class Exhibits:
    """Registry of a hearing's exhibits and their files."""

    def __init__(self, db: Database, clock: Callable[[], datetime], data_dir: Path) -> None:
        self.db = db
        self.clock = clock
        self.data_dir = data_dir

    def path_of(self, exhibit: Exhibit) -> Path:
        return self.data_dir / exhibit.path

    async def add(
        self,
        hearing_id: uuid.UUID,
        title: str,
        media_type: str,
        chunks: AsyncIterable[bytes],
        *,
        participant_id: uuid.UUID | None,
        actor: str,
    ) -> Exhibit:
        """Store a presented file and put its hash on the record.

        `title` comes validated from the edge; `participant_id` is None for staff.
        """
        kind = TYPES.get(media_type)
        if kind is None:
            raise InvalidExhibit(f"an exhibit is a PDF, PNG or JPEG, not {media_type!r}",
                                 field="media_type")
        # Refuse before receiving anything, and again under the write lock below.
        async with self.db.read() as session:
            await _check_presenter(session, hearing_id, participant_id)
        folder = self.data_dir / "exhibits" / str(hearing_id)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        upload = folder / f".upload-{uuid.uuid4().hex}"
        try:
            size, sha256 = await _receive(chunks, upload)
            pages = await asyncio.to_thread(_inspect, upload, kind)
            stored = folder / f"{sha256}.{kind.extension}"
            await asyncio.to_thread(os.replace, upload, stored)
        finally:
            await asyncio.to_thread(upload.unlink, missing_ok=True)
        relative = stored.relative_to(self.data_dir).as_posix()
        try:
            async with self.db.write() as session:
                await _check_presenter(session, hearing_id, participant_id)
                now = self.clock()
                exhibit = Exhibit(
                    hearing_id=hearing_id, participant_id=participant_id, title=title,
                    media_type=media_type, size=size, sha256=sha256, pages=pages,
                    path=relative, created_at=now,
                )
                session.add(exhibit)
                await session.flush()
                await audit.append(
                    session, actor=actor, action=ADDED, at=now, hearing_id=hearing_id,
                    data={"exhibit_id": str(exhibit.id),
                          "participant_id": str(participant_id) if participant_id else None,
                          "sha256": sha256, "size": size, "title": title,
                          "media_type": media_type, "pages": pages},
                )
                return exhibit
        except BaseException:
            await self._discard(relative)
            raise

    async def _discard(self, relative: str) -> None:
        """Remove a stored file no exhibit refers to (the same file may back another one)."""
        async with self.db.read() as session:
            used = await session.scalar(select(func.count()).where(Exhibit.path == relative))
        if not used:
            await asyncio.to_thread((self.data_dir / relative).unlink, missing_ok=True)

    async def get(self, hearing_id: uuid.UUID, exhibit_id: uuid.UUID) -> Exhibit:
        async with self.db.read() as session:
            exhibit = await session.get(Exhibit, exhibit_id)
            if exhibit is None or exhibit.hearing_id != hearing_id:
                raise NotFound("Exhibit", exhibit_id)
            return exhibit

    async def of_hearing(self, hearing_id: uuid.UUID) -> list[Exhibit]:
        """The hearing's exhibits in the order they were presented."""
        async with self.db.read() as session:
            if await session.get(Hearing, hearing_id) is None:
                raise NotFound("Hearing", hearing_id)
            rows = await session.scalars(
                select(Exhibit).where(Exhibit.hearing_id == hearing_id)
                .order_by(Exhibit.created_at, Exhibit.id)
            )
            return list(rows.all())

    async def page_png(self, exhibit: Exhibit, n: int) -> Path:
        """Page `n` (1-based) as a PNG about PAGE_WIDTH_PX wide, rendered once and cached."""
        if not 1 <= n <= exhibit.pages:
            raise UnknownPage(n, exhibit.pages)
        source = self.path_of(exhibit)
        cached = source.parent / "pages" / f"{exhibit.sha256}-{n}.png"
        if not await asyncio.to_thread(cached.is_file):
            await asyncio.to_thread(_render, source, TYPES[exhibit.media_type], n, cached)
        return cached


async def _check_presenter(
    session: AsyncSession, hearing_id: uuid.UUID, participant_id: uuid.UUID | None
) -> None:
    hearing = await session.get(Hearing, hearing_id)
    if hearing is None:
        raise NotFound("Hearing", hearing_id)
    if hearing.state in FINISHED:
        raise NotEditable(f"a hearing that is {hearing.state.value} takes no new exhibits",
                          current_state=hearing.state.value)
    if participant_id is None:
        return
    participant = await session.get(Participant, participant_id)
    if participant is None or participant.hearing_id != hearing_id:
        raise AccessDenied("this participant is not in this hearing")
    if participant.role is Role.OBSERVER:
        raise AccessDenied("observers may view the exhibits but not present any")


def _append(f: IO[bytes], digest: Any, data: bytes | bytearray) -> None:
    f.write(data)
    digest.update(data)


async def _receive(chunks: AsyncIterable[bytes], dest: Path) -> tuple[int, str]:
    """Write the chunks to `dest`, hashing them; refused past MAX_EXHIBIT_BYTES."""
    digest = hashlib.sha256()
    size = 0
    f = await asyncio.to_thread(dest.open, "wb")
    try:
        # Batched so that the disk is touched (in a thread) once per MiB, not per chunk.
        batch = bytearray()
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_EXHIBIT_BYTES:
                raise ExhibitTooLarge(
                    f"an exhibit may be at most {MAX_EXHIBIT_BYTES // (1024 * 1024)} MiB"
                )
            batch += chunk
            if len(batch) >= WRITE_BATCH_BYTES:
                await asyncio.to_thread(_append, f, digest, batch)
                batch = bytearray()
        await asyncio.to_thread(_append, f, digest, batch)
    finally:
        await asyncio.to_thread(f.close)
    return size, digest.hexdigest()


def _inspect(path: Path, kind: ExhibitType) -> int:
    """The number of pages of a file that is what it claims to be. Blocking."""
    with path.open("rb") as f:
        head = f.read(len(kind.magic))
    if not head:
        raise InvalidExhibit("the file is empty")
    if head != kind.magic:
        raise InvalidExhibit(f"the file is not a {kind.name}: its first bytes do not say so")
    if kind.pil_format is None:
        return _pdf_pages(path)
    try:
        with Image.open(path, formats=[kind.pil_format]) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InvalidExhibit(
                    f"the image has {image.width}x{image.height} pixels; at most "
                    f"{MAX_IMAGE_PIXELS:,} are taken"
                )
            image.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InvalidExhibit(f"the {kind.name} cannot be read: {e}") from e
    return 1


def _pdf_pages(path: Path) -> int:
    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as e:
            raise InvalidExhibit(f"the PDF cannot be read: {e}") from e
        try:
            pages = len(pdf)
        finally:
            pdf.close()
    if pages < 1:
        raise InvalidExhibit("the PDF has no pages")
    return pages


def _render(source: Path, kind: ExhibitType, n: int, dest: Path) -> None:
    """Render page `n` of `source` to the PNG `dest`. Blocking."""
    if kind.pil_format is None:
        with _PDFIUM:
            pdf = pdfium.PdfDocument(source)
            try:
                page = pdf[n - 1]
                width, height = page.get_size()
                scale = min(PAGE_WIDTH_PX / width, MAX_PAGE_HEIGHT_PX / height)
                image = page.render(scale=scale).to_pil()
            finally:
                pdf.close()
    else:
        with Image.open(source, formats=[kind.pil_format]) as original:
            # JPEG decodes at a fraction of its size when that is still large enough.
            original.draft("RGB", (PAGE_WIDTH_PX, PAGE_WIDTH_PX))
            image = ImageOps.exif_transpose(original)
            image.thumbnail((PAGE_WIDTH_PX, MAX_PAGE_HEIGHT_PX))
            if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
                image = image.convert("RGB")  # e.g. a CMYK JPEG: PNG has no CMYK
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed, so a concurrent request never reads half a file.
    partial = dest.with_name(f".{uuid.uuid4().hex}.png")
    try:
        image.save(partial, "PNG")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)

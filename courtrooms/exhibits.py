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
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pypdfium2 as pdfium
from PIL import Image, ImageOps
from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from config.files import sync_directory, sync_file
from courtrooms import audit
from courtrooms.audit import Finding
from courtrooms.database import Database
from courtrooms.errors import (
    AccessDenied,
    ExhibitTooLarge,
    InvalidExhibit,
    NotEditable,
    NotFound,
    QuotaExceeded,
    UnknownPage,
)
from courtrooms.models import FINISHED_STATES, Exhibit, Hearing, Participant, Role

MIB = 1024 * 1024
MAX_EXHIBIT_BYTES = 50 * MIB
# What participants may present (the staff are not limited; a hearing's quota counts their
# exhibits too): enough for a trial's bundle of evidence, not enough for a hostile participant
# to fill the disk or crowd out the others.
PARTICIPANT_EXHIBITS = 30
PARTICIPANT_BYTES = 300 * MIB
HEARING_EXHIBITS = 300
HEARING_BYTES = 3 * 1024 * MIB
ADDED = "exhibit_added"
RENDERS_AT_ONCE = 2
PAGE_WIDTH_PX = 1600
# A page rendered taller than this (a long strip) is scaled down to fit.
MAX_PAGE_HEIGHT_PX = 4 * PAGE_WIDTH_PX
# Pictures past this are refused: decoding one would take gigabytes.
MAX_IMAGE_PIXELS = 64_000_000
WRITE_BATCH_BYTES = 1 << 20
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
        # Opening and rendering pages takes seconds of CPU in a default-executor thread (PDF
        # work also waits for pdfium's lock there): a crowd opening an exhibit at once must
        # not take every thread that departures and rejoins need.
        self._rendering = asyncio.Semaphore(RENDERS_AT_ONCE)

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
        attending: Callable[[], Awaitable[None]] | None = None,
    ) -> Exhibit:
        """Store a presented file and put its hash on the record.

        `title` comes validated from the edge; `participant_id` is None for staff.
        `attending` raises when the participant may not take part in the hearing now (the
        registry's `check_attendance`); it is asked before receiving and again after.
        """
        kind = TYPES.get(media_type)
        if kind is None:
            raise InvalidExhibit(f"an exhibit is a PDF, PNG or JPEG, not {media_type!r}",
                                 field="media_type")
        if attending is not None:
            await attending()
        # Refuse before receiving anything, and again under the write lock below.
        async with self.db.read() as session:
            await _check_presenter(session, hearing_id, participant_id)
            quotas = await _quotas(session, hearing_id, participant_id)
        _check_quotas(quotas, 1)
        folder = self.data_dir / "exhibits" / str(hearing_id)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        upload = folder / f".upload-{uuid.uuid4().hex}"
        try:
            # Cut off as soon as the bytes would pass a quota, not after receiving them all.
            size, sha256 = await _receive(chunks, upload, lambda n: _check_quotas(quotas, n))
            async with self._rendering:
                pages = await asyncio.to_thread(_inspect, upload, kind)
            stored = folder / f"{sha256}.{kind.extension}"
            # On the disk before its row and audit event say it is presented.
            await asyncio.to_thread(sync_file, upload)
            await asyncio.to_thread(os.replace, upload, stored)
            await asyncio.to_thread(sync_directory, folder)
        finally:
            await asyncio.to_thread(upload.unlink, missing_ok=True)
        relative = stored.relative_to(self.data_dir).as_posix()
        try:
            if attending is not None:
                await attending()  # removed, or the hearing closed, while sending
            async with self.db.write() as session:
                await _check_presenter(session, hearing_id, participant_id)
                _check_quotas(await _quotas(session, hearing_id, participant_id), size)
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

    async def verify(self) -> list[Finding]:
        """Every exhibit's file against its row and the hash the audit chain holds for it;
        an exhibit on the audit record whose row is gone is reported too."""
        async with self.db.read() as session:
            audited = await audit.latest_by(session, (ADDED,), key="exhibit_id")
            rows = list((await session.scalars(select(Exhibit).order_by(Exhibit.created_at))
                         ).all())
        found: list[Finding] = []
        by_id = {str(e.id): e for e in rows}
        for exhibit_id, added in audited.items():
            if exhibit_id not in by_id:
                found.append(Finding(
                    f"hearing {added.hearing_id}: exhibit {added.data.get('title')!r} (audit "
                    f"event {added.seq}) was deleted from the database", added.hearing_id,
                    added.at))
        for exhibit in rows:
            where = f"hearing {exhibit.hearing_id}: exhibit {exhibit.title!r} ({exhibit.path})"
            event = audited.get(str(exhibit.id))
            if event is None:
                found.append(Finding(f"{where} is not on the audit record", exhibit.hearing_id,
                                     exhibit.created_at))
            elif event.data.get("sha256") != exhibit.sha256:
                found.append(Finding(f"{where}: its row's sha256 differs from the one audit "
                                     f"event {event.seq} holds", exhibit.hearing_id, event.at))
            path = self.path_of(exhibit)
            if not await asyncio.to_thread(path.is_file):
                found.append(Finding(f"{where} is missing", exhibit.hearing_id,
                                     exhibit.created_at))
            elif await asyncio.to_thread(_file_sha256, path) != exhibit.sha256:
                found.append(Finding(f"{where} was altered (sha256 differs from the record)",
                                     exhibit.hearing_id, exhibit.created_at))
        return found

    async def page_png(self, exhibit: Exhibit, n: int) -> Path:
        """Page `n` (1-based) as a PNG about PAGE_WIDTH_PX wide, rendered once and cached."""
        if not 1 <= n <= exhibit.pages:
            raise UnknownPage(n, exhibit.pages)
        source = self.path_of(exhibit)
        cached = source.parent / "pages" / f"{exhibit.sha256}-{n}.png"
        if not await asyncio.to_thread(cached.is_file):
            async with self._rendering:
                if not await asyncio.to_thread(cached.is_file):  # rendered while waiting
                    await asyncio.to_thread(_render, source, TYPES[exhibit.media_type], n,
                                            cached)
        return cached


async def _check_presenter(
    session: AsyncSession, hearing_id: uuid.UUID, participant_id: uuid.UUID | None
) -> None:
    hearing = await session.get(Hearing, hearing_id)
    if hearing is None:
        raise NotFound("Hearing", hearing_id)
    if hearing.state in FINISHED_STATES:
        raise NotEditable(f"a hearing that is {hearing.state.value} takes no new exhibits",
                          current_state=hearing.state.value)
    if participant_id is None:
        return
    participant = await session.get(Participant, participant_id)
    if participant is None or participant.hearing_id != hearing_id:
        raise AccessDenied("this participant is not in this hearing")
    if participant.role is Role.OBSERVER:
        raise AccessDenied("observers may view the exhibits but not present any")


@dataclass(frozen=True)
class _Quota:
    name: str  # participant_exhibits, participant_bytes, hearing_exhibits, hearing_bytes
    limit: int
    used: int

    @property
    def counts_bytes(self) -> bool:
        return self.name.endswith("_bytes")

    def refusal(self) -> QuotaExceeded:
        whose = ("you may present" if self.name.startswith("participant")
                 else "this hearing takes")
        what = _bytes(self.limit) if self.counts_bytes else f"{self.limit} exhibits"
        return QuotaExceeded(f"{whose} at most {what}", quota=self.name, limit=self.limit)


async def _quotas(
    session: AsyncSession, hearing_id: uuid.UUID, participant_id: uuid.UUID | None
) -> list[_Quota]:
    """What the presenter and the hearing have used of their quotas; none for the staff."""
    if participant_id is None:
        return []
    quotas = []
    for whose, mine, files, size in (
            ("participant", Exhibit.participant_id == participant_id, PARTICIPANT_EXHIBITS,
             PARTICIPANT_BYTES),
            ("hearing", true(), HEARING_EXHIBITS, HEARING_BYTES)):
        count, total = (await session.execute(
            select(func.count(), func.coalesce(func.sum(Exhibit.size), 0))
            .where(Exhibit.hearing_id == hearing_id, mine))).one()
        quotas += [_Quota(f"{whose}_exhibits", files, int(count)),
                   _Quota(f"{whose}_bytes", size, int(total))]
    return quotas


def _check_quotas(quotas: list[_Quota], size: int) -> None:
    """Refuse one more exhibit of `size` bytes past any of the quotas."""
    for quota in quotas:
        if quota.used + (size if quota.counts_bytes else 1) > quota.limit:
            raise quota.refusal()


def _bytes(n: int) -> str:
    for unit, name in ((1024 * MIB, "GiB"), (MIB, "MiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n:,} bytes"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(WRITE_BATCH_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _append(f: IO[bytes], digest: Any, data: bytes | bytearray) -> None:
    f.write(data)
    digest.update(data)


async def _receive(
    chunks: AsyncIterable[bytes], dest: Path, check_size: Callable[[int], None]
) -> tuple[int, str]:
    """Write the chunks to `dest`, hashing them; refused past MAX_EXHIBIT_BYTES or when
    `check_size` refuses the size so far."""
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
            check_size(size)
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

"""Exhibits against real SQLite and PostgreSQL and a real disk: hashes, checks, pages, audit."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import courtrooms.exhibits
from courtrooms.errors import (
    AccessDenied,
    ExhibitTooLarge,
    HearingFinished,
    InvalidExhibit,
    NotEditable,
    NotFound,
    QuotaExceeded,
    UnknownPage,
)
from courtrooms.exhibits import ADDED, MAX_EXHIBIT_BYTES, PAGE_WIDTH_PX, Exhibits
from courtrooms.lifecycle import HearingAction
from courtrooms.models import AuditEvent, Exhibit, Hearing, Location, Role
from courtrooms.registry import CourtWord, Registry
from courtrooms.schemas import AuditQuery, ParticipantIn
from tests.conftest import FakeClock
from tests.courtrooms.builders import ACTOR, add_judge, add_remote, at, make_hearing
from tests.durable import fsynced
from tests.exhibit_files import (
    A4,
    A4_LANDSCAPE,
    RECEIPT,
    chunks,
    decoded,
    jpeg,
    pdf,
    png,
    repeated,
)

PDF = "application/pdf"


@pytest.fixture
def exhibits(registry: Registry, clock: FakeClock, tmp_path: Path) -> Exhibits:
    return Exhibits(registry.db, clock, tmp_path / "data")


async def present(exhibits: Exhibits, hearing: Hearing, data: bytes, media_type: str = PDF,
                  participant_id: uuid.UUID | None = None, title: str = "借条") -> Exhibit:
    return await exhibits.add(hearing.id, title, media_type, chunks(data),
                              participant_id=participant_id, actor=ACTOR)


async def exhibit_rows(registry: Registry) -> int:
    async with registry.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Exhibit)) or 0)


async def audit_head(registry: Registry) -> int:
    async with registry.db.read() as session:
        return int(await session.scalar(select(func.max(AuditEvent.seq))) or 0)


def stored_files(exhibits: Exhibits) -> list[Path]:
    root = exhibits.data_dir / "exhibits"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_a_pdf_is_stored_under_its_hash_and_enters_the_audit_chain(
    registry: Registry, exhibits: Exhibits, clock: FakeClock
) -> None:
    hearing = await make_hearing(registry, 9, 11)
    judge = await add_judge(registry, hearing)
    data = pdf(A4, A4_LANDSCAPE, RECEIPT)
    exhibit = await present(exhibits, hearing, data, participant_id=judge.participant.id)

    sha = hashlib.sha256(data).hexdigest()
    assert (exhibit.sha256, exhibit.size, exhibit.pages) == (sha, len(data), 3)
    assert exhibit.participant_id == judge.participant.id and exhibit.created_at == clock.now
    assert exhibit.path == f"exhibits/{hearing.id}/{sha}.pdf"
    assert exhibits.path_of(exhibit).read_bytes() == data
    assert stored_files(exhibits) == [exhibits.path_of(exhibit)]  # no upload left aside

    got = await exhibits.get(hearing.id, exhibit.id)
    assert (got.id, got.sha256, got.title, got.pages) == (exhibit.id, sha, "借条", 3)
    assert [e.id for e in await exhibits.of_hearing(hearing.id)] == [exhibit.id]
    other = await make_hearing(registry, 12, 13)
    with pytest.raises(NotFound):
        await exhibits.get(other.id, exhibit.id)
    assert await exhibits.of_hearing(other.id) == []
    with pytest.raises(NotFound):
        await exhibits.of_hearing(uuid.uuid4())

    events, _ = await registry.audit_events(AuditQuery(hearing_id=hearing.id))
    added = [e for e in events if e.action == ADDED]
    assert len(added) == 1 and added[0].actor == ACTOR
    assert added[0].data == {
        "exhibit_id": str(exhibit.id), "participant_id": str(judge.participant.id),
        "sha256": sha, "size": len(data), "title": "借条", "media_type": PDF, "pages": 3,
    }
    assert (await registry.verify_audit()).ok


async def test_an_exhibit_is_on_the_disk_before_it_is_recorded(
    registry: Registry, exhibits: Exhibits, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = fsynced(monkeypatch)
    hearing = await make_hearing(registry, 9, 11)
    judge = await add_judge(registry, hearing)
    exhibit = await present(exhibits, hearing, pdf(A4), participant_id=judge.participant.id)
    folder = exhibits.path_of(exhibit).parent
    # The bytes (still under their upload name), then the rename into place.
    assert len(synced) == 2 and synced[0].parent == folder and synced[1] == folder
    assert synced[0].name.startswith(".upload-")


async def test_a_crowd_opening_an_exhibit_renders_two_pages_at_a_time(
    registry: Registry, exhibits: Exhibits, monkeypatch: pytest.MonkeyPatch
) -> None:
    hearing = await make_hearing(registry, 9, 11)
    judge = await add_judge(registry, hearing)
    exhibit = await present(exhibits, hearing, pdf(A4, A4, A4, A4),
                            participant_id=judge.participant.id)
    running, most, rendered = 0, 0, []
    real = courtrooms.exhibits._render

    def counted(source: Path, kind: Any, n: int, dest: Path) -> None:
        nonlocal running, most
        running += 1  # under the GIL: threads interleave only between statements here
        most = max(most, running)
        time.sleep(0.1)
        real(source, kind, n, dest)
        rendered.append(n)
        running -= 1

    monkeypatch.setattr(courtrooms.exhibits, "_render", counted)
    # Twenty people open the four pages at once.
    await asyncio.gather(*(exhibits.page_png(exhibit, 1 + i % 4) for i in range(20)))
    assert most == courtrooms.exhibits.RENDERS_AT_ONCE
    # Each page rendered, then served from the cache (a page asked for again while it
    # renders may render twice).
    assert set(rendered) == {1, 2, 3, 4} and len(rendered) <= 8


async def test_pdf_pages_render_to_cached_pngs_of_their_own_shape(
    registry: Registry, exhibits: Exhibits
) -> None:
    hearing = await make_hearing(registry, 9, 11)
    exhibit = await present(exhibits, hearing, pdf(A4, A4_LANDSCAPE, RECEIPT))
    shapes = []
    for n in (1, 2, 3):
        path = await exhibits.page_png(exhibit, n)
        image = decoded(path.read_bytes())
        assert abs(image.width - PAGE_WIDTH_PX) <= 1, (n, image.size)  # PDFium rounds up
        shapes.append(image.height / image.width)
    # Portrait A4, landscape A4 and the narrow receipt: each page is the page asked for.
    assert shapes == pytest.approx([842 / 595, 595 / 842, 3.0], abs=0.005)

    first = await exhibits.page_png(exhibit, 1)
    mtime = first.stat().st_mtime_ns
    assert await exhibits.page_png(exhibit, 1) == first and first.stat().st_mtime_ns == mtime
    for n in (0, 4, -1):
        with pytest.raises(UnknownPage):
            await exhibits.page_png(exhibit, n)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_pictures_are_one_page_shown_upright_and_at_most_page_width(
    registry: Registry, exhibits: Exhibits
) -> None:
    hearing = await make_hearing(registry, 9, 11)
    small = await present(exhibits, hearing, png((64, 48)), "image/png")
    assert small.pages == 1 and small.path.endswith(".png")
    assert decoded((await exhibits.page_png(small, 1)).read_bytes()).size == (64, 48)
    with pytest.raises(UnknownPage):
        await exhibits.page_png(small, 2)

    wide = await present(exhibits, hearing, jpeg((3200, 1000)), "image/jpeg")
    assert wide.path.endswith(".jpg") and wide.media_type == "image/jpeg"
    assert decoded((await exhibits.page_png(wide, 1)).read_bytes()).size == (1600, 500)

    # A phone photo taken sideways (EXIF orientation 6) is shown turned upright.
    sideways = await present(exhibits, hearing, jpeg((80, 40), exif_orientation=6),
                             "image/jpeg")
    upright = decoded((await exhibits.page_png(sideways, 1)).read_bytes()).convert("RGB")
    assert upright.size == (40, 80)
    # The red half, left in the file, is on top once turned.
    red, _green, blue = upright.getpixel((20, 5))
    assert red > 200 and blue < 60


async def test_files_that_are_not_what_they_claim_are_refused_and_leave_nothing(
    registry: Registry, exhibits: Exhibits
) -> None:
    hearing = await make_hearing(registry, 9, 11)
    before = await audit_head(registry)
    good_pdf, good_png = pdf(), png()
    corrupt_png = bytearray(good_png)
    corrupt_png[40] ^= 0xFF  # inside a chunk: its CRC no longer matches
    cases = [
        (good_pdf, "image/png", "not a PNG"),
        (good_png, PDF, "not a PDF"),
        (good_png, "image/jpeg", "not a JPEG"),
        (b"%PDF-1.7\nthis is no PDF at all\n%%EOF\n", PDF, "cannot be read"),
        (good_pdf[: len(good_pdf) // 3], PDF, "cannot be read"),
        (bytes(corrupt_png), "image/png", "cannot be read"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png", "cannot be read"),
        (b"", PDF, "empty"),
    ]
    for data, media_type, message in cases:
        with pytest.raises(InvalidExhibit) as refused:
            await present(exhibits, hearing, data, media_type)
        assert message in refused.value.message, (media_type, refused.value.message)
    with pytest.raises(InvalidExhibit) as refused:
        await present(exhibits, hearing, good_png, "image/gif")
    assert refused.value.field == "media_type"
    assert stored_files(exhibits) == []
    assert await exhibit_rows(registry) == 0 and await audit_head(registry) == before


async def test_past_50_mib_the_upload_stops_and_nothing_is_kept(
    registry: Registry, exhibits: Exhibits
) -> None:
    hearing = await make_hearing(registry, 9, 11)
    before = await audit_head(registry)
    mib = b"\x00" * (1024 * 1024)
    with pytest.raises(ExhibitTooLarge):
        await exhibits.add(hearing.id, "大文件", PDF, repeated(b"%PDF-", mib, 50),
                           participant_id=None, actor=ACTOR)
    assert stored_files(exhibits) == []
    assert await exhibit_rows(registry) == 0 and await audit_head(registry) == before
    # Exactly the limit is taken as far as size goes (and then refused only as no PDF).
    exact = repeated(mib[: MAX_EXHIBIT_BYTES % len(mib) or len(mib)], mib,
                     MAX_EXHIBIT_BYTES // len(mib) - 1)
    with pytest.raises(InvalidExhibit):
        await exhibits.add(hearing.id, "大文件", PDF, exact, participant_id=None, actor=ACTOR)


async def test_who_may_present_and_when(registry: Registry, exhibits: Exhibits) -> None:
    hearing = await make_hearing(registry, 9, 11)
    other = await make_hearing(registry, 12, 13)
    stranger = await add_judge(registry, other, "Judge Li")
    observer = await registry.add_participant(
        hearing.id, ParticipantIn(name="监督员", role=Role.OBSERVER, location=Location.REMOTE),
        ACTOR,
    )
    with pytest.raises(AccessDenied, match="not in this hearing"):
        await present(exhibits, hearing, png(), "image/png", stranger.participant.id)
    with pytest.raises(AccessDenied, match="observers"):
        await present(exhibits, hearing, png(), "image/png", observer.participant.id)
    with pytest.raises(NotFound):
        await exhibits.add(uuid.uuid4(), "x", "image/png", chunks(png()), participant_id=None,
                           actor=ACTOR)

    await registry.transition(other.id, HearingAction.CANCEL, ACTOR)
    for action in (HearingAction.OPEN, HearingAction.START):
        await registry.transition(hearing.id, action, ACTOR)
    in_session = await present(exhibits, hearing, png(), "image/png")
    assert in_session.pages == 1
    await registry.transition(hearing.id, HearingAction.CLOSE, ACTOR)
    for finished in (hearing, other):
        with pytest.raises(NotEditable) as refused:
            await present(exhibits, finished, pdf(), PDF)
        assert refused.value.details["current_state"] in ("closed", "cancelled")
    assert await exhibit_rows(registry) == 1
    assert stored_files(exhibits) == [exhibits.path_of(in_session)]


async def test_the_same_file_twice_is_two_exhibits_of_one_stored_file(
    registry: Registry, exhibits: Exhibits, clock: FakeClock
) -> None:
    hearing = await make_hearing(registry, 9, 11)
    data = pdf()
    first = await present(exhibits, hearing, data, title="原告证据一")
    clock.advance(timedelta(seconds=1))
    second = await present(exhibits, hearing, data, title="被告证据一")
    assert first.id != second.id and first.path == second.path
    assert [e.title for e in await exhibits.of_hearing(hearing.id)] == ["原告证据一", "被告证据一"]
    assert stored_files(exhibits) == [exhibits.path_of(first)]


async def test_quotas_per_participant_and_per_hearing_count_files_and_bytes(
    registry: Registry, exhibits: Exhibits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(courtrooms.exhibits, "PARTICIPANT_EXHIBITS", 2)
    monkeypatch.setattr(courtrooms.exhibits, "HEARING_EXHIBITS", 3)
    hearing = await make_hearing(registry, 9, 11)
    judge = (await add_judge(registry, hearing)).participant.id
    lawyer = (await add_remote(registry, hearing)).participant.id
    for _ in range(2):
        await present(exhibits, hearing, png(), "image/png", judge)
    with pytest.raises(QuotaExceeded) as refused:
        await present(exhibits, hearing, png(), "image/png", judge)
    assert refused.value.details == {"quota": "participant_exhibits", "limit": 2}
    await present(exhibits, hearing, png(), "image/png", lawyer)
    with pytest.raises(QuotaExceeded) as refused:
        await present(exhibits, hearing, png(), "image/png", lawyer)
    assert refused.value.details == {"quota": "hearing_exhibits", "limit": 3}
    await present(exhibits, hearing, png(), "image/png")  # the staff are not limited
    # Another hearing has quotas of its own.
    other = await make_hearing(registry, 12, 13)
    await present(exhibits, other, png(), "image/png", (await add_judge(
        registry, other, "Judge Li")).participant.id)

    # Bytes: what was presented counts, and an upload stops once it would pass the quota.
    monkeypatch.setattr(courtrooms.exhibits, "PARTICIPANT_EXHIBITS", 30)
    monkeypatch.setattr(courtrooms.exhibits, "HEARING_EXHIBITS", 300)
    used = len(png()) * 4
    monkeypatch.setattr(courtrooms.exhibits, "HEARING_BYTES", used + 3 * 65536)
    before = await audit_head(registry)
    files = stored_files(exhibits)
    sent = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"%PDF-"
        for _ in range(20):
            sent += 1
            yield bytes(65536)

    with pytest.raises(QuotaExceeded) as refused:
        await exhibits.add(hearing.id, "大文件", PDF, counted(), participant_id=lawyer,
                           actor=ACTOR)
    assert refused.value.details["quota"] == "hearing_bytes" and sent <= 4
    monkeypatch.setattr(courtrooms.exhibits, "PARTICIPANT_BYTES", len(png()) + 10)
    with pytest.raises(QuotaExceeded) as refused:
        await present(exhibits, hearing, png(), "image/png", lawyer)
    assert refused.value.details["quota"] == "participant_bytes"
    assert "bytes" in refused.value.message
    assert await audit_head(registry) == before and stored_files(exhibits) == files


async def test_two_uploads_racing_for_the_last_place_get_one(
    registry: Registry, exhibits: Exhibits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(courtrooms.exhibits, "PARTICIPANT_EXHIBITS", 1)
    hearing = await make_hearing(registry, 9, 11)
    judge = (await add_judge(registry, hearing)).participant.id
    both_started = asyncio.Barrier(2)

    async def held(data: bytes) -> AsyncIterator[bytes]:
        await both_started.wait()  # each passed the check before receiving
        yield data

    results = await asyncio.gather(
        *(exhibits.add(hearing.id, "借条", "image/png", held(png(size)), participant_id=judge,
                       actor=ACTOR) for size in ((64, 48), (48, 64))),
        return_exceptions=True)
    assert sum(isinstance(r, Exhibit) for r in results) == 1, results
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 1, results
    assert await exhibit_rows(registry) == 1 and len(stored_files(exhibits)) == 1


async def test_the_presenter_is_checked_before_and_after_receiving(
    registry: Registry, exhibits: Exhibits, clock: FakeClock
) -> None:
    """The edge hands `add` the registry's attendance check: the hearing's window, the court's
    admission and removal, as for joining."""
    hearing = await make_hearing(registry, 9, 11)
    lawyer = (await add_remote(registry, hearing)).participant

    async def attending() -> None:
        await registry.check_attendance(hearing.id, lawyer)

    with pytest.raises(AccessDenied, match="opens at"):
        await exhibits.add(hearing.id, "借条", "image/png", chunks(png()),
                           participant_id=lawyer.id, actor=ACTOR, attending=attending)
    clock.now = at(8.75)
    with pytest.raises(AccessDenied, match="not admitted"):
        await exhibits.add(hearing.id, "借条", "image/png", chunks(png()),
                           participant_id=lawyer.id, actor=ACTOR, attending=attending)
    await registry.record(hearing.id, ACTOR, CourtWord.ADMITTED, participant_id=str(lawyer.id))
    assert await registry.court_word(hearing.id, lawyer.id) is CourtWord.ADMITTED

    async def removed_midway() -> AsyncIterator[bytes]:
        data = pdf()
        yield data[:100]
        await registry.record(hearing.id, ACTOR, CourtWord.REMOVED,
                              participant_id=str(lawyer.id))
        yield data[100:]

    before = await audit_head(registry)
    with pytest.raises(AccessDenied, match="removed by the court"):
        await exhibits.add(hearing.id, "借条", PDF, removed_midway(), participant_id=lawyer.id,
                           actor=ACTOR, attending=attending)
    assert await registry.court_word(hearing.id, lawyer.id) is CourtWord.REMOVED
    assert await audit_head(registry) == before + 1  # the removal, no exhibit
    assert stored_files(exhibits) == [] and await exhibit_rows(registry) == 0
    await registry.record(hearing.id, ACTOR, CourtWord.ADMITTED, participant_id=str(lawyer.id))
    await exhibits.add(hearing.id, "借条", "image/png", chunks(png()),
                       participant_id=lawyer.id, actor=ACTOR, attending=attending)
    await registry.transition(hearing.id, HearingAction.CANCEL, ACTOR)
    with pytest.raises(HearingFinished):
        await registry.check_attendance(hearing.id, lawyer)

"""The trial record (庭审笔录): its lines as spoken, the clerk's corrections, and its seal.

Lines are committed one by one the moment recognition produces them; a correction keeps the
line's earlier text as a revision (who, when, before, after). When the hearing closes the
record's hash enters the audit chain.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms import audit
from courtrooms.database import Database
from courtrooms.errors import InvalidInput, NotFound
from courtrooms.models import Hearing, Participant, SegmentRevision, TranscriptSegment

SEALED = "transcript.sealed"
LIVE_VERSION = 1


@dataclass(frozen=True)
class SpokenLine:
    """A recognized line, as the recognizer hands it over."""

    participant_id: uuid.UUID
    start: float
    end: float
    text: str
    language: str
    words: Sequence[Sequence[Any]] = ()


def record_sha256(segments: Sequence[TranscriptSegment]) -> str:
    lines = [
        {"id": str(s.id), "participant_id": str(s.participant_id), "start": round(s.start, 3),
         "end": round(s.end, 3), "text": s.text, "revision": s.revision}
        for s in sorted(segments, key=lambda s: (s.start, str(s.id)))
    ]
    canonical = json.dumps(lines, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def _latest_version(session: AsyncSession, hearing_id: uuid.UUID) -> int:
    version = await session.scalar(
        select(func.max(TranscriptSegment.version))
        .where(TranscriptSegment.hearing_id == hearing_id)
    )
    return int(version or LIVE_VERSION)


class Transcripts:
    """Registry of trial record lines and their revisions."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    async def add(self, hearing_id: uuid.UUID, line: SpokenLine,
                  version: int = LIVE_VERSION) -> TranscriptSegment:
        async with self.db.write() as session:
            participant = await session.get(Participant, line.participant_id)
            if participant is None or participant.hearing_id != hearing_id:
                raise NotFound("Participant", line.participant_id)
            now = self.clock()
            segment = TranscriptSegment(
                hearing_id=hearing_id, participant_id=line.participant_id, version=version,
                start=line.start, end=line.end, text=line.text[:4000], language=line.language,
                words=[list(w) for w in line.words], created_at=now, updated_at=now,
            )
            session.add(segment)
            await session.flush()
            return segment

    async def latest_version(self, hearing_id: uuid.UUID) -> int:
        async with self.db.read() as session:
            return await _latest_version(session, hearing_id)

    async def of_hearing(
        self, hearing_id: uuid.UUID, version: int | None = None
    ) -> tuple[int, list[TranscriptSegment]]:
        """The record's lines in spoken order: the newest version unless one is named."""
        async with self.db.read() as session:
            if await session.get(Hearing, hearing_id) is None:
                raise NotFound("Hearing", hearing_id)
            if version is None:
                version = await _latest_version(session, hearing_id)
            rows = await session.scalars(
                select(TranscriptSegment)
                .where(TranscriptSegment.hearing_id == hearing_id,
                       TranscriptSegment.version == version)
                .order_by(TranscriptSegment.start, TranscriptSegment.created_at)
            )
            return version, list(rows.all())

    async def correct(self, hearing_id: uuid.UUID, segment_id: uuid.UUID, text: str,
                      actor: str) -> TranscriptSegment:
        """The clerk's correction of a line; the text before it is kept as a revision."""
        if not text.strip():
            raise InvalidInput("a corrected line cannot be empty", field="text")
        async with self.db.write() as session:
            segment = await session.get(TranscriptSegment, segment_id)
            if segment is None or segment.hearing_id != hearing_id:
                raise NotFound("Segment", segment_id)
            if segment.text == text:
                return segment
            now = self.clock()
            segment.revision += 1
            session.add(SegmentRevision(segment_id=segment.id, revision=segment.revision,
                                        author=actor, at=now, before=segment.text, after=text))
            segment.text, segment.updated_at = text, now
            await audit.append(session, actor=actor, action="transcript.corrected", at=now,
                               hearing_id=hearing_id,
                               data={"segment_id": str(segment.id),
                                     "revision": segment.revision})
            return segment

    async def revisions(self, hearing_id: uuid.UUID, segment_id: uuid.UUID
                        ) -> list[SegmentRevision]:
        async with self.db.read() as session:
            segment = await session.get(TranscriptSegment, segment_id)
            if segment is None or segment.hearing_id != hearing_id:
                raise NotFound("Segment", segment_id)
            rows = await session.scalars(
                select(SegmentRevision).where(SegmentRevision.segment_id == segment_id)
                .order_by(SegmentRevision.revision)
            )
            return list(rows.all())

    async def seal(self, hearing_id: uuid.UUID, actor: str) -> str:
        """Hash the record as it stands into the audit chain."""
        version, segments = await self.of_hearing(hearing_id)
        sha = record_sha256(segments)
        async with self.db.write() as session:
            await audit.append(session, actor=actor, action=SEALED, at=self.clock(),
                               hearing_id=hearing_id,
                               data={"record_sha256": sha, "version": version,
                                     "lines": len(segments)})
        return sha

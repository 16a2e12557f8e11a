"""The trial record (庭审笔录): its lines as spoken, the clerk's corrections, and its seal.

Lines are committed one by one the moment recognition produces them; a correction keeps the
line's earlier text as a revision (who, when, before, after). When the hearing closes the
record's hash enters the audit chain; when the judge then seals it, it is hashed again and
takes no more changes.
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
from courtrooms.errors import AccessDenied, InvalidInput, NotEditable, NotFound, RecordSealed
from courtrooms.models import (
    Hearing,
    HearingState,
    Participant,
    Role,
    SegmentRevision,
    TranscriptSegment,
)

SEALED = "transcript.sealed"
SEALED_BY_JUDGE = "transcript.sealed_by_judge"
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


async def _record(
    session: AsyncSession, hearing_id: uuid.UUID, version: int | None = None
) -> tuple[int, list[TranscriptSegment]]:
    if version is None:
        version = await _latest_version(session, hearing_id)
    rows = await session.scalars(
        select(TranscriptSegment)
        .where(TranscriptSegment.hearing_id == hearing_id, TranscriptSegment.version == version)
        .order_by(TranscriptSegment.start, TranscriptSegment.created_at)
    )
    return version, list(rows.all())


async def _unsealed(session: AsyncSession, hearing_id: uuid.UUID) -> Hearing:
    hearing = await session.get(Hearing, hearing_id)
    if hearing is None:
        raise NotFound("Hearing", hearing_id)
    if hearing.record_sealed_at is not None:
        raise RecordSealed(
            f"the trial record was sealed at {hearing.record_sealed_at.isoformat()} "
            "and can no longer change",
            sealed_at=hearing.record_sealed_at.isoformat(),
        )
    return hearing


class Transcripts:
    """Registry of trial record lines and their revisions."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    async def add(self, hearing_id: uuid.UUID, line: SpokenLine,
                  version: int = LIVE_VERSION) -> TranscriptSegment:
        async with self.db.write() as session:
            await _unsealed(session, hearing_id)
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
            return await _record(session, hearing_id, version)

    async def correct(self, hearing_id: uuid.UUID, segment_id: uuid.UUID, text: str,
                      actor: str) -> TranscriptSegment:
        """The clerk's correction of a line; the text before it is kept as a revision."""
        if not text.strip():
            raise InvalidInput("a corrected line cannot be empty", field="text")
        async with self.db.write() as session:
            segment = await session.get(TranscriptSegment, segment_id)
            if segment is None or segment.hearing_id != hearing_id:
                raise NotFound("Segment", segment_id)
            await _unsealed(session, hearing_id)
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
        """Hash the record as it stands into the audit chain (done when the hearing closes)."""
        async with self.db.write() as session:
            if await session.get(Hearing, hearing_id) is None:
                raise NotFound("Hearing", hearing_id)
            return await self._seal(session, hearing_id, actor, SEALED)

    async def seal_by_judge(
        self, hearing_id: uuid.UUID, actor: str, participant: Participant | None
    ) -> Hearing:
        """The judge's seal of a closed hearing's record, corrections included: its hash
        enters the audit chain and the record takes no more changes.

        `participant` is who asks, None for the court's staff; only the judge may.
        """
        if participant is not None and (
            participant.role is not Role.JUDGE or participant.hearing_id != hearing_id
        ):
            raise AccessDenied("only the hearing's judge (or the court's staff) may seal the "
                               f"trial record; this token is a {participant.role.value}'s")
        async with self.db.write() as session:
            hearing = await _unsealed(session, hearing_id)
            if hearing.state is not HearingState.CLOSED:
                raise NotEditable(
                    f"the trial record is sealed once the hearing is closed; it is "
                    f"{hearing.state.value}", current_state=hearing.state.value,
                )
            sha = await self._seal(session, hearing_id, actor, SEALED_BY_JUDGE)
            hearing.record_sealed_at = self.clock()
            hearing.record_sealed_by = actor
            hearing.record_sha256 = sha
            return hearing

    async def _seal(self, session: AsyncSession, hearing_id: uuid.UUID, actor: str,
                    action: str) -> str:
        version, segments = await _record(session, hearing_id)
        sha = record_sha256(segments)
        await audit.append(session, actor=actor, action=action, at=self.clock(),
                           hearing_id=hearing_id,
                           data={"record_sha256": sha, "version": version,
                                 "lines": len(segments)})
        return sha

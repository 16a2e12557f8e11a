"""The recording part of the hearing record: timeline, segments, files, manifest and seal.

Files live under the data directory; rows keep their paths relative to it, so a path in the
record is never taken from a request. When a hearing closes, the manifest (every file with
its participant, offset, duration and sha256) is hashed into the audit chain; `verify` later
re-hashes the files against it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from courtrooms import audit
from courtrooms.database import Database
from courtrooms.errors import AccessDenied, NotFound
from courtrooms.models import (
    AuditEvent,
    Hearing,
    JoinToken,
    Participant,
    Recording,
    RecordingSegment,
    RecordingStatus,
    Role,
)
from courtrooms.secrets import digest

SEALED = "recording.sealed"
REVIEW_ROLES = frozenset({Role.JUDGE, Role.CLERK})
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileOutcome:
    """What a finished, interrupted or repaired file holds (size and hash are read from it)."""

    duration: float
    codecs: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Reviewer:
    """Who may fetch a hearing's recordings: the clerk's API (admin) or a permitted participant."""

    actor: str
    participant: Participant | None = None


def file_sha256(path: Path) -> str:
    digest_ = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest_.update(chunk)
    return digest_.hexdigest()


def manifest_sha256(manifest: dict[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Recordings:
    """Registry of a hearing's recording segments and files."""

    def __init__(self, db: Database, clock: Callable[[], datetime], data_dir: Path) -> None:
        self.db = db
        self.clock = clock
        self.data_dir = data_dir

    def path_of(self, recording: Recording) -> Path:
        return self.data_dir / recording.path

    async def _measure(self, path: str) -> tuple[int, str]:
        full = self.data_dir / path
        if not full.is_file():
            return 0, ""
        return full.stat().st_size, await asyncio.to_thread(file_sha256, full)

    # -- while recording ------------------------------------------------------------------

    async def begin_segment(self, hearing_id: uuid.UUID, now_wall: float) -> tuple[float, int]:
        """Open the next segment; the first one also fixes the hearing's timeline origin.

        Returns the timeline origin (Unix seconds) and the new segment's index.
        """
        async with self.db.write() as session:
            hearing = await session.get(Hearing, hearing_id)
            if hearing is None:
                raise NotFound("Hearing", hearing_id)
            if hearing.timeline_origin is None:
                hearing.timeline_origin = now_wall
            origin = hearing.timeline_origin
            index = (
                await session.execute(
                    select(func.count()).where(RecordingSegment.hearing_id == hearing_id)
                )
            ).scalar_one()
            session.add(RecordingSegment(hearing_id=hearing_id, index=index,
                                         start=now_wall - origin))
            await audit.append(session, actor="system", action="recording.segment_started",
                               at=self.clock(), hearing_id=hearing_id,
                               data={"segment": index, "start": round(now_wall - origin, 3)})
            return origin, index

    async def end_segment(self, hearing_id: uuid.UUID, index: int, end: float) -> None:
        async with self.db.write() as session:
            segment = await session.scalar(
                select(RecordingSegment).where(RecordingSegment.hearing_id == hearing_id,
                                               RecordingSegment.index == index)
            )
            if segment is not None and segment.end is None:
                segment.end = end

    async def file_started(
        self,
        hearing_id: uuid.UUID,
        participant_id: uuid.UUID,
        segment: int,
        path: str,
        offset: float,
    ) -> None:
        async with self.db.write() as session:
            session.add(Recording(
                hearing_id=hearing_id, participant_id=participant_id, kind="participant",
                segment=segment, path=path, media_type="video/webm", codecs="",
                offset=offset, status=RecordingStatus.RECORDING,
            ))

    async def file_finished(
        self, path: str, outcome: FileOutcome, status: RecordingStatus | None = None
    ) -> None:
        """A file was closed (complete), cut short by a write error, or repaired.

        A file never created (its participant sent nothing in the segment) leaves the record.
        """
        size, sha256 = await self._measure(path)
        async with self.db.write() as session:
            row = await session.scalar(select(Recording).where(Recording.path == path))
            if row is None:
                raise NotFound("Recording", path)
            if not sha256 and outcome.error is None:
                await session.delete(row)
                return
            row.duration, row.size, row.sha256 = outcome.duration, size, sha256
            if outcome.codecs:
                row.codecs = outcome.codecs
            row.error = outcome.error[:500] if outcome.error else None
            row.status = status or (
                RecordingStatus.INTERRUPTED if outcome.error else RecordingStatus.COMPLETE
            )
            row.finished_at = self.clock()
            await audit.append(
                session, actor="system", action=f"recording.{row.status.value}", at=self.clock(),
                hearing_id=row.hearing_id,
                data={"recording_id": str(row.id), "path": path, "sha256": row.sha256,
                      "duration": round(row.duration, 3), "error": row.error},
            )

    async def unfinished(self, hearing_id: uuid.UUID | None = None) -> list[Recording]:
        """Files whose writer never finished them: the server died while recording."""
        query = select(Recording).where(Recording.status == RecordingStatus.RECORDING)
        if hearing_id is not None:
            query = query.where(Recording.hearing_id == hearing_id)
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def end_open_segments(self, hearing_id: uuid.UUID) -> None:
        """Segments left open by a server that died: each ends where its longest file does
        (its start when no file survived), so the timeline has no segment without an end."""
        async with self.db.write() as session:
            segments = (await session.scalars(select(RecordingSegment).where(
                RecordingSegment.hearing_id == hearing_id, RecordingSegment.end.is_(None),
            ))).all()
            for segment in segments:
                files = (await session.scalars(select(Recording).where(
                    Recording.hearing_id == hearing_id, Recording.segment == segment.index,
                ))).all()
                segment.end = max((f.offset + (f.duration or 0.0) for f in files),
                                  default=segment.start)
                await audit.append(session, actor="system", action="recording.segment_recovered",
                                   at=self.clock(), hearing_id=hearing_id,
                                   data={"segment": segment.index,
                                         "end": round(segment.end, 3)})

    # -- afterwards -----------------------------------------------------------------------

    async def add_composite(self, hearing_id: uuid.UUID, path: str, outcome: FileOutcome) -> None:
        size, sha256 = await self._measure(path)
        async with self.db.write() as session:
            old = await session.scalar(select(Recording).where(
                Recording.hearing_id == hearing_id, Recording.kind == "composite"))
            if old is not None:
                await session.delete(old)
                await session.flush()
            row = Recording(
                hearing_id=hearing_id, kind="composite", path=path, media_type="video/mp4",
                codecs=outcome.codecs, offset=0.0, duration=outcome.duration, size=size,
                sha256=sha256, status=RecordingStatus.COMPLETE,
                finished_at=self.clock(),
            )
            session.add(row)
            await session.flush()
            await audit.append(session, actor="system", action="recording.composite",
                               at=self.clock(), hearing_id=hearing_id,
                               data={"recording_id": str(row.id), "sha256": sha256})

    async def of_hearing(
        self, hearing_id: uuid.UUID
    ) -> tuple[list[Recording], list[RecordingSegment]]:
        async with self.db.read() as session:
            if await session.get(Hearing, hearing_id) is None:
                raise NotFound("Hearing", hearing_id)
            files = await session.scalars(
                select(Recording).where(Recording.hearing_id == hearing_id)
                .order_by(Recording.kind.desc(), Recording.segment, Recording.created_at)
            )
            segments = await session.scalars(
                select(RecordingSegment).where(RecordingSegment.hearing_id == hearing_id)
                .order_by(RecordingSegment.index)
            )
            return list(files.all()), list(segments.all())

    async def get(self, hearing_id: uuid.UUID, recording_id: uuid.UUID) -> Recording:
        async with self.db.read() as session:
            row = await session.get(Recording, recording_id)
            if row is None or row.hearing_id != hearing_id:
                raise NotFound("Recording", recording_id)
            return row

    async def manifest(self, hearing_id: uuid.UUID) -> dict[str, Any]:
        files, segments = await self.of_hearing(hearing_id)
        return _manifest(hearing_id, files, segments)

    async def seal(self, hearing_id: uuid.UUID, actor: str) -> str:
        """Hash the manifest of the participants' files into the audit chain."""
        async with self.db.write() as session:
            files = (await session.scalars(
                select(Recording).where(Recording.hearing_id == hearing_id)
            )).all()
            segments = (await session.scalars(
                select(RecordingSegment).where(RecordingSegment.hearing_id == hearing_id)
            )).all()
            manifest = _manifest(hearing_id, list(files), list(segments))
            sha = manifest_sha256(manifest)
            await audit.append(session, actor=actor, action=SEALED, at=self.clock(),
                               hearing_id=hearing_id,
                               data={"manifest_sha256": sha, "files": len(manifest["files"])})
            return sha

    async def verify(self) -> list[str]:
        """Re-hash every sealed hearing's manifest and files; one line per problem found."""
        problems: list[str] = []
        async with self.db.read() as session:
            seals = (await session.scalars(
                select(AuditEvent).where(AuditEvent.action == SEALED).order_by(AuditEvent.seq)
            )).all()
        latest = {seal.hearing_id: seal for seal in seals if seal.hearing_id is not None}
        for hearing_id, seal in latest.items():
            manifest = await self.manifest(hearing_id)
            if manifest_sha256(manifest) != seal.data.get("manifest_sha256"):
                problems.append(f"hearing {hearing_id}: the recording manifest differs from "
                                f"the one sealed in audit event {seal.seq}")
            for entry in manifest["files"]:
                path = self.data_dir / entry["path"]
                if not path.is_file():
                    problems.append(f"hearing {hearing_id}: {entry['path']} is missing")
                elif await asyncio.to_thread(file_sha256, path) != entry["sha256"]:
                    problems.append(f"hearing {hearing_id}: {entry['path']} was altered "
                                    "(sha256 differs from the record)")
        return problems

    # -- access ---------------------------------------------------------------------------

    async def holder(self, hearing_id: uuid.UUID, token: str) -> Participant:
        """The participant of this hearing behind a join token that is not revoked.

        Unlike joining, this is not limited to the hearing's window: the record is reviewed,
        exhibits are presented and the record is sealed outside it too.
        """
        async with self.db.read() as session:
            row = (await session.execute(
                select(JoinToken, Participant)
                .join(Participant, Participant.id == JoinToken.participant_id)
                .where(JoinToken.token_hash == digest(token))
            )).first()
        if row is None or row[0].revoked_at is not None:
            raise AccessDenied("unknown or revoked token")
        participant = row[1]
        if participant.hearing_id != hearing_id:
            raise AccessDenied("this token belongs to another hearing")
        return participant

    async def reviewer(self, hearing_id: uuid.UUID, token: str) -> Reviewer:
        """The participant behind a join token, if it may review this hearing's recordings."""
        participant = await self.holder(hearing_id, token)
        if participant.role not in REVIEW_ROLES and not participant.may_review:
            raise AccessDenied(
                "only the hearing's judge and clerk, and those the judge permits, "
                "may review its recordings"
            )
        return Reviewer(actor=f"participant:{participant.id}", participant=participant)

    async def permit_review(
        self, hearing_id: uuid.UUID, participant_id: uuid.UUID, allowed: bool, actor: str
    ) -> Participant:
        async with self.db.write() as session:
            participant = await session.get(Participant, participant_id)
            if participant is None or participant.hearing_id != hearing_id:
                raise NotFound("Participant", participant_id)
            participant.may_review = allowed
            await audit.append(
                session, actor=actor,
                action="recording.review_permitted" if allowed else "recording.review_revoked",
                at=self.clock(), hearing_id=hearing_id,
                data={"participant_id": str(participant_id)},
            )
            return participant


def _manifest(
    hearing_id: uuid.UUID, files: list[Recording], segments: list[RecordingSegment]
) -> dict[str, Any]:
    return {
        "hearing_id": str(hearing_id),
        "segments": [
            {"index": s.index, "start": round(s.start, 3),
             "end": None if s.end is None else round(s.end, 3)}
            for s in sorted(segments, key=lambda s: s.index)
        ],
        "files": [
            {
                "path": f.path,
                "participant_id": str(f.participant_id),
                "segment": f.segment,
                "media_type": f.media_type,
                "codecs": f.codecs,
                "offset": round(f.offset, 3),
                "duration": round(f.duration, 3),
                "sha256": f.sha256,
                "status": f.status.value,
            }
            for f in sorted(files, key=lambda f: f.path)
            if f.kind == "participant"
        ],
    }

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
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms import anchor, audit
from courtrooms.audit import Finding
from courtrooms.database import Database
from courtrooms.errors import AccessDenied, NotFound
from courtrooms.models import (
    REVIEW_ROLES,
    AuditEvent,
    Hearing,
    JoinToken,
    Participant,
    Recording,
    RecordingSegment,
    RecordingStatus,
)
from courtrooms.secrets import digest

SEALED = "recording.sealed"
UNFINISHED_AT_SEAL = "recording.unfinished_at_seal"
# Events that put a file's hash on the record, each naming the file's `recording_id`.
FILE_EVENTS = ("recording.complete", "recording.interrupted", "recording.recovered")
COMPOSITE = "recording.composite"
CLOSED = "hearing.close"
# How often sealing looks again for files still being written.
FINISHED_POLL_S = 0.1
# What the court did that the recording shows as an absence: muted audio, a consultation.
TIMELINE_ACTIONS = ("participant.muted", "participant.unmuted", "consultation.started",
                    "consultation.ended")
HASH_CHUNK = 1 << 20
HASHING_AT_ONCE = 2


@dataclass(frozen=True)
class FileOutcome:
    """What a finished, interrupted or repaired file holds (size and hash are read from it)."""

    duration: float
    codecs: str = ""
    error: str | None = None


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

    def __init__(self, db: Database, clock: Callable[[], datetime], data_dir: Path,
                 signer: anchor.Signer | None = None) -> None:
        self.db = db
        self.clock = clock
        self.data_dir = data_dir
        # Signs the seals (the process's key, set at start; none in tools that only read).
        self.signer = signer
        # Hashing a long recording takes seconds of a default-executor thread; a close of a
        # many-party hearing must not take all of them from departures and rejoins.
        self._hashing = asyncio.Semaphore(HASHING_AT_ONCE)

    def path_of(self, recording: Recording) -> Path:
        return self.data_dir / recording.path

    async def _measure(self, path: str) -> tuple[int, str]:
        full = self.data_dir / path
        if not full.is_file():
            return 0, ""
        async with self._hashing:
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
        self, path: str, outcome: FileOutcome, status: RecordingStatus | None = None, *,
        repaired: str | None = None,
    ) -> None:
        """A file was closed (complete), cut short by a write error, or repaired.

        A file never created (its participant sent nothing in the segment) leaves the record.
        A file `repaired` beside itself stays as captured: the row then names the repaired
        file (`path`, the one played) and the captured one (`captured_path`), both hashed.
        """
        size, sha256 = await self._measure(repaired or path)
        captured = await self._measure(path) if repaired else None
        async with self.db.write() as session:
            row = await session.scalar(select(Recording).where(Recording.path == path))
            if row is None:
                raise NotFound("Recording", path)
            if not sha256 and outcome.error is None:
                await session.delete(row)
                return
            if repaired is not None and captured is not None:
                row.captured_path, row.path = path, repaired
                row.captured_size, row.captured_sha256 = captured
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
                data={"recording_id": str(row.id), "path": row.path, "sha256": row.sha256,
                      "duration": round(row.duration, 3), "error": row.error,
                      **({"captured_path": row.captured_path,
                          "captured_sha256": row.captured_sha256} if repaired else {})},
            )
            if await session.scalar(select(AuditEvent.seq).where(
                    AuditEvent.hearing_id == row.hearing_id, AuditEvent.action == SEALED
            ).limit(1)) is not None:
                # Sealing gave up waiting for this file: the seal follows what it now holds.
                await self._seal(session, row.hearing_id, "system",
                                 reason=f"{path} finished after the seal")

    async def unfinished(self, hearing_id: uuid.UUID | None = None) -> list[Recording]:
        """Files whose writer never finished them: the server died while recording."""
        query = select(Recording).where(Recording.status == RecordingStatus.RECORDING)
        if hearing_id is not None:
            query = query.where(Recording.hearing_id == hearing_id)
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def with_open_segments(self) -> list[uuid.UUID]:
        """Hearings with a segment still open: being recorded, or by a server that died."""
        async with self.db.read() as session:
            return list((await session.scalars(
                select(RecordingSegment.hearing_id).where(RecordingSegment.end.is_(None))
                .distinct())).all())

    async def end_open_segments(self, hearing_id: uuid.UUID) -> int:
        """Segments left open by a server that died: each ends where its longest file does
        (its start when no file survived), so the timeline has no segment without an end.
        Returns how many there were."""
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
            return len(segments)

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

    async def timeline_events(self, hearing_id: uuid.UUID) -> list[AuditEvent]:
        """The court's events that change what the recording holds (muting, consultations),
        with the wall-clock instant they happened (`data["wall"]`, the recordings' clock)."""
        async with self.db.read() as session:
            events = await session.scalars(
                select(AuditEvent).where(AuditEvent.hearing_id == hearing_id,
                                         AuditEvent.action.in_(TIMELINE_ACTIONS))
                .order_by(AuditEvent.seq))
            return [e for e in events if isinstance(e.data.get("wall"), float | int)]

    async def get(self, hearing_id: uuid.UUID, recording_id: uuid.UUID) -> Recording:
        async with self.db.read() as session:
            row = await session.get(Recording, recording_id)
            if row is None or row.hearing_id != hearing_id:
                raise NotFound("Recording", recording_id)
            return row

    async def manifest(self, hearing_id: uuid.UUID) -> dict[str, Any]:
        files, segments = await self.of_hearing(hearing_id)
        return _manifest(hearing_id, files, segments)

    async def wait_finished(self, hearing_id: uuid.UUID, within_s: float) -> list[str]:
        """Wait until no file of the hearing is still being written (a departure's file
        may finish after the media room closed); the paths still unfinished after `within_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            async with self.db.read() as session:
                paths = list((await session.scalars(select(Recording.path).where(
                    Recording.hearing_id == hearing_id,
                    Recording.status == RecordingStatus.RECORDING,
                ).order_by(Recording.path))).all())
            if not paths or loop.time() >= deadline:
                return paths
            await asyncio.sleep(FINISHED_POLL_S)

    async def closed_by(self, hearing_id: uuid.UUID) -> str:
        """Who closed the hearing: the seals made at the close are theirs."""
        async with self.db.read() as session:
            actor = await session.scalar(select(AuditEvent.actor).where(
                AuditEvent.hearing_id == hearing_id, AuditEvent.action == CLOSED,
            ).order_by(AuditEvent.seq.desc()).limit(1))
        return actor or "system"

    async def seal(self, hearing_id: uuid.UUID, actor: str,
                   unfinished: list[str] | None = None) -> str:
        """Put the manifest of the participants' files, and its hash, on the audit chain,
        signed; `unfinished` names files sealing gave up waiting for (audited first)."""
        async with self.db.write() as session:
            if unfinished:
                await audit.append(session, actor="system", action=UNFINISHED_AT_SEAL,
                                   at=self.clock(), hearing_id=hearing_id,
                                   data={"paths": unfinished})
            return await self._seal(session, hearing_id, actor)

    async def _seal(self, session: AsyncSession, hearing_id: uuid.UUID, actor: str,
                    reason: str | None = None) -> str:
        files = (await session.scalars(
            select(Recording).where(Recording.hearing_id == hearing_id)
        )).all()
        segments = (await session.scalars(
            select(RecordingSegment).where(RecordingSegment.hearing_id == hearing_id)
        )).all()
        manifest = _manifest(hearing_id, list(files), list(segments))
        sha = manifest_sha256(manifest)
        at = self.clock()
        data: dict[str, Any] = {"manifest_sha256": sha, "files": len(manifest["files"]),
                                "sealed_by": actor, "manifest": manifest}
        if reason:
            data["reason"] = reason
        await audit.append(session, actor=actor, action=SEALED, at=at, hearing_id=hearing_id,
                           data=anchor.signed(self.signer, SEALED, hearing_id, at, data))
        return sha

    async def verify(self) -> list[Finding]:
        """Every sealed manifest against the files' rows now, and every file (participants'
        and composites, sealed or not) against its row and the hash the audit chain holds
        for it; one finding per problem."""
        async with self.db.read() as session:
            seals = await audit.latest_by(session, (SEALED,))
            audited = await audit.latest_by(session, FILE_EVENTS, key="recording_id")
            composites = await audit.latest_by(session, (COMPOSITE,))
            rows = list((await session.scalars(select(Recording))).all())
        found: list[Finding] = []
        for hearing_id, seal in seals.items():
            manifest = await self.manifest(hearing_id)
            if manifest_sha256(manifest) != seal.data.get("manifest_sha256"):
                found.append(Finding(
                    f"hearing {hearing_id}: the recording manifest differs from the one "
                    f"sealed in audit event {seal.seq}"
                    + _manifest_changes(seal.data.get("manifest"), manifest),
                    hearing_id, seal.at))
        by_id = {str(r.id): r for r in rows}
        for recording_id, event in audited.items():
            if recording_id not in by_id:
                found.append(Finding(
                    f"hearing {event.hearing_id}: recording {event.data.get('path')} (audit "
                    f"event {event.seq}) was deleted from the database", event.hearing_id,
                    event.at))
        for hearing_id, event in composites.items():
            if str(event.data.get("recording_id")) not in by_id:
                found.append(Finding(
                    f"hearing {hearing_id}: the review composite of audit event {event.seq} "
                    "was deleted from the database", hearing_id, event.at))
        for row in sorted(rows, key=lambda r: r.path):
            found.extend(await self._verify_file(
                row, composites.get(row.hearing_id) if row.kind == "composite"
                else audited.get(str(row.id))))
        return found

    async def _verify_file(self, row: Recording, event: AuditEvent | None) -> list[Finding]:
        where = f"hearing {row.hearing_id}: {row.path}"
        if row.status is RecordingStatus.RECORDING:
            return []  # still being written, or left by a killed server until its repair
        found = []
        if event is None or str(event.data.get("recording_id")) != str(row.id):
            found.append(Finding(f"{where} is not on the audit record", row.hearing_id,
                                 row.finished_at))
        elif event.data.get("sha256") != row.sha256:
            found.append(Finding(
                f"{where}: its row's sha256 differs from the one audit event {event.seq} "
                "holds", row.hearing_id, event.at))
        path = self.data_dir / row.path
        if not await asyncio.to_thread(path.is_file):
            found.append(Finding(f"{where} is missing", row.hearing_id, row.finished_at))
        elif (await asyncio.to_thread(file_sha256, path)) not in (
                row.sha256, event.data.get("sha256") if event is not None else None):
            found.append(Finding(f"{where} was altered (sha256 differs from the record)",
                                 row.hearing_id, row.finished_at))
        if row.captured_path is not None:  # repaired: the bytes as captured are kept too
            captured = self.data_dir / row.captured_path
            where = f"hearing {row.hearing_id}: {row.captured_path} (as captured)"
            if event is not None and event.data.get("captured_sha256") != row.captured_sha256:
                found.append(Finding(
                    f"{where}: its row's sha256 differs from the one audit event {event.seq} "
                    "holds", row.hearing_id, event.at))
            if not await asyncio.to_thread(captured.is_file):
                found.append(Finding(f"{where} is missing", row.hearing_id, row.finished_at))
            elif (await asyncio.to_thread(file_sha256, captured)) not in (
                    row.captured_sha256,
                    event.data.get("captured_sha256") if event is not None else None):
                found.append(Finding(f"{where} was altered (sha256 differs from the record)",
                                     row.hearing_id, row.finished_at))
        return found

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

    async def holder_by_id(self, hearing_id: uuid.UUID, participant_id: uuid.UUID
                           ) -> Participant:
        """The participant of this hearing, if they still hold a token that is not revoked
        (what a link made for them stands on)."""
        async with self.db.read() as session:
            participant = await session.get(Participant, participant_id)
            live = (await session.scalars(select(JoinToken.id).where(
                JoinToken.participant_id == participant_id, JoinToken.revoked_at.is_(None),
            ).limit(1))).first()
        if participant is None or participant.hearing_id != hearing_id:
            raise AccessDenied("this link belongs to another hearing")
        if live is None:
            raise AccessDenied("the token this link was made for has been revoked")
        return participant

    @staticmethod
    def check_review(participant: Participant) -> None:
        """Whether the participant may review the hearing's recordings."""
        if participant.role not in REVIEW_ROLES and not participant.may_review:
            raise AccessDenied(
                "only the hearing's judge and clerk, and those the judge permits, "
                "may review its recordings"
            )

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


def _manifest_changes(sealed: Any, now: dict[str, Any]) -> str:
    """What differs between the manifest a seal holds and the one the rows give now."""
    if not isinstance(sealed, dict) or not isinstance(sealed.get("files"), list):
        return ""
    before = {str(f.get("path")): f for f in sealed["files"] if isinstance(f, dict)}
    after = {f["path"]: f for f in now["files"]}
    changes = [f"{p} removed" for p in sorted(set(before) - set(after))]
    changes += [f"{p} added" for p in sorted(set(after) - set(before))]
    changes += [f"{p} changed" for p in sorted(set(before) & set(after))
                if before[p] != after[p]]
    if sealed.get("segments") != now["segments"]:
        changes.append("segments changed")
    return f" ({', '.join(changes)})" if changes else ""


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
                # Only for a repaired file: earlier manifests hash as they did.
                **({"captured_path": f.captured_path, "captured_sha256": f.captured_sha256}
                   if f.captured_path else {}),
            }
            for f in sorted(files, key=lambda f: f.path)
            if f.kind == "participant"
        ],
    }

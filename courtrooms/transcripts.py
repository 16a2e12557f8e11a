"""The trial record (庭审笔录): its lines as spoken, the clerk's corrections, and its seal.

Lines are committed one by one the moment recognition produces them; a correction keeps the
line's earlier text as a revision (who, when, before, after). When the hearing closes the
record's hash enters the audit chain; when the judge then seals it, it is hashed again and
takes no more changes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms import anchor, audit
from courtrooms.audit import Finding
from courtrooms.database import Database
from courtrooms.editing import DraftLine, RecordEdit, apply
from courtrooms.errors import AccessDenied, InvalidInput, NotEditable, NotFound, RecordSealed
from courtrooms.models import (
    AuditEvent,
    Hearing,
    HearingState,
    LineRevision,
    Participant,
    Role,
    TrialRecordLine,
)

SEALED = "transcript.sealed"
SEALED_BY_JUDGE = "transcript.sealed_by_judge"
CORRECTED = "transcript.corrected"
EDITED = "transcript.edited"
# Speech the live transcriber missed and the recording could not give back (audited at close).
INCOMPLETE = "transcript.incomplete"
LIVE_VERSION = 1
# Who revises a live line with its settled text (offline-style decoding behind the live lines).
SETTLING = "recognizer:settled"


@dataclass(frozen=True)
class LineHistory:
    """How a line came to read as it does: corrections by people (settling's revision is
    none: the recognizer decoded the recording again), and whether settling revised it."""

    corrections: int = 0
    settled: bool = False


@dataclass(frozen=True)
class RecordVersion:
    version: int
    lines: int
    made_by: str | None  # None: the live record or a retranscription
    at: datetime | None
    edit: str | None  # delete | insert | speaker | merge | split
    from_version: int | None
    reason: str | None


@dataclass(frozen=True)
class UntranscribedSpan:
    """Speech of a participant missing from the live record: the record notes it there."""

    participant_id: uuid.UUID
    start: float
    end: float | None  # None: until the hearing's end


@dataclass(frozen=True)
class SpokenLine:
    """A recognized line, as the recognizer hands it over."""

    participant_id: uuid.UUID
    start: float
    end: float
    text: str
    language: str
    words: Sequence[Sequence[Any]] = ()
    # Transcribed from the recording after the live transcriber failed (not said live).
    recovered: bool = False


@dataclass(frozen=True)
class SealedLine:
    """What a seal covers of a line."""

    id: uuid.UUID
    participant_id: uuid.UUID
    start: float
    end: float
    text: str
    revision: int
    recovered: bool = False

    @staticmethod
    def of(line: TrialRecordLine) -> SealedLine:
        return SealedLine(line.id, line.participant_id, line.start, line.end, line.text,
                          line.revision, bool(line.recovered))


def record_sha256(lines: Sequence[TrialRecordLine | SealedLine]) -> str:
    data = []
    for s in sorted(lines, key=lambda s: (s.start, str(s.id))):
        entry: dict[str, Any] = {
            "id": str(s.id), "participant_id": str(s.participant_id),
            "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text,
            "revision": s.revision}
        if s.recovered:  # only when set, so that records sealed before the flag still match
            entry["recovered"] = True
        data.append(entry)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def latest_version_of(session: AsyncSession, hearing_id: uuid.UUID) -> int:
    version = await session.scalar(
        select(func.max(TrialRecordLine.version))
        .where(TrialRecordLine.hearing_id == hearing_id)
    )
    return int(version or LIVE_VERSION)


async def record_lines(
    session: AsyncSession, hearing_id: uuid.UUID, version: int | None = None
) -> tuple[int, list[TrialRecordLine]]:
    if version is None:
        version = await latest_version_of(session, hearing_id)
    rows = await session.scalars(
        select(TrialRecordLine)
        .where(TrialRecordLine.hearing_id == hearing_id, TrialRecordLine.version == version)
        .order_by(TrialRecordLine.start, TrialRecordLine.created_at)
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

    def __init__(self, db: Database, clock: Callable[[], datetime],
                 signer: anchor.Signer | None = None) -> None:
        self.db = db
        self.clock = clock
        # Signs the seals (the process's key, set at start).
        self.signer = signer

    async def add(self, hearing_id: uuid.UUID, line: SpokenLine,
                  version: int = LIVE_VERSION) -> TrialRecordLine:
        async with self.db.write() as session:
            await _unsealed(session, hearing_id)
            participant = await session.get(Participant, line.participant_id)
            if participant is None or participant.hearing_id != hearing_id:
                raise NotFound("Participant", line.participant_id)
            now = self.clock()
            row = TrialRecordLine(
                hearing_id=hearing_id, participant_id=line.participant_id, version=version,
                start=line.start, end=line.end, text=line.text[:4000], language=line.language,
                words=[list(w) for w in line.words], recovered=line.recovered,
                created_at=now, updated_at=now,
            )
            session.add(row)
            await session.flush()
            return row

    async def latest_version(self, hearing_id: uuid.UUID) -> int:
        async with self.db.read() as session:
            return await latest_version_of(session, hearing_id)

    async def of_hearing(
        self, hearing_id: uuid.UUID, version: int | None = None
    ) -> tuple[int, list[TrialRecordLine]]:
        """The record's lines in spoken order: the newest version unless one is named."""
        async with self.db.read() as session:
            if await session.get(Hearing, hearing_id) is None:
                raise NotFound("Hearing", hearing_id)
            return await record_lines(session, hearing_id, version)

    async def untranscribed(self, hearing_id: uuid.UUID) -> list[UntranscribedSpan]:
        """The live record's holes, from the audit (where the transcriber reported them)."""
        async with self.db.read() as session:
            events = await session.scalars(select(AuditEvent).where(
                AuditEvent.hearing_id == hearing_id, AuditEvent.action == INCOMPLETE)
                .order_by(AuditEvent.seq))
            return sorted((UntranscribedSpan(uuid.UUID(gap["participant_id"]), gap["start"],
                                             gap["end"])
                           for event in events for gap in event.data.get("gaps", ())),
                          key=lambda span: span.start)

    async def correct(self, hearing_id: uuid.UUID, line_id: uuid.UUID, text: str,
                      actor: str) -> TrialRecordLine:
        """The clerk's correction of a line; the text before it is kept as a revision."""
        if not text.strip():
            raise InvalidInput("a corrected line cannot be empty", field="text")
        async with self.db.write() as session:
            line = await session.get(TrialRecordLine, line_id)
            if line is None or line.hearing_id != hearing_id:
                raise NotFound("Trial record line", line_id)
            await _unsealed(session, hearing_id)
            if line.text != text:
                await _revise(session, line, text, actor, self.clock())
            return line

    async def settle(self, hearing_id: uuid.UUID, texts: dict[uuid.UUID, str],
                     added: Sequence[SpokenLine]) -> tuple[list[TrialRecordLine],
                                                            list[TrialRecordLine]]:
        """Settled text for live lines, and settled lines the live ones missed, in one
        transaction: (the lines revised, the lines added). A line someone has corrected
        keeps their text, and nothing is settled once the clerk has edited the record's
        structure (its newest version is no longer the live one) or it is sealed."""
        async with self.db.write() as session:
            hearing = await session.get(Hearing, hearing_id)
            if (hearing is None or hearing.record_sealed_at is not None
                    or await latest_version_of(session, hearing_id) != LIVE_VERSION):
                return [], []
            now = self.clock()
            revised = []
            for line_id, text in texts.items():
                line = await session.get(TrialRecordLine, line_id)
                if (line is None or line.hearing_id != hearing_id or line.version != LIVE_VERSION
                        or not text.strip() or line.text == text):
                    continue
                if line.revision and await session.scalar(select(func.count()).where(
                        LineRevision.line_id == line.id, LineRevision.author != SETTLING)):
                    continue  # a person corrected it
                await _revise(session, line, text, SETTLING, now)
                revised.append(line)
            made = []
            for spoken in added:
                if not spoken.text.strip():
                    continue
                row = TrialRecordLine(
                    hearing_id=hearing_id, participant_id=spoken.participant_id,
                    version=LIVE_VERSION, start=spoken.start, end=spoken.end,
                    text=spoken.text[:4000], language=spoken.language,
                    words=[list(w) for w in spoken.words], recovered=False,
                    created_at=now, updated_at=now)
                session.add(row)
                made.append(row)
            await session.flush()
            return revised, made

    async def edit(self, hearing_id: uuid.UUID, change: RecordEdit, actor: str
                   ) -> tuple[int, list[TrialRecordLine]]:
        """The clerk's structural edit: the newest version's lines, changed, become the next
        version (the earlier one stays as it was). Refused once the judge sealed the record."""
        async with self.db.write() as session:
            hearing = await _unsealed(session, hearing_id)
            version, rows = await record_lines(session, hearing_id)
            if change.participant_id is not None:
                speaker = await session.get(Participant, change.participant_id)
                if (speaker is None or speaker.hearing_id != hearing_id
                        or speaker.role is Role.OBSERVER):
                    raise InvalidInput("the speaker must be a participant of the hearing "
                                       "(not an observer)", field="participant_id")
            drafts = [DraftLine(r.participant_id, r.start, r.end, r.text, r.language,
                                tuple(tuple(w) for w in r.words or ()), bool(r.recovered), r.id)
                      for r in rows]
            edited = apply(drafts, change, hearing.language or "zh")
            now, new_version = self.clock(), await latest_version_of(session, hearing_id) + 1
            made = [TrialRecordLine(
                hearing_id=hearing_id, participant_id=d.participant_id, version=new_version,
                start=d.start, end=d.end, text=d.text[:4000], language=d.language,
                words=[list(w) for w in d.words], recovered=d.recovered, created_at=now,
                updated_at=now) for d in edited]
            session.add_all(made)
            await session.flush()
            await audit.append(session, actor=actor, action=EDITED, at=now,
                               hearing_id=hearing_id, data={
                                   "edit": change.action, "from_version": version,
                                   "version": new_version,
                                   "line_ids": [str(x) for x in change.line_ids],
                                   "participant_id": str(change.participant_id)
                                   if change.participant_id else None,
                                   "reason": change.reason,
                                   "record_sha256": record_sha256(made)})
            return new_version, sorted(made, key=lambda li: li.start)

    async def versions(self, hearing_id: uuid.UUID) -> list[RecordVersion]:
        """Every version of the record: the live one, each retranscription and each edit
        (who made it, when, what it changed)."""
        async with self.db.read() as session:
            if await session.get(Hearing, hearing_id) is None:
                raise NotFound("Hearing", hearing_id)
            counts = dict((await session.execute(
                select(TrialRecordLine.version, func.count()).where(
                    TrialRecordLine.hearing_id == hearing_id)
                .group_by(TrialRecordLine.version))).all())
            edits = {int(e.data["version"]): e for e in await session.scalars(
                select(AuditEvent).where(AuditEvent.hearing_id == hearing_id,
                                         AuditEvent.action == EDITED))}
        out = []
        for number in sorted(counts.keys() | edits.keys()):  # an edit may leave no line
            event = edits.get(number)
            out.append(RecordVersion(
                version=number, lines=int(counts.get(number, 0)),
                made_by=event.actor if event else None, at=event.at if event else None,
                edit=event.data["edit"] if event else None,
                from_version=event.data.get("from_version") if event else None,
                reason=event.data.get("reason") if event else None))
        return out

    async def histories(self, hearing_id: uuid.UUID) -> dict[uuid.UUID, LineHistory]:
        """Each revised line's `LineHistory` (a line never revised has none)."""
        async with self.db.read() as session:
            rows = (await session.execute(
                select(LineRevision.line_id, LineRevision.author)
                .join(TrialRecordLine, TrialRecordLine.id == LineRevision.line_id)
                .where(TrialRecordLine.hearing_id == hearing_id))).all()
        out: dict[uuid.UUID, LineHistory] = {}
        for line_id, author in rows:
            seen = out.get(line_id, LineHistory())
            out[line_id] = (replace(seen, settled=True) if author == SETTLING
                            else replace(seen, corrections=seen.corrections + 1))
        return out

    async def revisions(self, hearing_id: uuid.UUID, line_id: uuid.UUID
                        ) -> list[LineRevision]:
        async with self.db.read() as session:
            line = await session.get(TrialRecordLine, line_id)
            if line is None or line.hearing_id != hearing_id:
                raise NotFound("Trial record line", line_id)
            rows = await session.scalars(
                select(LineRevision).where(LineRevision.line_id == line_id)
                .order_by(LineRevision.revision)
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
        version, lines = await record_lines(session, hearing_id)
        sha = record_sha256(lines)
        at = self.clock()
        data = {"record_sha256": sha, "version": version, "lines": len(lines),
                "sealed_by": actor}
        await audit.append(session, actor=actor, action=action, at=at, hearing_id=hearing_id,
                           data=anchor.signed(self.signer, action, hearing_id, at, data))
        return sha

    async def verify(self) -> list[Finding]:
        """Every seal of a trial record against the lines stored now: the judge's seal
        against the record as it stands (which can no longer change), the seal at the close
        against the record as it was then (undoing the corrections audited since); every
        corrected line against its revisions and its last audited correction."""
        found: list[Finding] = []
        async with self.db.read() as session:
            at_close = await audit.latest_by(session, (SEALED,))
            by_judge = await audit.latest_by(session, (SEALED_BY_JUDGE,))
            corrections = (await session.scalars(select(AuditEvent).where(
                AuditEvent.action == CORRECTED).order_by(AuditEvent.seq))).all()
            sealed_rows = (await session.scalars(select(Hearing).where(
                Hearing.record_sealed_at.is_not(None)))).all()
            for hearing in sealed_rows:
                if hearing.id not in by_judge:
                    found.append(Finding(
                        f"hearing {hearing.id}: the trial record is marked sealed but no seal "
                        "of it is on the audit record", hearing.id, hearing.record_sealed_at))
            for hearing_id, seal in by_judge.items():
                found.extend(await _verify_judge_seal(session, hearing_id, seal))
            for hearing_id, seal in at_close.items():
                found.extend(await _verify_close_seal(session, hearing_id, seal, [
                    c for c in corrections if c.hearing_id == hearing_id]))
            found.extend(await _verify_corrections(session, corrections))
        return found


async def _revise(session: AsyncSession, line: TrialRecordLine, text: str, actor: str,
                  now: datetime) -> None:
    """A line's text changed: the text before is kept as a revision, and audited."""
    line.revision += 1
    session.add(LineRevision(line_id=line.id, revision=line.revision,
                             author=actor, at=now, before=line.text, after=text))
    line.text, line.updated_at = text, now
    # The audit chain's data keeps the API's name for a line's id.
    await audit.append(session, actor=actor, action=CORRECTED, at=now,
                       hearing_id=line.hearing_id,
                       data={"segment_id": str(line.id), "revision": line.revision,
                             "text_sha256": text_sha256(text)})


async def _verify_judge_seal(session: AsyncSession, hearing_id: uuid.UUID,
                             seal: AuditEvent) -> list[Finding]:
    found = []
    hearing = await session.get(Hearing, hearing_id)
    where = f"hearing {hearing_id}: the trial record sealed by the judge in audit event {seal.seq}"
    if hearing is None:
        return [Finding(f"{where} belongs to a hearing that was deleted", hearing_id, seal.at)]
    if hearing.record_sealed_at is None:
        found.append(Finding(f"{where} is no longer marked sealed (record_sealed_at was "
                             "cleared: corrections were opened again)", hearing_id, seal.at))
    elif hearing.record_sha256 != seal.data.get("record_sha256"):
        found.append(Finding(f"{where}: the hearing's record_sha256 differs from the seal",
                             hearing_id, seal.at))
    _, lines = await record_lines(session, hearing_id, int(seal.data.get("version", LIVE_VERSION)))
    if record_sha256(lines) != seal.data.get("record_sha256"):
        found.append(Finding(f"{where} was changed: its lines no longer hash to the seal",
                             hearing_id, seal.at))
    return found


async def _verify_close_seal(session: AsyncSession, hearing_id: uuid.UUID, seal: AuditEvent,
                             corrections: list[AuditEvent]) -> list[Finding]:
    _, lines = await record_lines(session, hearing_id, int(seal.data.get("version", LIVE_VERSION)))
    # A line's first correction after the seal holds, as `before`, its text at the seal.
    first_after: dict[str, int] = {}
    for event in corrections:
        segment = str(event.data.get("segment_id"))
        if event.seq > seal.seq and segment not in first_after:
            first_after[segment] = int(event.data.get("revision", 0))
    as_sealed = []
    for line in lines:
        sealed = SealedLine.of(line)
        revision = first_after.get(str(line.id))
        if revision is not None:
            before = await session.scalar(select(LineRevision.before).where(
                LineRevision.line_id == line.id, LineRevision.revision == revision))
            sealed = replace(sealed, text=before if before is not None else "",
                             revision=revision - 1)
        as_sealed.append(sealed)
    if record_sha256(as_sealed) == seal.data.get("record_sha256"):
        return []
    return [Finding(f"hearing {hearing_id}: the trial record sealed at the close in audit "
                    f"event {seal.seq} was changed: its lines (corrections since undone) no "
                    "longer hash to the seal", hearing_id, seal.at)]


async def _verify_corrections(session: AsyncSession,
                              corrections: Sequence[AuditEvent]) -> list[Finding]:
    """A corrected line's text is its last revision's, whose text the audit chain holds."""
    last: dict[str, AuditEvent] = {}
    count: dict[str, int] = {}
    for correction in corrections:
        segment = str(correction.data.get("segment_id"))
        last[segment] = correction
        count[segment] = count.get(segment, 0) + 1
    found = []
    corrected = (await session.scalars(select(TrialRecordLine).where(
        TrialRecordLine.revision > 1))).all()
    for line in corrected:
        where = f"hearing {line.hearing_id}: trial record line {line.id}"
        event = last.get(str(line.id))
        revisions = (await session.scalars(select(LineRevision).where(
            LineRevision.line_id == line.id).order_by(LineRevision.revision))).all()
        texts_follow = all(a.after == b.before for a, b in itertools.pairwise(revisions))
        if (event is None or count[str(line.id)] != line.revision - 1
                or [r.revision for r in revisions] != list(range(2, line.revision + 1))
                or not texts_follow or revisions[-1].after != line.text):
            found.append(Finding(f"{where}: its revisions do not match its corrections on "
                                 "the audit record", line.hearing_id, line.updated_at))
        elif event.data.get("text_sha256", text_sha256(line.text)) != text_sha256(line.text):
            found.append(Finding(f"{where} was altered: its text is not the one corrected in "
                                 f"audit event {event.seq}", line.hearing_id, event.at))
    return found

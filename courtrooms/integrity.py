"""Verification of the whole hearing record: the audit chain and its anchors (signatures and
checkpoints kept outside the database), every seal, every file and every closed hearing.

What each part checks is in its module (`recordings`, `transcripts`, `exhibits`, `identity`,
`signing`, `anchor`); this one runs them all and adds what spans them: seal signatures, and closed
hearings that were never sealed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from courtrooms import anchor, audit, recordings, transcripts
from courtrooms.audit import ChainReport, Finding
from courtrooms.database import Database
from courtrooms.exhibits import Exhibits
from courtrooms.identity import IdentityChecks
from courtrooms.models import AuditEvent, Hearing, HearingState, utcnow
from courtrooms.recordings import Recordings
from courtrooms.signing import Signing
from courtrooms.transcripts import Transcripts

SEAL_ACTIONS = (recordings.SEALED, transcripts.SEALED, transcripts.SEALED_BY_JUDGE)
SEALING_FAILED = "hearing.sealing_failed"


@dataclass
class IntegrityReport:
    chain: ChainReport
    findings: list[Finding] = field(default_factory=list)
    seals: int = 0
    checkpoints: int = 0
    # False when there is no key to check signatures and checkpoints with.
    anchored: bool = False

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.findings


async def verify_record(
    db: Database,
    data_dir: Path,
    key_path: Path,
    checkpoint_file: Path,
) -> IntegrityReport:
    """Check everything; never stops at the first problem (except that a broken chain is
    named by its first broken event)."""
    async with db.read() as session:
        report = IntegrityReport(await audit.verify(session))
    report.findings += await Recordings(db, utcnow, data_dir).verify()
    report.findings += await Transcripts(db, utcnow).verify()
    report.findings += await Exhibits(db, utcnow, data_dir).verify()
    report.findings += await IdentityChecks(db, utcnow, data_dir).verify()
    report.findings += await Signing(db, utcnow, data_dir, Transcripts(db, utcnow)).verify()
    report.findings += await _unsealed(db)
    await _verify_anchors(db, key_path, checkpoint_file, report)
    return report


async def _unsealed(db: Database) -> list[Finding]:
    """Closed hearings whose recordings or trial record were never sealed."""
    async with db.read() as session:
        closed = (await session.scalars(select(Hearing).where(
            Hearing.state == HearingState.CLOSED).order_by(Hearing.closed_at))).all()
        rows = await session.execute(select(AuditEvent.hearing_id, AuditEvent.action).where(
            AuditEvent.action.in_((*SEAL_ACTIONS, SEALING_FAILED))).distinct())
        done = {(hearing_id, action) for hearing_id, action in rows.all()}
    found = []
    for hearing in closed:
        missing = [what for what, action in (("recordings", recordings.SEALED),
                                             ("trial record", transcripts.SEALED))
                   if (hearing.id, action) not in done]
        if missing:
            failed = " (sealing failed)" if (hearing.id, SEALING_FAILED) in done else ""
            found.append(Finding(
                f"hearing {hearing.id} ({hearing.case_number}) closed but its "
                f"{' and '.join(missing)} {'was' if len(missing) == 1 else 'were'} never "
                f"sealed{failed}", hearing.id, hearing.closed_at))
    return found


async def _verify_anchors(db: Database, key_path: Path, checkpoint_file: Path,
                          report: IntegrityReport) -> None:
    log = anchor.CheckpointLog(checkpoint_file)
    checkpoints: list[dict[str, Any]] = []
    bad_lines: list[int] = []
    unreadable: str | None = None
    try:
        checkpoints, bad_lines = await asyncio.to_thread(log.read)
        present = await asyncio.to_thread(checkpoint_file.exists)
    except OSError as e:
        unreadable = f"cannot be read ({e.strerror})"
        present = True
    report.checkpoints = len(checkpoints)
    for number in bad_lines:
        report.findings.append(Finding(
            f"line {number} of the checkpoint file {checkpoint_file} is not a checkpoint"))
    async with db.read() as session:
        seals = list((await session.scalars(select(AuditEvent).where(
            AuditEvent.action.in_(SEAL_ACTIONS)).order_by(AuditEvent.seq))).all())
        report.seals = len(seals)
        signed = sum(anchor.SIGNATURE in s.data for s in seals)
        if signed and not checkpoints:
            # A server that signs also checkpoints. Without them a rewritten or cut chain
            # checks out: a wrong path must not pass for "nothing to compare with".
            problem = unreadable or ("holds no checkpoint" if present else "is missing")
            report.findings.append(Finding(
                f"{signed} seals are signed but the checkpoint file {checkpoint_file} "
                f"{problem}: rewritten or deleted events cannot be found without it (is "
                "checkpoint_file the file the server appends to?)"))
        elif unreadable is not None:
            report.findings.append(Finding(
                f"the checkpoint file {checkpoint_file} {unreadable}"))
        try:
            verifier = await asyncio.to_thread(anchor.load_verifier, key_path)
        except Exception as e:
            if checkpoints or signed:
                report.findings.append(Finding(
                    f"signatures cannot be checked: {e}; is signing_key_path the key the "
                    "server signs with, or its public half?"))
            return
        report.anchored = True
        report.findings += await anchor.verify_checkpoints(session, verifier, checkpoints)
    signing_since = min((int(c["seq"]) for c in checkpoints), default=None)
    for seal in seals:
        signature = seal.data.get(anchor.SIGNATURE)
        if signature is None and (signing_since is None or seal.seq < signing_since):
            continue  # sealed before this server signed anything
        why = verifier.check(anchor.seal_payload(seal.action, seal.hearing_id, seal.at,
                                                 seal.data), signature)
        if why is not None:
            report.findings.append(Finding(
                f"hearing {seal.hearing_id}: the seal in audit event {seal.seq} "
                f"({seal.action}): {why}", seal.hearing_id, seal.at))

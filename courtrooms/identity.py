"""Identity checks before each session (《人民法院在线诉讼规则》 art. 7): the clerk looks at the
ID document a participant holds to the camera and marks them verified, or refused with a
reason. The still picture of that moment is kept as a file, its sha256 in the audit chain with
the outcome, the device and browser session it was made on, and who checked.

Kept in the audit alone (no table): the chain already orders, dates and protects each check,
and the hearing's record reads them back from there (`of_hearing`). `verify` re-hashes every
picture the chain names, for `tingshen verify-audit`.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from config.files import write_synced
from courtrooms import audit
from courtrooms.audit import Finding
from courtrooms.database import Database
from courtrooms.errors import InvalidInput, NotFound
from courtrooms.models import AuditEvent, Participant

CHECKED = "identity.checked"
OUTCOMES = ("verified", "refused")
MAX_STILL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class IdentityCheck:
    participant_id: uuid.UUID
    outcome: str  # "verified" | "refused"
    reason: str | None
    device: str | None  # the device and browser session it holds for (None: unknown)
    still_sha256: str | None  # None: no picture could be taken
    checked_by: str
    at: datetime
    seq: int


class IdentityChecks:
    """Registry of a hearing's identity checks and their still pictures."""

    def __init__(self, db: Database, clock: Callable[[], datetime], data_dir: Path) -> None:
        self.db = db
        self.clock = clock
        self.data_dir = data_dir

    async def record(self, hearing_id: uuid.UUID, participant_id: uuid.UUID, outcome: str, *,
                     reason: str | None, device: str | None, still: bytes | None,
                     actor: str) -> IdentityCheck:
        """Keep a check: its picture on the disk first (synced), then the audit event."""
        if outcome not in OUTCOMES:
            raise InvalidInput(f"an identity check is verified or refused, not {outcome!r}",
                               field="outcome")
        if outcome == "refused" and not (reason or "").strip():
            raise InvalidInput("a refused identity check needs a reason", field="reason")
        if still is not None and len(still) > MAX_STILL_BYTES:
            raise InvalidInput("the still picture is too large", field="still")
        async with self.db.read() as session:
            participant = await session.get(Participant, participant_id)
            if participant is None or participant.hearing_id != hearing_id:
                raise NotFound("Participant", participant_id)
        digest, relative = None, None
        if still is not None:
            digest = hashlib.sha256(still).hexdigest()
            relative = f"identity/{hearing_id}/{digest}.jpg"
            await asyncio.to_thread(write_synced, self.data_dir / relative, still)
        async with self.db.write() as session:
            now = self.clock()
            event = await audit.append(
                session, actor=actor, action=CHECKED, at=now, hearing_id=hearing_id,
                data={"participant_id": str(participant_id), "outcome": outcome,
                      "reason": reason, "device": device, "still_sha256": digest,
                      "still": relative})
            return _check(event)

    async def of_hearing(self, hearing_id: uuid.UUID) -> list[IdentityCheck]:
        """Every check of the hearing, oldest first."""
        async with self.db.read() as session:
            events = await session.scalars(select(AuditEvent).where(
                AuditEvent.hearing_id == hearing_id, AuditEvent.action == CHECKED)
                .order_by(AuditEvent.seq))
            return [_check(e) for e in events]

    def still_path(self, hearing_id: uuid.UUID, check: IdentityCheck) -> Path | None:
        if check.still_sha256 is None:
            return None
        return self.data_dir / "identity" / str(hearing_id) / f"{check.still_sha256}.jpg"

    async def verify(self) -> list[Finding]:
        """Every still picture the chain names, against the hash it holds."""
        async with self.db.read() as session:
            return await audit.verify_files(session, self.data_dir, CHECKED, "still",
                                            "still_sha256", "the identity check's picture")


def _check(event: AuditEvent) -> IdentityCheck:
    data = event.data
    return IdentityCheck(
        participant_id=uuid.UUID(data["participant_id"]), outcome=data["outcome"],
        reason=data.get("reason"), device=data.get("device"),
        still_sha256=data.get("still_sha256"), checked_by=event.actor, at=event.at,
        seq=event.seq)

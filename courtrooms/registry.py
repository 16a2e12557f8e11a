"""The registry: courts, courtrooms, prison terminals, hearings and participants, audited.

Each part lives in its own module (`places`, `scheduling`, `invitations`, `id_digits`, over
`store`); `Registry` is all of them on one database.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import select

from courtrooms import audit
from courtrooms.errors import AccessDenied
from courtrooms.id_digits import IdDigitChecks
from courtrooms.invitations import Invitations
from courtrooms.models import CONTROL_ROLES, AuditEvent, Hearing, Participant, Role
from courtrooms.places import Places
from courtrooms.schemas import AuditQuery


class CourtWord(enum.StrEnum):
    """The court's word on a participant in the audit trail (the action its admit and remove
    commands write); the last one counts."""

    ADMITTED = "participant.admitted"
    REMOVED = "participant.removed"
    # A witness sent back to wait outside, or released after testifying.
    SENT_OUT = "witness.sent_out"
    RELEASED = "witness.released"


class Registry(Places, Invitations, IdDigitChecks):
    """Courts, courtrooms, prison terminals, hearings and participants, with their audit."""

    async def record(
        self, hearing_id: uuid.UUID, actor: str, action: str, **data: Any
    ) -> None:
        """Append a live hearing event (admission, removal, muting) to the audit trail."""
        async with self.db.write() as session:
            await self._audit(session, actor, action, hearing_id, **data)

    async def court_word(
        self, hearing_id: uuid.UUID, participant_id: uuid.UUID
    ) -> CourtWord | None:
        """The court's last word on the participant: admitted, removed, or none yet (their
        seat may be gone with the live state; the audit trail is not)."""
        stmt = (select(AuditEvent).where(AuditEvent.hearing_id == hearing_id,
                                         AuditEvent.action.in_(tuple(CourtWord)))
                .order_by(AuditEvent.seq.desc()))
        async with self.db.read() as session:
            for event in await session.scalars(stmt):
                if event.data.get("participant_id") == str(participant_id):
                    return CourtWord(event.action)
        return None

    async def check_attendance(self, hearing_id: uuid.UUID, participant: Participant) -> None:
        """Refuse a participant who could not be in the hearing now, as joining would: outside
        its join window, removed by the court, or not admitted (the judge, the clerk and
        observers always are; others when the hearing admits automatically or the court
        admitted them)."""
        async with self.db.read() as session:
            hearing = await self._get(session, Hearing, hearing_id)
        self.check_join_window(hearing)
        word = await self.court_word(hearing_id, participant.id)
        if word is CourtWord.REMOVED:
            raise AccessDenied("you were removed by the court from this hearing")
        if word is CourtWord.RELEASED:
            raise AccessDenied("you were released by the court after testifying")
        if participant.role is Role.WITNESS and word is not CourtWord.ADMITTED:
            raise AccessDenied("a witness takes part only while the court has called them in")
        if (word is CourtWord.ADMITTED or hearing.auto_admit
                or participant.role in CONTROL_ROLES or participant.role is Role.OBSERVER):
            return
        raise AccessDenied("you are not admitted yet: join the hearing and wait for the court "
                           "to admit you")

    async def audit_events(self, query: AuditQuery) -> tuple[list[AuditEvent], int]:
        stmt = select(AuditEvent).order_by(AuditEvent.seq)
        if query.hearing_id is not None:
            stmt = stmt.where(AuditEvent.hearing_id == query.hearing_id)
        async with self.db.read() as session:
            return await self._page(session, stmt, query)

    async def hearing_events(self, hearing_id: uuid.UUID) -> list[AuditEvent]:
        """Every audit event of the hearing, oldest first (its attendance is read from them)."""
        stmt = (select(AuditEvent).where(AuditEvent.hearing_id == hearing_id)
                .order_by(AuditEvent.seq))
        async with self.db.read() as session:
            return list(await session.scalars(stmt))

    async def verify_audit(self) -> audit.ChainReport:
        async with self.db.read() as session:
            return await audit.verify(session)

"""The registry's operations. Each write is one transaction that also appends its audit event."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from courtrooms import audit
from courtrooms.database import Database
from courtrooms.errors import (
    AccessDenied,
    HearingFinished,
    InUse,
    InvalidInput,
    NotEditable,
    NotFound,
    ScheduleConflict,
)
from courtrooms.lifecycle import HearingAction, next_state
from courtrooms.models import (
    ACTIVE_STATES,
    AuditEvent,
    Base,
    Court,
    Courtroom,
    Hearing,
    HearingState,
    JoinToken,
    Participant,
    PrisonTerminal,
    Role,
    utcnow,
)
from courtrooms.schemas import (
    AuditQuery,
    CourtIn,
    CourtPatch,
    CourtroomIn,
    CourtroomPatch,
    CourtroomQuery,
    HearingIn,
    HearingPatch,
    HearingQuery,
    PageQuery,
    ParticipantIn,
    PrisonTerminalIn,
    PrisonTerminalPatch,
    check_window,
)
from courtrooms.secrets import digest, new_secret

# A join token opens this long before the scheduled start.
JOIN_WINDOW_LEAD = timedelta(minutes=30)
LIVE_STATES = (HearingState.OPEN, HearingState.IN_SESSION, HearingState.RECESS)
EDITABLE_STATES = (HearingState.SCHEDULED, HearingState.OPEN)
FINISHED_STATES = (HearingState.CLOSED, HearingState.CANCELLED)

M = TypeVar("M", bound=Base)


def name_key(name: str) -> str:
    """How two spellings of one person's name are matched: spacing and case do not count.

    All whitespace goes, not only runs of it: Chinese documents pad two-character names
    (王　芳 for 王芳), and the judge must still be found double-booked.
    """
    return "".join(name.split()).casefold()


@dataclass(frozen=True)
class JoinGrant:
    participant: Participant
    hearing: Hearing


@dataclass(frozen=True)
class IssuedToken:
    participant: Participant
    token: str
    valid_from: datetime


@dataclass(frozen=True)
class TerminalAssignment:
    terminal: PrisonTerminal
    hearing: Hearing | None
    participant: Participant | None
    opens_at: datetime | None
    token: str | None


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _changes(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in data.items()}


class Registry:
    """Courts, courtrooms, prison terminals, hearings and participants, with their audit."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    # -- helpers -------------------------------------------------------------------------

    async def _get(self, session: AsyncSession, model: type[M], ident: uuid.UUID) -> M:
        obj = await session.get(model, ident)
        if obj is None:
            raise NotFound(model.__name__, ident)
        return obj

    async def _page(
        self, session: AsyncSession, query: Select[Any], page: PageQuery | HearingQuery
    ) -> tuple[list[Any], int]:
        total = (
            await session.execute(select(func.count()).select_from(query.subquery()))
        ).scalar_one()
        items = (await session.execute(query.limit(page.limit).offset(page.offset))).scalars()
        return list(items.all()), total

    async def _audit(
        self,
        session: AsyncSession,
        actor: str,
        action: str,
        hearing_id: uuid.UUID | None = None,
        **data: Any,
    ) -> None:
        await audit.append(
            session,
            actor=actor,
            action=action,
            at=self.clock(),
            hearing_id=hearing_id,
            data=_changes(data),
        )

    # -- courts --------------------------------------------------------------------------

    async def create_court(self, data: CourtIn, actor: str) -> Court:
        async with self.db.write() as session:
            await self._unique_court_name(session, data.name)
            court = Court(name=data.name, created_at=self.clock())
            session.add(court)
            await session.flush()
            await self._audit(session, actor, "court.created", court_id=court.id, name=court.name)
            return court

    async def _unique_court_name(self, session: AsyncSession, name: str) -> None:
        exists = await session.scalar(select(Court.id).where(Court.name == name))
        if exists is not None:
            raise InvalidInput(f"a court named {name!r} already exists", field="name")

    async def list_courts(self, page: PageQuery) -> tuple[list[Court], int]:
        async with self.db.read() as session:
            return await self._page(session, select(Court).order_by(Court.name), page)

    async def get_court(self, court_id: uuid.UUID) -> Court:
        async with self.db.read() as session:
            return await self._get(session, Court, court_id)

    async def update_court(self, court_id: uuid.UUID, data: CourtPatch, actor: str) -> Court:
        async with self.db.write() as session:
            court = await self._get(session, Court, court_id)
            if data.name is not None and data.name != court.name:
                await self._unique_court_name(session, data.name)
                court.name = data.name
                await self._audit(
                    session, actor, "court.updated", court_id=court.id, name=data.name
                )
            return court

    async def delete_court(self, court_id: uuid.UUID, actor: str) -> None:
        async with self.db.write() as session:
            court = await self._get(session, Court, court_id)
            rooms = await session.scalar(
                select(func.count()).where(Courtroom.court_id == court_id)
            )
            if rooms:
                raise InUse(f"court {court_id} still has {rooms} courtroom(s)")
            await session.delete(court)
            await self._audit(session, actor, "court.deleted", court_id=court_id, name=court.name)

    # -- courtrooms ----------------------------------------------------------------------

    async def _unique_courtroom_name(
        self, session: AsyncSession, court_id: uuid.UUID, name: str
    ) -> None:
        exists = await session.scalar(
            select(Courtroom.id).where(Courtroom.court_id == court_id, Courtroom.name == name)
        )
        if exists is not None:
            raise InvalidInput(f"this court already has a courtroom named {name!r}", field="name")

    async def create_courtroom(self, data: CourtroomIn, actor: str) -> Courtroom:
        async with self.db.write() as session:
            if await session.get(Court, data.court_id) is None:
                raise InvalidInput(f"court {data.court_id} does not exist", field="court_id")
            await self._unique_courtroom_name(session, data.court_id, data.name)
            room = Courtroom(court_id=data.court_id, name=data.name, created_at=self.clock())
            session.add(room)
            await session.flush()
            await self._audit(
                session, actor, "courtroom.created", courtroom_id=room.id,
                court_id=room.court_id, name=room.name,
            )
            return room

    async def list_courtrooms(self, query: CourtroomQuery) -> tuple[list[Courtroom], int]:
        stmt = select(Courtroom).order_by(Courtroom.name, Courtroom.id)
        if query.court_id is not None:
            stmt = stmt.where(Courtroom.court_id == query.court_id)
        async with self.db.read() as session:
            return await self._page(session, stmt, query)

    async def get_courtroom(self, courtroom_id: uuid.UUID) -> Courtroom:
        async with self.db.read() as session:
            return await self._get(session, Courtroom, courtroom_id)

    async def update_courtroom(
        self, courtroom_id: uuid.UUID, data: CourtroomPatch, actor: str
    ) -> Courtroom:
        async with self.db.write() as session:
            room = await self._get(session, Courtroom, courtroom_id)
            if data.name is not None and data.name != room.name:
                await self._unique_courtroom_name(session, room.court_id, data.name)
                room.name = data.name
                await self._audit(
                    session, actor, "courtroom.updated", courtroom_id=room.id, name=data.name
                )
            return room

    async def delete_courtroom(self, courtroom_id: uuid.UUID, actor: str) -> None:
        async with self.db.write() as session:
            room = await self._get(session, Courtroom, courtroom_id)
            used = await session.scalar(
                select(func.count()).where(Hearing.courtroom_id == courtroom_id)
            )
            if used:
                raise InUse(f"courtroom {courtroom_id} is on the record of {used} hearing(s)")
            await session.delete(room)
            await self._audit(
                session, actor, "courtroom.deleted", courtroom_id=courtroom_id, name=room.name
            )

    # -- prison terminals ----------------------------------------------------------------

    async def create_terminal(
        self, data: PrisonTerminalIn, actor: str
    ) -> tuple[PrisonTerminal, str]:
        key = new_secret()
        async with self.db.write() as session:
            terminal = PrisonTerminal(
                name=data.name, prison=data.prison, device_key_hash=digest(key),
                created_at=self.clock(),
            )
            session.add(terminal)
            await session.flush()
            await self._audit(
                session, actor, "terminal.created", terminal_id=terminal.id,
                name=terminal.name, prison=terminal.prison,
            )
            return terminal, key

    async def rotate_terminal_key(
        self, terminal_id: uuid.UUID, actor: str
    ) -> tuple[PrisonTerminal, str]:
        key = new_secret()
        async with self.db.write() as session:
            terminal = await self._get(session, PrisonTerminal, terminal_id)
            terminal.device_key_hash = digest(key)
            await self._audit(session, actor, "terminal.key_rotated", terminal_id=terminal.id)
            return terminal, key

    async def list_terminals(self, page: PageQuery) -> tuple[list[PrisonTerminal], int]:
        stmt = select(PrisonTerminal).order_by(
            PrisonTerminal.prison, PrisonTerminal.name, PrisonTerminal.id
        )
        async with self.db.read() as session:
            return await self._page(session, stmt, page)

    async def get_terminal(self, terminal_id: uuid.UUID) -> PrisonTerminal:
        async with self.db.read() as session:
            return await self._get(session, PrisonTerminal, terminal_id)

    async def update_terminal(
        self, terminal_id: uuid.UUID, data: PrisonTerminalPatch, actor: str
    ) -> PrisonTerminal:
        async with self.db.write() as session:
            terminal = await self._get(session, PrisonTerminal, terminal_id)
            changes = {
                k: v for k, v in data.model_dump(exclude_unset=True).items()
                if v is not None and getattr(terminal, k) != v
            }
            for field, value in changes.items():
                setattr(terminal, field, value)
            if changes:
                await self._audit(
                    session, actor, "terminal.updated", terminal_id=terminal.id, **changes
                )
            return terminal

    async def delete_terminal(self, terminal_id: uuid.UUID, actor: str) -> None:
        async with self.db.write() as session:
            terminal = await self._get(session, PrisonTerminal, terminal_id)
            used = await session.scalar(
                select(func.count()).where(Participant.terminal_id == terminal_id)
            )
            if used:
                raise InUse(f"prison terminal {terminal_id} is on the record of {used} hearing(s)")
            await session.delete(terminal)
            await self._audit(
                session, actor, "terminal.deleted", terminal_id=terminal_id, name=terminal.name
            )

    # -- hearings ------------------------------------------------------------------------

    async def _conflicts(
        self,
        session: AsyncSession,
        hearing_id: uuid.UUID | None,
        start: datetime,
        end: datetime,
        courtroom_id: uuid.UUID | None,
        judge_keys: Sequence[str],
        terminal_ids: Sequence[uuid.UUID],
    ) -> list[dict[str, Any]]:
        """Other active hearings overlapping [start, end) that share a room, judge or terminal."""
        overlapping = [
            Hearing.state.in_(ACTIVE_STATES),
            Hearing.scheduled_start < end,
            Hearing.scheduled_end > start,
        ]
        if hearing_id is not None:
            overlapping.append(Hearing.id != hearing_id)
        found: list[dict[str, Any]] = []

        def entry(h: Hearing, resource: str, **extra: Any) -> dict[str, Any]:
            return {
                "resource": resource,
                "hearing_id": str(h.id),
                "case_number": h.case_number,
                "title": h.title,
                "scheduled_start": h.scheduled_start.isoformat(),
                "scheduled_end": h.scheduled_end.isoformat(),
                **extra,
            }

        if courtroom_id is not None:
            rows = await session.scalars(
                select(Hearing).where(*overlapping, Hearing.courtroom_id == courtroom_id)
            )
            found += [entry(h, "courtroom", courtroom_id=str(courtroom_id)) for h in rows]
        if judge_keys:
            judge_rows = await session.execute(
                select(Hearing, Participant.name)
                .join(Participant, Participant.hearing_id == Hearing.id)
                .where(
                    *overlapping,
                    Participant.role == Role.JUDGE,
                    Participant.name_key.in_(judge_keys),
                )
            )
            found += [entry(h, "judge", judge=name) for h, name in judge_rows]
        if terminal_ids:
            terminal_rows = await session.execute(
                select(Hearing, Participant.terminal_id)
                .join(Participant, Participant.hearing_id == Hearing.id)
                .where(*overlapping, Participant.terminal_id.in_(terminal_ids))
            )
            found += [
                entry(h, "prison_terminal", terminal_id=str(tid)) for h, tid in terminal_rows
            ]
        return found

    async def _check_courtroom(self, session: AsyncSession, courtroom_id: uuid.UUID) -> None:
        if await session.get(Courtroom, courtroom_id) is None:
            raise InvalidInput(f"courtroom {courtroom_id} does not exist", field="courtroom_id")

    async def create_hearing(self, data: HearingIn, actor: str, default_language: str) -> Hearing:
        async with self.db.write() as session:
            if data.courtroom_id is not None:
                await self._check_courtroom(session, data.courtroom_id)
            conflicts = await self._conflicts(
                session, None, data.scheduled_start, data.scheduled_end, data.courtroom_id, [], []
            )
            if conflicts:
                raise ScheduleConflict(conflicts)
            now = self.clock()
            hearing = Hearing(
                case_number=data.case_number,
                title=data.title,
                kind=data.kind,
                courtroom_id=data.courtroom_id,
                scheduled_start=data.scheduled_start,
                scheduled_end=data.scheduled_end,
                language=data.language or default_language,
                auto_admit=data.auto_admit,
                state=HearingState.SCHEDULED,
                created_at=now,
                updated_at=now,
            )
            session.add(hearing)
            await session.flush()
            await self._audit(
                session, actor, "hearing.created", hearing.id,
                **data.model_dump(mode="json", exclude={"language"}), language=hearing.language,
            )
            return hearing

    async def schedule_conflicts(
        self, data: HearingIn, hearing_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        """What scheduling `data` (or moving hearing `hearing_id` to it) would be refused for.

        The checks of `create_hearing` and `update_hearing`; nothing is saved.
        """
        async with self.db.read() as session:
            judges: list[str] = []
            terminals: list[uuid.UUID] = []
            if hearing_id is not None:
                hearing = await self._hearing_with_participants(session, hearing_id)
                if hearing.state not in EDITABLE_STATES:
                    raise NotEditable(
                        f"a hearing that is {hearing.state.value} can no longer be moved",
                        current_state=hearing.state.value,
                    )
                judges = [p.name_key for p in hearing.participants if p.role is Role.JUDGE]
                terminals = [p.terminal_id for p in hearing.participants if p.terminal_id]
            if data.courtroom_id is not None:
                await self._check_courtroom(session, data.courtroom_id)
            return await self._conflicts(
                session, hearing_id, data.scheduled_start, data.scheduled_end,
                data.courtroom_id, judges, terminals,
            )

    async def list_hearings(self, query: HearingQuery) -> tuple[list[Hearing], int]:
        """Hearings in the query's window, with their participants loaded."""
        stmt = (
            select(Hearing)
            .order_by(Hearing.scheduled_start, Hearing.id)
            .options(selectinload(Hearing.participants))
        )
        if query.from_ is not None:
            stmt = stmt.where(Hearing.scheduled_end > query.from_)
        if query.to is not None:
            stmt = stmt.where(Hearing.scheduled_start < query.to)
        if query.courtroom_id is not None:
            stmt = stmt.where(Hearing.courtroom_id == query.courtroom_id)
        if query.state is not None:
            stmt = stmt.where(Hearing.state.in_(query.state))
        if query.terminal_id is not None:
            stmt = stmt.where(
                Hearing.id.in_(
                    select(Participant.hearing_id).where(
                        Participant.terminal_id == query.terminal_id
                    )
                )
            )
        async with self.db.read() as session:
            return await self._page(session, stmt, query)

    async def _hearing_with_participants(
        self, session: AsyncSession, hearing_id: uuid.UUID
    ) -> Hearing:
        hearing = await session.scalar(
            select(Hearing)
            .where(Hearing.id == hearing_id)
            .options(selectinload(Hearing.participants))
        )
        if hearing is None:
            raise NotFound("Hearing", hearing_id)
        return hearing

    async def get_hearing(self, hearing_id: uuid.UUID) -> Hearing:
        async with self.db.read() as session:
            return await self._hearing_with_participants(session, hearing_id)

    async def update_hearing(
        self, hearing_id: uuid.UUID, data: HearingPatch, actor: str
    ) -> Hearing:
        changes = data.changes()
        async with self.db.write() as session:
            hearing = await self._hearing_with_participants(session, hearing_id)
            changes = {k: v for k, v in changes.items() if getattr(hearing, k) != v}
            if not changes:
                return hearing
            if hearing.state not in EDITABLE_STATES:
                raise NotEditable(
                    f"a hearing that is {hearing.state.value} can no longer be changed",
                    current_state=hearing.state.value,
                )
            start = changes.get("scheduled_start", hearing.scheduled_start)
            end = changes.get("scheduled_end", hearing.scheduled_end)
            try:
                check_window(start, end)
            except ValueError as e:
                raise InvalidInput(str(e), field="scheduled_end") from e
            room = changes.get("courtroom_id", hearing.courtroom_id)
            if "courtroom_id" in changes and room is not None:
                await self._check_courtroom(session, room)
            if {"scheduled_start", "scheduled_end", "courtroom_id"} & changes.keys():
                conflicts = await self._conflicts(
                    session,
                    hearing.id,
                    start,
                    end,
                    room,
                    [p.name_key for p in hearing.participants if p.role is Role.JUDGE],
                    [p.terminal_id for p in hearing.participants if p.terminal_id is not None],
                )
                if conflicts:
                    raise ScheduleConflict(conflicts)
            for field, value in changes.items():
                setattr(hearing, field, value)
            hearing.updated_at = self.clock()
            await self._audit(session, actor, "hearing.updated", hearing.id, **changes)
            return hearing

    async def transition(
        self, hearing_id: uuid.UUID, action: HearingAction, actor: str
    ) -> Hearing:
        async with self.db.write() as session:
            hearing = await self._hearing_with_participants(session, hearing_id)
            before = hearing.state
            hearing.state = next_state(before, action)
            now = self.clock()
            hearing.updated_at = now
            if action is HearingAction.START and hearing.started_at is None:
                hearing.started_at = now
            if hearing.state in FINISHED_STATES:
                hearing.closed_at = now
            await self._audit(
                session, actor, f"hearing.{action.value}", hearing.id,
                **{"from": before.value, "to": hearing.state.value},
            )
            return hearing

    # -- participants and join tokens ----------------------------------------------------

    async def add_participant(
        self, hearing_id: uuid.UUID, data: ParticipantIn, actor: str
    ) -> IssuedToken:
        async with self.db.write() as session:
            hearing = await self._hearing_with_participants(session, hearing_id)
            if hearing.state in FINISHED_STATES:
                raise NotEditable(
                    f"a hearing that is {hearing.state.value} takes no new participants",
                    current_state=hearing.state.value,
                )
            key = name_key(data.name)
            if data.terminal_id is not None:
                if await session.get(PrisonTerminal, data.terminal_id) is None:
                    raise InvalidInput(
                        f"prison terminal {data.terminal_id} does not exist", field="terminal_id"
                    )
                if any(p.terminal_id == data.terminal_id for p in hearing.participants):
                    raise InvalidInput(
                        "this prison terminal already has a participant in this hearing",
                        field="terminal_id",
                    )
            is_judge = data.role is Role.JUDGE
            conflicts = await self._conflicts(
                session,
                hearing.id,
                hearing.scheduled_start,
                hearing.scheduled_end,
                None,
                [key] if is_judge else [],
                [data.terminal_id] if data.terminal_id else [],
            )
            if conflicts:
                raise ScheduleConflict(conflicts)
            participant = Participant(
                hearing_id=hearing.id,
                name=data.name,
                name_key=key,
                role=data.role,
                location=data.location,
                terminal_id=data.terminal_id,
                created_at=self.clock(),
            )
            session.add(participant)
            await session.flush()
            await self._audit(
                session, actor, "participant.added", hearing.id,
                participant_id=participant.id, **data.model_dump(mode="json"),
            )
            token = await self._issue(session, hearing, participant, "invitation", actor)
            return token

    async def _issue(
        self,
        session: AsyncSession,
        hearing: Hearing,
        participant: Participant,
        issued_to: str,
        actor: str,
    ) -> IssuedToken:
        secret = new_secret()
        session.add(
            JoinToken(
                participant_id=participant.id,
                token_hash=digest(secret),
                issued_to=issued_to,
                created_at=self.clock(),
            )
        )
        await self._audit(
            session, actor, "token.issued", hearing.id,
            participant_id=participant.id, issued_to=issued_to,
        )
        return IssuedToken(participant, secret, hearing.scheduled_start - JOIN_WINDOW_LEAD)

    async def list_participants(self, hearing_id: uuid.UUID) -> list[Participant]:
        return list((await self.get_hearing(hearing_id)).participants)

    async def _participant_of(
        self, session: AsyncSession, hearing_id: uuid.UUID, participant_id: uuid.UUID
    ) -> tuple[Hearing, Participant]:
        hearing = await self._hearing_with_participants(session, hearing_id)
        for p in hearing.participants:
            if p.id == participant_id:
                return hearing, p
        raise NotFound("Participant", participant_id)

    async def _revoke_all(self, session: AsyncSession, participant_id: uuid.UUID) -> int:
        result = await session.execute(
            update(JoinToken)
            .where(JoinToken.participant_id == participant_id, JoinToken.revoked_at.is_(None))
            .values(revoked_at=self.clock())
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def reissue_token(
        self, hearing_id: uuid.UUID, participant_id: uuid.UUID, actor: str
    ) -> IssuedToken:
        """Revoke the participant's tokens and issue a fresh one (a lost or leaked link)."""
        async with self.db.write() as session:
            hearing, participant = await self._participant_of(session, hearing_id, participant_id)
            if hearing.state in FINISHED_STATES:
                raise NotEditable(
                    f"a hearing that is {hearing.state.value} issues no tokens",
                    current_state=hearing.state.value,
                )
            revoked = await self._revoke_all(session, participant.id)
            if revoked:
                await self._audit(
                    session, actor, "token.revoked", hearing.id,
                    participant_id=participant.id, count=revoked,
                )
            return await self._issue(session, hearing, participant, "invitation", actor)

    async def revoke_tokens(
        self, hearing_id: uuid.UUID, participant_id: uuid.UUID, actor: str
    ) -> int:
        async with self.db.write() as session:
            hearing, participant = await self._participant_of(session, hearing_id, participant_id)
            revoked = await self._revoke_all(session, participant.id)
            await self._audit(
                session, actor, "token.revoked", hearing.id,
                participant_id=participant.id, count=revoked,
            )
            return revoked

    async def remove_participant(
        self, hearing_id: uuid.UUID, participant_id: uuid.UUID, actor: str
    ) -> None:
        async with self.db.write() as session:
            hearing, participant = await self._participant_of(session, hearing_id, participant_id)
            if hearing.state not in EDITABLE_STATES:
                raise NotEditable(
                    f"participants of a hearing that is {hearing.state.value} stay on the record",
                    current_state=hearing.state.value,
                )
            await session.execute(
                delete(JoinToken).where(JoinToken.participant_id == participant.id)
            )
            await session.delete(participant)
            await self._audit(
                session, actor, "participant.removed", hearing.id,
                participant_id=participant.id, name=participant.name, role=participant.role.value,
            )

    async def resolve_join_token(self, token: str) -> JoinGrant:
        """The participant and hearing a join token opens, if it is valid now."""
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(JoinToken, Participant)
                    .join(Participant, Participant.id == JoinToken.participant_id)
                    .where(JoinToken.token_hash == digest(token))
                )
            ).first()
            if row is None:
                raise AccessDenied("unknown join token")
            join_token, participant = row
            if join_token.revoked_at is not None:
                raise AccessDenied("this join token was revoked")
            hearing = await self._get(session, Hearing, participant.hearing_id)
            self._check_join_window(hearing)
            return JoinGrant(participant, hearing)

    def _check_join_window(self, hearing: Hearing) -> None:
        if hearing.state in FINISHED_STATES:
            raise HearingFinished(f"the hearing is {hearing.state.value}")
        opens = hearing.scheduled_start - JOIN_WINDOW_LEAD
        if self.clock() < opens:
            raise AccessDenied(
                f"this join link opens at {opens.isoformat()}", opens_at=opens.isoformat()
            )

    async def _terminal_hearing(
        self, session: AsyncSession, device_key: str
    ) -> tuple[PrisonTerminal, Hearing | None, Participant | None]:
        terminal = await session.scalar(
            select(PrisonTerminal).where(PrisonTerminal.device_key_hash == digest(device_key))
        )
        if terminal is None:
            raise AccessDenied("unknown device key")
        rows = (
            await session.execute(
                select(Hearing, Participant)
                .join(Participant, Participant.hearing_id == Hearing.id)
                .where(
                    Participant.terminal_id == terminal.id,
                    or_(
                        Hearing.state.in_(LIVE_STATES),
                        and_(
                            Hearing.state == HearingState.SCHEDULED,
                            Hearing.scheduled_end > self.clock(),
                        ),
                    ),
                )
                .order_by(Hearing.scheduled_start)
            )
        ).all()
        if not rows:
            return terminal, None, None
        # A hearing already live holds the terminal even past its scheduled end.
        live = [(h, p) for h, p in rows if h.state in LIVE_STATES]
        hearing, participant = live[0] if live else (rows[0][0], rows[0][1])
        return terminal, hearing, participant

    async def terminal_assignment(self, device_key: str) -> TerminalAssignment:
        """A prison terminal's current or next hearing; a join token only inside its window."""
        async with self.db.write() as session:
            terminal, hearing, participant = await self._terminal_hearing(session, device_key)
            if hearing is None or participant is None:
                return TerminalAssignment(terminal, None, None, None, None)
            opens_at = hearing.scheduled_start - JOIN_WINDOW_LEAD
            token = None
            if self.clock() >= opens_at:
                issued = await self._issue(
                    session, hearing, participant, "terminal", f"terminal:{terminal.id}"
                )
                token = issued.token
            return TerminalAssignment(terminal, hearing, participant, opens_at, token)

    async def resolve_device_key(self, device_key: str) -> JoinGrant:
        """The participant a prison terminal is now, if its hearing's join window is open."""
        async with self.db.read() as session:
            _, hearing, participant = await self._terminal_hearing(session, device_key)
        if hearing is None or participant is None:
            raise AccessDenied("this prison terminal has no hearing now")
        self._check_join_window(hearing)
        return JoinGrant(participant, hearing)

    async def record(
        self, hearing_id: uuid.UUID, actor: str, action: str, **data: Any
    ) -> None:
        """Append a live hearing event (admission, removal, muting) to the audit trail."""
        async with self.db.write() as session:
            await self._audit(session, actor, action, hearing_id, **data)

    # -- audit ---------------------------------------------------------------------------

    async def audit_events(self, query: AuditQuery) -> tuple[list[AuditEvent], int]:
        stmt = select(AuditEvent).order_by(AuditEvent.seq)
        if query.hearing_id is not None:
            stmt = stmt.where(AuditEvent.hearing_id == query.hearing_id)
        async with self.db.read() as session:
            return await self._page(session, stmt, query)

    async def verify_audit(self) -> audit.ChainReport:
        async with self.db.read() as session:
            return await audit.verify(session)

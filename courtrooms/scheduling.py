"""The registry's schedule: hearings, the conflicts that refuse them, their transitions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from courtrooms import access
from courtrooms.access import ADMIN, EVERYWHERE, HearingScope, Permission, Reach, StaffMember
from courtrooms.errors import InvalidInput, NotEditable, NotFound, ScheduleConflict
from courtrooms.lifecycle import HearingAction, next_state
from courtrooms.models import (
    ACCOUNT_ENTRY,
    ACTIVE_STATES,
    EDITABLE_STATES,
    FINISHED_STATES,
    Court,
    Courtroom,
    Hearing,
    HearingState,
    JoinToken,
    Participant,
    Role,
    StaffAccount,
    StaffRole,
)
from courtrooms.schemas import HearingIn, HearingPatch, HearingQuery, check_window
from courtrooms.store import Store


def name_key(name: str) -> str:
    """How two spellings of one person's name are matched: spacing and case do not count.

    All whitespace goes, not only runs of it: Chinese documents pad two-character names
    (王　芳 for 王芳), and the judge must still be found double-booked.
    """
    return "".join(name.split()).casefold()


def scope_of(hearing: Hearing) -> HearingScope:
    return HearingScope(hearing.court_id, hearing.judge_account_id, hearing.clerk_account_id)


def within(reach: Reach) -> ColumnElement[bool]:
    """The hearings `reach` covers, as a condition on `Hearing` (`Reach.covers` in SQL)."""
    if reach.everything:
        return true()
    parts = [column == value for column, value in (
        (Hearing.court_id, reach.court_id), (Hearing.judge_account_id, reach.judge_of),
        (Hearing.clerk_account_id, reach.clerk_of)) if value is not None]
    return or_(*parts) if parts else false()


# Which role an account given as a hearing's judge or clerk must hold.
_BENCH_ROLES = {"judge_account_id": StaffRole.JUDGE, "clerk_account_id": StaffRole.CLERK}
# The hearing's column naming the account whose seat (participant) each bench role is.
SEAT_COLUMNS = {Role.JUDGE: "judge_account_id", Role.CLERK: "clerk_account_id"}


class Scheduling(Store):
    """Hearings on the calendar: no courtroom, judge or prison terminal booked twice at once."""

    async def _conflicts(
        self,
        session: AsyncSession,
        hearing_id: uuid.UUID | None,
        start: datetime,
        end: datetime,
        courtroom_id: uuid.UUID | None,
        judge_keys: Sequence[str],
        terminal_ids: Sequence[uuid.UUID],
        judge_accounts: Sequence[uuid.UUID] = (),
    ) -> list[dict[str, Any]]:
        """Other active hearings overlapping [start, end) that share a room, judge or terminal.

        A judge who is an account is found by the account, whatever name a participant was
        typed with; a judge typed by name, by the name (`name_key`)."""
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
        judge_accounts = [a for a in dict.fromkeys(judge_accounts) if a is not None]
        if judge_accounts:
            account_rows = await session.execute(
                select(Hearing, StaffAccount)
                .join(StaffAccount, StaffAccount.id == Hearing.judge_account_id)
                .where(*overlapping, Hearing.judge_account_id.in_(judge_accounts))
            )
            found += [entry(h, "judge", judge=a.name, judge_account_id=str(a.id))
                      for h, a in account_rows]
        judged = {c["hearing_id"] for c in found if c["resource"] == "judge"}
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
            found += [entry(h, "judge", judge=name) for h, name in judge_rows
                      if str(h.id) not in judged]
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

    async def _check_courtroom(self, session: AsyncSession, courtroom_id: uuid.UUID
                               ) -> uuid.UUID:
        """The court of the courtroom, if it exists."""
        room = await session.get(Courtroom, courtroom_id)
        if room is None:
            raise InvalidInput(f"courtroom {courtroom_id} does not exist", field="courtroom_id")
        return room.court_id

    async def _court(self, session: AsyncSession, data: HearingIn, staff: StaffMember
                     ) -> uuid.UUID | None:
        """The court a new hearing is heard by: its courtroom's, else the one named, else the
        scheduling clerk's."""
        if data.courtroom_id is not None:
            court_id = await self._check_courtroom(session, data.courtroom_id)
            if data.court_id is not None and data.court_id != court_id:
                raise InvalidInput(f"courtroom {data.courtroom_id} is not of court "
                                   f"{data.court_id}", field="court_id")
            return court_id
        if data.court_id is not None:
            if await session.get(Court, data.court_id) is None:
                raise InvalidInput(f"court {data.court_id} does not exist", field="court_id")
            return data.court_id
        return staff.court_id

    async def _check_bench(self, session: AsyncSession, field: str,
                           account_id: uuid.UUID | None, court_id: uuid.UUID | None,
                           role: StaffRole | None = None) -> StaffAccount | None:
        """The account given as a hearing's judge (or clerk); refused if it is not one, is
        disabled, or is of another court than the hearing's."""
        if account_id is None:
            return None
        role = role or _BENCH_ROLES[field]
        account = await session.get(StaffAccount, account_id)
        if account is None:
            raise InvalidInput(f"account {account_id} does not exist", field=field)
        if role not in account.staff_roles or account.disabled:
            raise InvalidInput(f"account {account_id} ({account.name}) is not an enabled "
                               f"{role.value}'s", field=field)
        if None not in (account.court_id, court_id) and account.court_id != court_id:
            raise InvalidInput(f"account {account_id} ({account.name}) is of another court "
                               "than the hearing's", field=field)
        return account

    async def hearing_scope(self, hearing_id: uuid.UUID) -> HearingScope:
        """What decides who on the staff may act on the hearing (courtrooms/access.py)."""
        async with self.db.read() as session:
            return scope_of(await self._get(session, Hearing, hearing_id))

    async def create_hearing(self, data: HearingIn, actor: str, default_language: str,
                             staff: StaffMember = ADMIN) -> Hearing:
        """Schedule `data`, as `staff` may: a clerk for their court (they are its clerk unless
        another is named)."""
        async with self.db.write() as session:
            court_id = await self._court(session, data, staff)
            clerk_id = data.clerk_account_id
            if clerk_id is None and StaffRole.CLERK in staff.roles and not staff.token:
                clerk_id = staff.account_id
            access.check(staff, Permission.SCHEDULE, HearingScope(court_id))
            await self._check_bench(session, "judge_account_id", data.judge_account_id,
                                    court_id)
            await self._check_bench(session, "clerk_account_id", clerk_id, court_id)
            conflicts = await self._conflicts(
                session, None, data.scheduled_start, data.scheduled_end, data.courtroom_id, [],
                [], [data.judge_account_id] if data.judge_account_id else [],
            )
            if conflicts:
                raise ScheduleConflict(conflicts)
            now = self.clock()
            hearing = Hearing(
                case_number=data.case_number,
                title=data.title,
                kind=data.kind,
                courtroom_id=data.courtroom_id,
                court_id=court_id,
                judge_account_id=data.judge_account_id,
                clerk_account_id=clerk_id,
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
                **data.model_dump(mode="json", exclude={"language", "court_id",
                                                        "clerk_account_id"}),
                language=hearing.language, court_id=court_id, clerk_account_id=clerk_id,
            )
            return hearing

    async def schedule_conflicts(
        self,
        data: HearingIn,
        hearing_id: uuid.UUID | None = None,
        *,
        judges: Sequence[str] = (),
        terminal_ids: Sequence[uuid.UUID] = (),
    ) -> list[dict[str, Any]]:
        """What scheduling `data` (or moving hearing `hearing_id` to it) would be refused for.

        The checks of `create_hearing`, `update_hearing` and `add_participant`, for the
        hearing's participants and for `judges` and `terminal_ids` it is about to be given (a
        new hearing's, as the clerk fills in the form); nothing is saved.
        """
        async with self.db.read() as session:
            judge_keys = list(dict.fromkeys(name_key(name) for name in judges))
            terminals = list(dict.fromkeys(terminal_ids))
            accounts = [data.judge_account_id] if data.judge_account_id else []
            if hearing_id is not None:
                hearing = await self._hearing_with_participants(session, hearing_id)
                if hearing.state not in EDITABLE_STATES:
                    raise NotEditable(
                        f"a hearing that is {hearing.state.value} can no longer be moved",
                        current_state=hearing.state.value,
                    )
                judge_keys += [p.name_key for p in hearing.participants
                               if p.role is Role.JUDGE and p.name_key not in judge_keys]
                terminals += [p.terminal_id for p in hearing.participants
                              if p.terminal_id and p.terminal_id not in terminals]
                if hearing.judge_account_id is not None:
                    accounts.append(hearing.judge_account_id)
            if data.courtroom_id is not None:
                await self._check_courtroom(session, data.courtroom_id)
            return await self._conflicts(
                session, hearing_id, data.scheduled_start, data.scheduled_end,
                data.courtroom_id, judge_keys, terminals, accounts,
            )

    async def list_hearings(self, query: HearingQuery, reach: Reach = EVERYWHERE
                            ) -> tuple[list[Hearing], int]:
        """Hearings in the query's window (among those `reach` covers), with their
        participants loaded."""
        stmt = (
            select(Hearing)
            .where(within(reach))
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
        self, hearing_id: uuid.UUID, data: HearingPatch, actor: str, staff: StaffMember = ADMIN
    ) -> Hearing:
        """Change the hearing as `data` says; moved to another court's courtroom, it is that
        court's, which `staff` must schedule for (the route let them change this hearing)."""
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
                room_court = await self._check_courtroom(session, room)
                if room_court != hearing.court_id:
                    changes["court_id"] = room_court
                    access.check(staff, Permission.SCHEDULE, HearingScope(room_court))
            court_id: uuid.UUID | None = changes.get("court_id", hearing.court_id)
            bench: dict[str, StaffAccount | None] = {}
            for field in _BENCH_ROLES:
                if field in changes or "court_id" in changes:
                    bench[field] = await self._check_bench(
                        session, field, changes.get(field, getattr(hearing, field)), court_id)
            judge_account = changes.get("judge_account_id", hearing.judge_account_id)
            if {"scheduled_start", "scheduled_end", "courtroom_id",
                    "judge_account_id"} & changes.keys():
                conflicts = await self._conflicts(
                    session,
                    hearing.id,
                    start,
                    end,
                    room,
                    [p.name_key for p in hearing.participants if p.role is Role.JUDGE],
                    [p.terminal_id for p in hearing.participants if p.terminal_id is not None],
                    [judge_account] if judge_account else [],
                )
                if conflicts:
                    raise ScheduleConflict(conflicts)
            for field, value in changes.items():
                setattr(hearing, field, value)
            hearing.updated_at = self.clock()
            await self._audit(session, actor, "hearing.updated", hearing.id, **changes)
            for role, field in SEAT_COLUMNS.items():
                if field in changes:
                    await self._reseat(session, hearing, role, bench.get(field), actor)
            return hearing

    async def _reseat(self, session: AsyncSession, hearing: Hearing, role: Role,
                      account: StaffAccount | None, actor: str) -> None:
        """The hearing's judge (or clerk) changed: the seat the previous account held becomes
        the new account's (named by it, its links revoked), or, with no account, a seat named
        as it was. The seat's account is always the hearing's (one source: the hearing)."""
        for seat in hearing.participants:
            if seat.role is not role or seat.account_id is None:
                continue
            if account is None:
                # The seat stays, named as it was; the account's entries no longer open it.
                seat.account_id = None
                await self._revoke_all(session, seat.id, ACCOUNT_ENTRY)
            else:
                seat.account_id, seat.name, seat.name_key = (account.id, account.name,
                                                              name_key(account.name))
                await self._revoke_all(session, seat.id)
            await self._audit(session, actor, "participant.account_changed", hearing.id,
                              participant_id=seat.id,
                              account_id=None if account is None else account.id,
                              name=seat.name)

    async def _revoke_all(self, session: AsyncSession, participant_id: uuid.UUID,
                          issued_to: str | None = None) -> int:
        """Revoke every join token of the participant (or those issued to `issued_to`: its
        account's entries); how many were live."""
        result = await session.execute(
            update(JoinToken)
            .where(JoinToken.participant_id == participant_id, JoinToken.revoked_at.is_(None),
                   true() if issued_to is None else JoinToken.issued_to == issued_to)
            .values(revoked_at=self.clock())
        )
        return int(getattr(result, "rowcount", 0) or 0)

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
            if action in (HearingAction.RESUME, HearingAction.CLOSE):
                hearing.interrupted_at = None  # the court has decided
            await self._audit(
                session, actor, f"hearing.{action.value}", hearing.id,
                **{"from": before.value, "to": hearing.state.value},
            )
            return hearing

    async def interrupt(self, hearing_id: uuid.UUID) -> Hearing | None:
        """The process that held the hearing in session died: nobody holds it, nothing is
        recorded. It goes into recess, flagged `interrupted_at` and audited, and the court
        resumes or closes it. None when it was no longer in session."""
        async with self.db.write() as session:
            hearing = await self._hearing_with_participants(session, hearing_id)
            if hearing.state is not HearingState.IN_SESSION:
                return None
            now = self.clock()
            hearing.state = next_state(hearing.state, HearingAction.RECESS)
            hearing.updated_at = hearing.interrupted_at = now
            await self._audit(session, "system", "hearing.interrupted", hearing.id,
                              **{"from": HearingState.IN_SESSION.value,
                                 "to": hearing.state.value})
            return hearing

"""The registry's invitations: participants, their join tokens, prison terminals' device keys."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from courtrooms.errors import (
    AccessDenied,
    HearingFinished,
    InvalidInput,
    NotEditable,
    NotFound,
    NotPermitted,
    ScheduleConflict,
)
from courtrooms.id_digits import hash_id_digits
from courtrooms.models import (
    ACCOUNT_ENTRY,
    EDITABLE_STATES,
    FINISHED_STATES,
    ID_DIGITS_ROLES,
    INTERPRETED_ROLES,
    LIVE_STATES,
    Hearing,
    HearingState,
    JoinToken,
    Location,
    Participant,
    PrisonTerminal,
    Role,
    StaffAccount,
)
from courtrooms.scheduling import SEAT_COLUMNS, Scheduling, name_key
from courtrooms.schemas import ACCOUNT_ROLES, ParticipantIn
from courtrooms.secrets import digest, new_secret

# A join token opens this long before the scheduled start.
JOIN_WINDOW_LEAD = timedelta(minutes=30)
JOIN_GRACE = timedelta(hours=6)
# How long after the close a prison terminal's kiosk offers its detainee the record to sign.
TERMINAL_SIGNING = timedelta(days=3)


def _check_interpreted(hearing: Hearing, party_id: uuid.UUID) -> None:
    """An interpreter interprets for a party or a witness of the same hearing."""
    party = next((p for p in hearing.participants if p.id == party_id), None)
    if party is None:
        raise InvalidInput(f"participant {party_id} is not a participant of this hearing: "
                           "invite the party first, then their interpreter",
                           field="interprets_for_id")
    if party.role not in INTERPRETED_ROLES:
        allowed = ", ".join(sorted(r.value for r in INTERPRETED_ROLES))
        raise InvalidInput(f"an interpreter interprets for a party ({allowed}), not for "
                           f"{party.name}, a {party.role.value}", field="interprets_for_id")


@dataclass(frozen=True)
class JoinGrant:
    participant: Participant
    hearing: Hearing
    # Through a prison terminal: its device key, or the token derived from it.
    by_terminal: bool = False

    @property
    def needs_id_digits(self) -> bool:
        """Whether joining takes the last digits of the participant's ID number: when the
        court has them on file, for a party (not the court, not an observer), and not at a
        prison terminal, which is in the prison."""
        return (self.participant.id_digits_on_file and not self.by_terminal
                and self.participant.role in ID_DIGITS_ROLES)


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


@dataclass(frozen=True)
class TerminalRecord:
    """A closed hearing's record a prison terminal's detainee may sign at its kiosk."""

    hearing: Hearing
    participant: Participant
    token: str


class Invitations(Scheduling):
    """Who takes part in a hearing and how they get in: join tokens, and a prison terminal's
    device key standing for its participant while the hearing's join window is open."""

    # How long after a hearing's scheduled end its join links still open (a hearing that runs
    # over); the server sets it from `join_grace_hours`. Closing or cancelling ends them too.
    join_grace = JOIN_GRACE

    async def add_participant(
        self, hearing_id: uuid.UUID, data: ParticipantIn, actor: str
    ) -> IssuedToken:
        digits_hash = (None if data.id_number_last4 is None
                       else await asyncio.to_thread(hash_id_digits, data.id_number_last4))
        async with self.db.write() as session:
            hearing = await self._hearing_with_participants(session, hearing_id)
            if hearing.state in FINISHED_STATES:
                raise NotEditable(
                    f"a hearing that is {hearing.state.value} takes no new participants",
                    current_state=hearing.state.value,
                )
            account = await self._seat_account(session, hearing, data)
            name = account.name if account is not None else data.name
            assert name is not None  # ParticipantIn: a name or an account
            key = name_key(name)
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
            if data.interprets_for_id is not None:
                _check_interpreted(hearing, data.interprets_for_id)
            is_judge = data.role is Role.JUDGE
            conflicts = await self._conflicts(
                session,
                hearing.id,
                hearing.scheduled_start,
                hearing.scheduled_end,
                None,
                [key] if is_judge else [],
                [data.terminal_id] if data.terminal_id else [],
                [account.id] if is_judge and account is not None else [],
            )
            if conflicts:
                raise ScheduleConflict(conflicts)
            if account is not None:
                column = SEAT_COLUMNS[data.role]
                if getattr(hearing, column) is None:
                    setattr(hearing, column, account.id)
                    hearing.updated_at = self.clock()
                    await self._audit(session, actor, "hearing.updated", hearing.id,
                                      **{column: account.id})
            participant = Participant(
                hearing_id=hearing.id,
                name=name,
                name_key=key,
                role=data.role,
                location=data.location,
                terminal_id=data.terminal_id,
                language=data.language,
                id_digits_hash=digits_hash,
                interprets_for_id=data.interprets_for_id,
                account_id=None if account is None else account.id,
                created_at=self.clock(),
            )
            session.add(participant)
            await session.flush()
            # The digits themselves go nowhere, the audit included: only that they are on file.
            await self._audit(
                session, actor, "participant.added", hearing.id,
                participant_id=participant.id,
                **data.model_dump(mode="json", exclude={"id_number_last4", "name"}),
                name=name, id_digits_on_file=digits_hash is not None,
            )
            token = await self._issue(session, hearing, participant, "invitation", actor)
            return token

    async def _seat_account(self, session: AsyncSession, hearing: Hearing, data: ParticipantIn
                            ) -> StaffAccount | None:
        """The account whose seat `data` is, if it names one: a judge (or clerk) of the
        hearing's court, the hearing's own judge (or clerk) when it has one, not seated yet."""
        if data.account_id is None:
            return None
        account = await self._check_bench(session, "account_id", data.account_id,
                                          hearing.court_id, ACCOUNT_ROLES[data.role])
        assert account is not None
        column = SEAT_COLUMNS[data.role]
        current = getattr(hearing, column)
        if current is not None and current != account.id:
            raise InvalidInput(
                f"the hearing's {data.role.value} is another account ({current}): change the "
                f"hearing's {column} first (PATCH /hearings/{hearing.id}), or name this "
                f"{data.role.value} without an account", field="account_id")
        if any(p.account_id == account.id for p in hearing.participants):
            raise InvalidInput(f"{account.name} already has their seat in this hearing",
                               field="account_id")
        return account

    async def enter(self, hearing_id: uuid.UUID, account_id: uuid.UUID, actor: str
                    ) -> IssuedToken:
        """A join for the account's own seat in the hearing whose judge (or clerk) it is: the
        seat given by account, else one the clerk typed with the account's name (it becomes the
        account's), else one made now. Each entry revokes the join the previous one gave: one
        live join per seat taken from the account, none of it ever sent anywhere."""
        async with self.db.write() as session:
            hearing = await self._hearing_with_participants(session, hearing_id)
            roles = [role for role, column in SEAT_COLUMNS.items()
                     if getattr(hearing, column) == account_id]
            if not roles:
                raise NotPermitted("this account is neither the hearing's judge nor its clerk: "
                                   "it enters only its own hearings",
                                   needs=["the hearing's judge or clerk"])
            self.check_join_window(hearing)
            seat = next((p for p in hearing.participants if p.account_id == account_id), None)
            account = await self._get(session, StaffAccount, account_id)
            typed = next((p for p in hearing.participants
                          if p.role is roles[0] and p.account_id is None
                          and p.name_key == name_key(account.name)), None)
            if seat is None and typed is not None:
                # The clerk typed them by the account's very name: that seat is theirs.
                seat = typed
                seat.account_id = account.id
                await self._audit(session, actor, "participant.account_changed", hearing.id,
                                  participant_id=seat.id, account_id=account.id,
                                  name=seat.name)
            elif seat is None:
                seat = Participant(hearing_id=hearing.id, name=account.name,
                                   name_key=name_key(account.name), role=roles[0],
                                   location=Location.COURTROOM, account_id=account.id,
                                   created_at=self.clock())
                session.add(seat)
                await session.flush()
                await self._audit(session, actor, "participant.added", hearing.id,
                                  participant_id=seat.id, name=seat.name,
                                  role=seat.role.value, location=seat.location.value,
                                  account_id=account.id)
            await self._revoke_all(session, seat.id, ACCOUNT_ENTRY)
            return await self._issue(session, hearing, seat, ACCOUNT_ENTRY, actor)

    async def _issue(
        self,
        session: AsyncSession,
        hearing: Hearing,
        participant: Participant,
        issued_to: str,
        actor: str,
        secret: str | None = None,
    ) -> IssuedToken:
        secret = secret or new_secret()
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
            interpreters = [p.name for p in hearing.participants
                            if p.interprets_for_id == participant.id]
            if interpreters:
                raise NotEditable(
                    f"{'、'.join(interpreters)} interpret(s) for {participant.name}: remove the "
                    "interpreter first", interpreters=interpreters)
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
        grant = await self.token_grant(token)
        self.check_join_window(grant.hearing)
        return grant

    async def token_grant(self, token: str) -> JoinGrant:
        """The participant and hearing of a join token that is not revoked, at any time (the
        record is signed after the hearing closed): what it would be asked at a join."""
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
            return JoinGrant(participant, hearing, by_terminal=join_token.issued_to == "terminal")

    def check_join_window(self, hearing: Hearing) -> None:
        """Refuse unless the hearing's join links open now: not closed or cancelled, not before
        JOIN_WINDOW_LEAD ahead of its start, not past its scheduled end and `join_grace`.
        Exhibits follow the same window."""
        if hearing.state in FINISHED_STATES:
            raise HearingFinished(f"the hearing is {hearing.state.value}",
                                  hearing_id=str(hearing.id), state=hearing.state.value)
        opens = hearing.scheduled_start - JOIN_WINDOW_LEAD
        if self.clock() < opens:
            raise AccessDenied(
                f"this join link opens at {opens.isoformat()}", opens_at=opens.isoformat()
            )
        expired = hearing.scheduled_end + self.join_grace
        if self.clock() > expired:
            raise AccessDenied(
                f"this join link expired at {expired.isoformat()} (the hearing was to end at "
                f"{hearing.scheduled_end.isoformat()}); ask the court for a new one",
                expired_at=expired.isoformat())

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
                # None when the court revoked it: the kiosk then joins with its key or not.
                token = await self._terminal_token(session, device_key, terminal, hearing,
                                                   participant)
            return TerminalAssignment(terminal, hearing, participant, opens_at, token)

    async def _terminal_token(self, session: AsyncSession, device_key: str,
                              terminal: PrisonTerminal, hearing: Hearing,
                              participant: Participant) -> str | None:
        """The terminal's token for its participant: one per terminal and hearing, the same at
        every poll, derived from the key the kiosk holds (never stored), issued once; None
        when the court revoked it."""
        token = hmac.new(device_key.encode(), f"join:{participant.id}".encode(),
                         hashlib.sha256).hexdigest()
        known = await session.scalar(
            select(JoinToken).where(JoinToken.token_hash == digest(token)))
        if known is None:
            await self._issue(session, hearing, participant, "terminal",
                              f"terminal:{terminal.id}", secret=token)
        elif known.revoked_at is not None:
            return None
        return token

    async def terminal_records(self, device_key: str) -> list[TerminalRecord]:
        """The closed hearings whose record a prison terminal's detainee may sign there (closed
        within TERMINAL_SIGNING), newest first, each with the terminal's token for them: the
        one its kiosk joined with, derived from its key (issued now if it never joined)."""
        async with self.db.write() as session:
            terminal, _, _ = await self._terminal_hearing(session, device_key)
            rows = (await session.execute(
                select(Hearing, Participant)
                .join(Participant, Participant.hearing_id == Hearing.id)
                .where(Participant.terminal_id == terminal.id,
                       Hearing.state == HearingState.CLOSED,
                       Hearing.closed_at > self.clock() - TERMINAL_SIGNING)
                .order_by(Hearing.closed_at.desc())
                .options(selectinload(Hearing.participants)))).all()
            found = []
            for hearing, participant in rows:
                token = await self._terminal_token(session, device_key, terminal, hearing,
                                                   participant)
                if token is not None:  # else revoked by the court
                    found.append(TerminalRecord(hearing, participant, token))
            return found

    async def resolve_device_key(self, device_key: str) -> JoinGrant:
        """The participant a prison terminal is now, if its hearing's join window is open."""
        async with self.db.read() as session:
            _, hearing, participant = await self._terminal_hearing(session, device_key)
        if hearing is None or participant is None:
            raise AccessDenied("this prison terminal has no hearing now")
        self.check_join_window(hearing)
        return JoinGrant(participant, hearing, by_terminal=True)

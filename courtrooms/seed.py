"""The demo court that `make run` sets up: a hearing starting now with three participants.

The demo knows what it created by the ids the audit chain records under its actor, never by
name or case number, so a second run touches nothing a clerk made: not a hearing whose case
number starts like the demo's, not a terminal named like the demo's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms.accounts import NewPassword, StaffAccounts, new_password
from courtrooms.errors import InvalidTransition, LoginTaken
from courtrooms.lifecycle import HearingAction
from courtrooms.models import (
    ACTIVE_STATES,
    AuditEvent,
    Court,
    Courtroom,
    Hearing,
    HearingKind,
    HearingState,
    Location,
    PrisonTerminal,
    Role,
    StaffRole,
)
from courtrooms.registry import Registry
from courtrooms.schemas import (
    CourtIn,
    CourtroomIn,
    HearingIn,
    ParticipantIn,
    PrisonTerminalIn,
    StaffAccountIn,
)

DEMO_COURT = "演示人民法院 Demo People's Court"
DEMO_COURTROOM = "第一法庭 Courtroom 1"
DEMO_TERMINAL = "提讯终端一号 Terminal 1"
DEMO_PRISON = "演示监狱 Demo Prison"
DEMO_CASE_PREFIX = "(2026)演0101刑初"
ACTOR = "system:seed-demo"

M = TypeVar("M", Court, Courtroom, PrisonTerminal)

# Where each creation event names the row it created (None: the event's hearing_id).
CREATED_ID = {
    "court.created": "court_id",
    "courtroom.created": "courtroom_id",
    "terminal.created": "terminal_id",
    "hearing.created": None,
    "account.created": "account_id",
}
# The demo court's staff: each run gives them new passwords, printed with the links.
DEMO_STAFF = (
    ("王审判员", "demo-judge", StaffRole.JUDGE),
    ("赵书记员", "demo-clerk", StaffRole.CLERK),
    ("孙监督员", "demo-supervisor", StaffRole.SUPERVISOR),
)


@dataclass(frozen=True)
class DemoInvite:
    name: str
    role: Role
    location: Location
    token: str


@dataclass(frozen=True)
class Demo:
    court: Court
    courtroom: Courtroom
    terminal: PrisonTerminal
    # The terminal's device key when this call created the terminal; None when it existed
    # already: the key printed then still opens it (a kiosk may be using it).
    terminal_key: str | None
    hearing: Hearing
    invites: list[DemoInvite]
    # The demo court's judge, clerk and supervisor, with the passwords they have now.
    staff: list[NewPassword]


async def created_by_demo(registry: Registry) -> dict[str, list[uuid.UUID]]:
    """Creation event → ids of the rows the demo created, oldest first (some may be deleted)."""
    created: dict[str, list[uuid.UUID]] = {action: [] for action in CREATED_ID}
    async with registry.db.read() as session:
        events = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.in_(CREATED_ID), AuditEvent.actor == ACTOR)
            .order_by(AuditEvent.seq)
        )
        for event in events:
            key = CREATED_ID[event.action]
            row_id = event.hearing_id if key is None else uuid.UUID(event.data[key])
            if row_id is not None:
                created[event.action].append(row_id)
    return created


async def seed_demo(registry: Registry, language: str) -> Demo:
    """Create the demo court once; each call schedules a fresh demo hearing starting now.

    Earlier demo hearings that would double-book the room, judge or terminal are ended first.
    The demo terminal keeps its key: only the call that creates it returns one.
    """
    created = await created_by_demo(registry)
    court_ids, room_ids = created["court.created"], created["courtroom.created"]
    terminal_ids, hearing_ids = created["terminal.created"], created["hearing.created"]
    async with registry.db.read() as session:
        court = await newest(session, Court, court_ids)
        room = await newest(session, Courtroom, room_ids)
        if court is None or (room is not None and room.court_id != court.id):
            room = None
        terminal = await newest(session, PrisonTerminal, terminal_ids)
        earlier = (
            await session.scalars(
                select(Hearing).where(
                    Hearing.id.in_(hearing_ids), Hearing.state.in_(ACTIVE_STATES)
                )
            )
        ).all()
        numbers_taken = set(
            await session.scalars(
                select(Hearing.case_number).where(Hearing.case_number.startswith(DEMO_CASE_PREFIX))
            )
        )
    if court is None:
        court = await registry.create_court(CourtIn(name=DEMO_COURT), ACTOR)
    if room is None:
        room = await registry.create_courtroom(
            CourtroomIn(court_id=court.id, name=DEMO_COURTROOM), ACTOR
        )
    key = None
    if terminal is None:
        terminal, key = await registry.create_terminal(
            PrisonTerminalIn(name=DEMO_TERMINAL, prison=DEMO_PRISON), ACTOR
        )
    for old in earlier:
        action = (
            HearingAction.CANCEL
            if old.state in (HearingState.SCHEDULED, HearingState.OPEN)
            else HearingAction.CLOSE
        )
        try:
            await registry.transition(old.id, action, ACTOR)
        except InvalidTransition:
            pass  # it changed state meanwhile; the conflict check below still guards
    # Numbered after the demo's own hearings, past any number a clerk's hearing already has.
    number = len(hearing_ids) + 1
    while f"{DEMO_CASE_PREFIX}{number}号" in numbers_taken:
        number += 1
    staff = await seed_staff(registry, court, created["account.created"])
    # The demo judge and clerk are the hearing's: they find it under "my hearings".
    bench = {a.account.staff_roles: a.account for a in staff}
    judge = bench.get(frozenset({StaffRole.JUDGE}))
    clerk = bench.get(frozenset({StaffRole.CLERK}))
    now = registry.clock().replace(second=0, microsecond=0)
    hearing = await registry.create_hearing(
        HearingIn(
            case_number=f"{DEMO_CASE_PREFIX}{number}号",
            title="张某某盗窃案 公开开庭审理（演示）",
            kind=HearingKind.TRIAL,
            courtroom_id=room.id,
            scheduled_start=now,
            scheduled_end=now + timedelta(hours=2),
            language=language,
            judge_account_id=None if judge is None else judge.id,
            clerk_account_id=None if clerk is None else clerk.id,
        ),
        ACTOR,
        language,
    )
    people = [
        ParticipantIn(name="王审判员", role=Role.JUDGE, location=Location.COURTROOM)
        if judge is None else
        ParticipantIn(account_id=judge.id, role=Role.JUDGE, location=Location.COURTROOM),
        ParticipantIn(
            name="张某某", role=Role.DEFENDANT, location=Location.PRISON, terminal_id=terminal.id
        ),
        ParticipantIn(name="李律师", role=Role.LAWYER, location=Location.REMOTE),
    ]
    invites = []
    for person in people:
        issued = await registry.add_participant(hearing.id, person, ACTOR)
        invites.append(DemoInvite(issued.participant.name, person.role, person.location,
                                  issued.token))
    return Demo(court, room, terminal, key, hearing, invites, staff)


async def seed_staff(registry: Registry, court: Court, ids: list[uuid.UUID]
                     ) -> list[NewPassword]:
    """The demo's staff accounts, created once, each given a new password now. A login the
    demo did not create (someone's own account) is left alone."""
    accounts = StaffAccounts(registry.db, registry.clock)
    seeded = []
    for name, login, role in DEMO_STAFF:
        password = new_password()
        existing = await accounts.find(login)
        try:
            if existing is None:
                account = await accounts.add(
                    StaffAccountIn(name=name, login=login, court_id=court.id, roles=[role]),
                    password, ACTOR)
            elif existing.id in ids and not existing.disabled:
                await accounts.set_password(login, password, ACTOR)
                account = existing
            else:
                continue
        except LoginTaken:
            continue  # made meanwhile by someone else
        seeded.append(NewPassword(account, password))
    return seeded



async def newest(session: AsyncSession, model: type[M], ids: list[uuid.UUID]) -> M | None:
    """The newest of `ids` that still exists (an admin may have deleted one)."""
    for row_id in reversed(ids):
        row = await session.get(model, row_id)
        if row is not None:
            return row
    return None

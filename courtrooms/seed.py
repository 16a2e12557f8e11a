"""The demo court that `make run` sets up: a hearing starting now with three participants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from courtrooms.errors import InvalidTransition
from courtrooms.lifecycle import HearingAction
from courtrooms.models import (
    ACTIVE_STATES,
    Court,
    Courtroom,
    Hearing,
    HearingKind,
    HearingState,
    Location,
    PrisonTerminal,
    Role,
)
from courtrooms.schemas import (
    CourtIn,
    CourtroomIn,
    HearingIn,
    ParticipantIn,
    PrisonTerminalIn,
)
from courtrooms.service import Registry

DEMO_COURT = "演示人民法院 Demo People's Court"
DEMO_COURTROOM = "第一法庭 Courtroom 1"
DEMO_TERMINAL = "提讯终端一号 Terminal 1"
DEMO_PRISON = "演示监狱 Demo Prison"
DEMO_CASE_PREFIX = "(2026)演0101刑初"
ACTOR = "system:seed-demo"


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
    terminal_key: str
    hearing: Hearing
    invites: list[DemoInvite]


async def seed_demo(registry: Registry, language: str) -> Demo:
    """Create the demo court once; each call schedules a fresh demo hearing starting now.

    Earlier demo hearings that would double-book the room, judge or terminal are ended first.
    """
    async with registry.db.read() as session:
        court = await session.scalar(select(Court).where(Court.name == DEMO_COURT))
        room = None
        if court is not None:
            room = await session.scalar(
                select(Courtroom).where(
                    Courtroom.court_id == court.id, Courtroom.name == DEMO_COURTROOM
                )
            )
        terminal = await session.scalar(
            select(PrisonTerminal).where(
                PrisonTerminal.name == DEMO_TERMINAL, PrisonTerminal.prison == DEMO_PRISON
            )
        )
        earlier = (
            await session.scalars(
                select(Hearing).where(
                    Hearing.case_number.startswith(DEMO_CASE_PREFIX),
                    Hearing.state.in_(ACTIVE_STATES),
                )
            )
        ).all()
        demo_count = len(
            (
                await session.scalars(
                    select(Hearing.id).where(Hearing.case_number.startswith(DEMO_CASE_PREFIX))
                )
            ).all()
        )
    if court is None:
        court = await registry.create_court(CourtIn(name=DEMO_COURT), ACTOR)
    if room is None:
        room = await registry.create_courtroom(
            CourtroomIn(court_id=court.id, name=DEMO_COURTROOM), ACTOR
        )
    if terminal is None:
        terminal, key = await registry.create_terminal(
            PrisonTerminalIn(name=DEMO_TERMINAL, prison=DEMO_PRISON), ACTOR
        )
    else:
        terminal, key = await registry.rotate_terminal_key(terminal.id, ACTOR)
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
    now = registry.clock().replace(second=0, microsecond=0)
    hearing = await registry.create_hearing(
        HearingIn(
            case_number=f"{DEMO_CASE_PREFIX}{demo_count + 1}号",
            title="张某某盗窃案 公开开庭审理（演示）",
            kind=HearingKind.TRIAL,
            courtroom_id=room.id,
            scheduled_start=now,
            scheduled_end=now + timedelta(hours=2),
            language=language,
        ),
        ACTOR,
        language,
    )
    people = [
        ParticipantIn(name="王审判员", role=Role.JUDGE, location=Location.COURTROOM),
        ParticipantIn(
            name="张某某", role=Role.DEFENDANT, location=Location.PRISON, terminal_id=terminal.id
        ),
        ParticipantIn(name="李律师", role=Role.LAWYER, location=Location.REMOTE),
    ]
    invites = []
    for person in people:
        issued = await registry.add_participant(hearing.id, person, ACTOR)
        invites.append(DemoInvite(person.name, person.role, person.location, issued.token))
    return Demo(court, room, terminal, key, hearing, invites)

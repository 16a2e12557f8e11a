"""Small builders shared by the registry tests: real rows through the real `Registry`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from courtrooms.accounts import StaffAccounts
from courtrooms.invitations import IssuedToken
from courtrooms.models import (
    Base,
    Court,
    Courtroom,
    Hearing,
    HearingKind,
    Location,
    Role,
    StaffAccount,
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

ACTOR = "clerk:test"
# The `clock` fixture's start; hearings are placed relative to it.
T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


async def make_court(registry: Registry, name: str | None = None) -> Court:
    return await registry.create_court(CourtIn(name=name or f"Court {uuid.uuid4().hex[:8]}"), ACTOR)


async def make_room(
    registry: Registry, court: Court | None = None, name: str = "Room 1"
) -> Courtroom:
    court = court or await make_court(registry)
    return await registry.create_courtroom(CourtroomIn(court_id=court.id, name=name), ACTOR)


async def make_account(registry: Registry, name: str, role: StaffRole,
                       court: Court | None = None) -> StaffAccount:
    """A staff account of `court` with `role`, its login made from a fresh id."""
    return await StaffAccounts(registry.db, registry.clock).add(
        StaffAccountIn(name=name, login=f"u{uuid.uuid4().hex[:12]}", roles=[role],
                       court_id=court.id if court else None),
        "a password of the test", ACTOR)


async def make_hearing(
    registry: Registry,
    start: float,
    end: float,
    room: Courtroom | None = None,
    *,
    case_number: str | None = None,
    language: str | None = None,
    judge: StaffAccount | None = None,
) -> Hearing:
    return await registry.create_hearing(
        HearingIn(
            case_number=case_number or f"(2026)京01刑初{uuid.uuid4().int % 10000}号",
            title="张某盗窃案",
            kind=HearingKind.TRIAL,
            courtroom_id=room.id if room else None,
            scheduled_start=at(start),
            scheduled_end=at(end),
            language=language,
            judge_account_id=judge.id if judge else None,
        ),
        ACTOR,
        "zh",
    )


async def add_judge(registry: Registry, hearing: Hearing, name: str = "Judge Wang") -> IssuedToken:
    return await registry.add_participant(
        hearing.id, ParticipantIn(name=name, role=Role.JUDGE, location=Location.COURTROOM), ACTOR
    )


async def add_defendant(
    registry: Registry, hearing: Hearing, terminal_id: uuid.UUID, name: str = "张某"
) -> IssuedToken:
    return await registry.add_participant(
        hearing.id,
        ParticipantIn(
            name=name, role=Role.DEFENDANT, location=Location.PRISON, terminal_id=terminal_id
        ),
        ACTOR,
    )


async def add_remote(registry: Registry, hearing: Hearing, name: str = "李律师") -> IssuedToken:
    return await registry.add_participant(
        hearing.id, ParticipantIn(name=name, role=Role.LAWYER, location=Location.REMOTE), ACTOR
    )


async def make_terminal(registry: Registry, name: str = "Terminal 1") -> tuple[uuid.UUID, str]:
    terminal, key = await registry.create_terminal(
        PrisonTerminalIn(name=name, prison="第一监狱"), ACTOR
    )
    return terminal.id, key


async def database_text(registry: Registry, *tables: str) -> str:
    """Every row of the named tables (default: all), as text, to look for leaked secrets."""
    names = tables or tuple(Base.metadata.tables)
    parts = []
    async with registry.db.engine.connect() as conn:
        for name in names:
            table = Base.metadata.tables[name]
            for row in (await conn.execute(select(table))).all():
                parts.append(repr(tuple(row)))
    return "\n".join(parts)

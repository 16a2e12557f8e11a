"""The audit chain: every write appends a linked event; any tampering is found and named."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from courtrooms import audit
from courtrooms.errors import ScheduleConflict
from courtrooms.lifecycle import HearingAction
from courtrooms.models import AuditEvent
from courtrooms.schemas import (
    AuditQuery,
    CourtIn,
    CourtPatch,
    HearingPatch,
    PageQuery,
    PrisonTerminalPatch,
)
from courtrooms.service import Registry
from tests.conftest import FakeClock
from tests.courtrooms.builders import (
    ACTOR,
    add_defendant,
    add_judge,
    add_remote,
    make_court,
    make_hearing,
    make_room,
    make_terminal,
)

HEARING_ACTIONS = {"hearing", "participant", "token"}


async def all_events(registry: Registry) -> list[AuditEvent]:
    events, total = await registry.audit_events(AuditQuery(limit=200))
    assert total == len(events)
    return events


def assert_linked(events: list[AuditEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == audit.GENESIS_HASH
    for previous, event in itertools.pairwise(events):
        assert event.prev_hash == previous.hash
    assert len({e.hash for e in events}) == len(events)


async def execute(registry: Registry, sql: str, **params: Any) -> None:
    async with registry.db.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def some_history(registry: Registry, courts: int = 5) -> None:
    for i in range(courts):
        await registry.create_court(CourtIn(name=f"Court {i}"), ACTOR)


# -- appending -----------------------------------------------------------------------------


async def test_every_write_appends_its_events(registry: Registry, clock: FakeClock) -> None:
    court = await make_court(registry)
    ids: dict[str, Any] = {"court": court}

    async def room() -> None:
        ids["room"] = await make_room(registry, court)

    async def terminal() -> None:
        ids["terminal"] = await make_terminal(registry)

    async def hearing() -> None:
        ids["hearing"] = await make_hearing(registry, 1, 2, ids["room"])

    async def judge() -> None:
        ids["judge"] = await add_judge(registry, ids["hearing"])

    async def defendant() -> None:
        ids["defendant"] = await add_defendant(registry, ids["hearing"], ids["terminal"][0])

    async def reissue() -> None:
        ids["judge"] = await registry.reissue_token(h(), ids["judge"].participant.id, ACTOR)

    async def conflicting_hearing() -> None:
        with pytest.raises(ScheduleConflict):
            await make_hearing(registry, 1.5, 2.5, ids["room"])

    async def terminal_in_window() -> None:
        clock.advance(timedelta(minutes=40))
        assert (await registry.terminal_assignment(ids["terminal"][1])).token is not None

    async def passing_remote() -> None:
        issued = await add_remote(registry, ids["hearing"], "临时旁听")
        await registry.remove_participant(h(), issued.participant.id, ACTOR)

    async def passing_court() -> None:
        extra = await make_court(registry)
        room = await make_room(registry, extra)
        terminal_id, _ = await make_terminal(registry, "Spare")
        await registry.delete_courtroom(room.id, ACTOR)
        await registry.delete_court(extra.id, ACTOR)
        await registry.delete_terminal(terminal_id, ACTOR)

    async def reads() -> None:
        await registry.get_hearing(ids["hearing"].id)
        await registry.list_courts(PageQuery())
        await registry.resolve_join_token(ids["judge"].token)

    h = lambda: ids["hearing"].id  # noqa: E731
    steps: list[tuple[Callable[[], Awaitable[Any]], list[str]]] = [
        (room, ["courtroom.created"]),
        (terminal, ["terminal.created"]),
        (hearing, ["hearing.created"]),
        (judge, ["participant.added", "token.issued"]),
        (defendant, ["participant.added", "token.issued"]),
        (conflicting_hearing, []),  # refused: nothing on the record
        (
            lambda: registry.update_hearing(h(), HearingPatch(title="改"), ACTOR),
            ["hearing.updated"],
        ),
        (reissue, ["token.revoked", "token.issued"]),
        (terminal_in_window, ["token.issued"]),
        (lambda: registry.update_court(court.id, CourtPatch(name="New"), ACTOR), ["court.updated"]),
        (lambda: registry.update_court(court.id, CourtPatch(name="New"), ACTOR), []),  # no change
        (
            lambda: registry.rotate_terminal_key(ids["terminal"][0], ACTOR),
            ["terminal.key_rotated"],
        ),
        (lambda: registry.rotate_terminal_key(ids["terminal"][0], ACTOR), ["terminal.key_rotated"]),
        (
            lambda: registry.update_terminal(
                ids["terminal"][0], PrisonTerminalPatch(name="Renamed"), ACTOR
            ),
            ["terminal.updated"],
        ),
        (
            lambda: registry.revoke_tokens(h(), ids["defendant"].participant.id, ACTOR),
            ["token.revoked"],
        ),
        (passing_remote, ["participant.added", "token.issued", "participant.removed"]),
        (
            passing_court,
            [
                "court.created", "courtroom.created", "terminal.created",
                "courtroom.deleted", "court.deleted", "terminal.deleted",
            ],
        ),
        (reads, []),
        (lambda: registry.transition(h(), HearingAction.OPEN, ACTOR), ["hearing.open"]),
        (lambda: registry.transition(h(), HearingAction.START, ACTOR), ["hearing.start"]),
        (lambda: registry.transition(h(), HearingAction.CLOSE, ACTOR), ["hearing.close"]),
    ]
    before = await all_events(registry)
    assert [e.action for e in before] == ["court.created"]
    for step, expected in steps:
        count = len(await all_events(registry))
        await step()
        events = await all_events(registry)
        assert [e.action for e in events[count:]] == expected, step
    events = await all_events(registry)
    assert_linked(events)
    assert len(events) == 1 + sum(len(expected) for _, expected in steps)

    hearing_events, total = await registry.audit_events(AuditQuery(hearing_id=h()))
    assert total == len(hearing_events)
    about_hearing = [e.seq for e in events if e.action.split(".")[0] in HEARING_ACTIONS]
    assert [e.seq for e in hearing_events] == about_hearing
    created = next(e for e in events if e.action == "court.created")
    assert (created.actor, created.data["name"]) == (ACTOR, court.name)


async def test_terminal_token_is_on_the_record(registry: Registry, clock: FakeClock) -> None:
    terminal_id, key = await make_terminal(registry)
    hearing = await make_hearing(registry, 0, 1)
    await add_defendant(registry, hearing, terminal_id)
    count = len(await all_events(registry))
    await registry.terminal_assignment(key)
    events = await all_events(registry)
    assert [e.action for e in events[count:]] == ["token.issued"]
    assert events[-1].actor == f"terminal:{terminal_id}"
    assert events[-1].data["issued_to"] == "terminal"


async def test_events_record_the_clock(registry: Registry, clock: FakeClock) -> None:
    await make_court(registry)
    clock.advance(timedelta(hours=3, microseconds=7))
    await make_court(registry)
    first, second = await all_events(registry)
    assert first.at == clock.now - timedelta(hours=3, microseconds=7)
    assert second.at == clock.now


async def test_concurrent_writes_keep_the_chain_intact(registry: Registry) -> None:
    await asyncio.gather(
        *(registry.create_court(CourtIn(name=f"Court {i:02}"), ACTOR) for i in range(20))
    )
    events = await all_events(registry)
    assert len(events) == 20
    assert_linked(events)
    assert sorted(e.data["name"] for e in events) == [f"Court {i:02}" for i in range(20)]
    report = await registry.verify_audit()
    assert (report.ok, report.events) == (True, 20)


# -- verifying -----------------------------------------------------------------------------


async def test_verify_empty_and_intact_chain(registry: Registry) -> None:
    report = await registry.verify_audit()
    assert (report.ok, report.events, report.broken_seq) == (True, 0, None)
    await some_history(registry)
    hearing = await make_hearing(registry, 1, 2)
    await add_judge(registry, hearing, "审判员 王某")
    report = await registry.verify_audit()
    assert (report.ok, report.events, report.broken_seq) == (True, 8, None)


async def test_first_tampered_event_is_named(registry: Registry) -> None:
    # Tampering from the newest event back: each time, the earliest broken event is reported.
    await some_history(registry)
    tampering = [
        (5, "UPDATE audit_events SET action = 'court.deleted' WHERE seq = 5"),
        (4, "UPDATE audit_events SET actor = 'clerk:mallory' WHERE seq = 4"),
        (3, "UPDATE audit_events SET data = '{\"name\": \"Forged Court\"}' WHERE seq = 3"),
    ]
    for seq, sql in tampering:
        await execute(registry, sql)
        report = await registry.verify_audit()
        assert not report.ok
        assert (report.broken_seq, report.events) == (seq, seq - 1)
        assert report.reason is not None and str(seq) in report.reason


async def test_tampered_time_is_named(registry: Registry) -> None:
    await some_history(registry)
    events = await all_events(registry)
    async with registry.db.write() as session:
        row = await session.get(AuditEvent, 4)
        assert row is not None
        row.at = events[3].at - timedelta(days=1)
    report = await registry.verify_audit()
    assert report.broken_seq == 4


async def test_deleted_middle_event_is_named(registry: Registry) -> None:
    await some_history(registry)
    await execute(registry, "DELETE FROM audit_events WHERE seq = 3")
    report = await registry.verify_audit()
    assert report.broken_seq == 3
    assert report.reason is not None and "missing" in report.reason


async def test_changed_hash_is_named(registry: Registry) -> None:
    await some_history(registry)
    await execute(registry, "UPDATE audit_events SET hash = :h WHERE seq = 3", h="f" * 64)
    report = await registry.verify_audit()
    assert report.broken_seq == 3


async def test_rehashed_forgery_breaks_the_next_link(registry: Registry) -> None:
    await some_history(registry)
    events = await all_events(registry)
    target = events[2]
    forged_data = {**target.data, "name": "Forged Court"}
    forged_hash = audit.event_hash(
        seq=target.seq, at=target.at, actor=target.actor, action=target.action,
        hearing_id=target.hearing_id, data=forged_data, prev_hash=target.prev_hash,
    )
    async with registry.db.write() as session:
        row = await session.get(AuditEvent, target.seq)
        assert row is not None
        row.data = forged_data
        row.hash = forged_hash
    report = await registry.verify_audit()
    assert report.broken_seq == 4
    assert report.events == 3


async def test_verify_reads_in_batches(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "VERIFY_BATCH", 3)
    await some_history(registry, courts=10)
    report = await registry.verify_audit()
    assert (report.ok, report.events) == (True, 10)
    await execute(registry, "DELETE FROM audit_events WHERE seq = 7")
    assert (await registry.verify_audit()).broken_seq == 7


async def test_chain_continues_after_restart(registry: Registry, database_url: str) -> None:
    from courtrooms.database import Database

    await some_history(registry, courts=2)
    db = Database(database_url)
    try:
        other = Registry(db, registry.clock)
        await other.create_court(CourtIn(name="After restart"), ACTOR)
    finally:
        await db.aclose()
    events = await all_events(registry)
    assert_linked(events)
    assert (await registry.verify_audit()).ok


# -- the command line ----------------------------------------------------------------------


async def test_verify_audit_cli(
    registry: Registry,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from web.cli import main

    for key in list(os.environ):
        if key.startswith("TINGSHEN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TINGSHEN_DATABASE_URL", database_url)
    monkeypatch.setenv("TINGSHEN_DATA_DIR", str(tmp_path / "var"))
    await some_history(registry)

    # The CLI runs its own event loop, as it does from a shell.
    assert await asyncio.to_thread(main, ["verify-audit"]) == 0
    out, err = capsys.readouterr()
    assert "intact" in out and "5 events" in out
    assert err == ""

    await execute(registry, "UPDATE audit_events SET actor = 'clerk:mallory' WHERE seq = 4")
    assert await asyncio.to_thread(main, ["verify-audit"]) == 1
    out, err = capsys.readouterr()
    assert "event 4" in err
    assert "intact" not in out

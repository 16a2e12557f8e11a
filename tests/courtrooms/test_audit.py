"""The audit chain: every write appends a linked event; any tampering is found and named."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from courtrooms import anchor, audit
from courtrooms.errors import ScheduleConflict
from courtrooms.exhibits import Exhibits
from courtrooms.integrity import IntegrityReport, verify_record
from courtrooms.lifecycle import HearingAction
from courtrooms.models import AuditEvent, Hearing, StaffRole
from courtrooms.recordings import FileOutcome, Recordings
from courtrooms.registry import Registry
from courtrooms.schemas import (
    AuditQuery,
    CourtIn,
    CourtPatch,
    HearingPatch,
    PageQuery,
    PrisonTerminalPatch,
)
from courtrooms.transcripts import SpokenLine, Transcripts, record_sha256
from tests.conftest import FakeClock
from tests.courtrooms.builders import (
    ACTOR,
    add_defendant,
    add_judge,
    add_remote,
    make_account,
    make_court,
    make_hearing,
    make_room,
    make_terminal,
)
from tests.exhibit_files import chunks, png

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


async def test_a_seat_entered_from_an_account_is_audited_with_that_account(
    registry: Registry
) -> None:
    """What a judge does from the seat they entered is the account's, and stays the account
    that held the seat then when the seat passes to another."""
    court = await make_court(registry)
    judge = await make_account(registry, "王审判员", StaffRole.JUDGE, court)
    successor = await make_account(registry, "钱审判员", StaffRole.JUDGE, court)
    hearing = await make_hearing(registry, 0.25, 3, await make_room(registry, court),
                                 judge=judge)
    seat = f"participant:{(await registry.enter(hearing.id, judge.id, judge.actor)).participant.id}"
    lawyer = f"participant:{(await add_remote(registry, hearing)).participant.id}"
    await registry.transition(hearing.id, HearingAction.OPEN, seat)
    await registry.update_hearing(hearing.id, HearingPatch(judge_account_id=successor.id), ACTOR)
    await registry.transition(hearing.id, HearingAction.START, seat)
    await registry.record(hearing.id, lawyer, "attendance.joined")
    events = {e.action: e for e in await all_events(registry)}
    assert events["hearing.open"].actor == events["hearing.start"].actor == seat
    assert events["hearing.open"].data["actor_account_id"] == str(judge.id)
    assert events["hearing.start"].data["actor_account_id"] == str(successor.id)
    assert "actor_account_id" not in events["attendance.joined"].data


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


# -- verifying the whole record ------------------------------------------------------------


@dataclass
class Court:
    """A court's record as the server leaves it: a hearing closed and sealed (by the close
    and by the judge) with a recording, lines, an exhibit and a composite; a hearing in
    recess whose file is finished; the chain's head checkpointed and signed."""

    registry: Registry
    data_dir: Path
    key: Path
    checkpoints: Path
    sealed: Hearing
    recessed: Hearing
    line_id: uuid.UUID

    async def verify(self) -> IntegrityReport:
        return await verify_record(self.registry.db, self.data_dir, self.key, self.checkpoints)

    async def checkpoint(self) -> None:
        signer = anchor.load_or_create_key(self.key)
        head = await anchor.head(self.registry.db)
        assert head is not None
        anchor.CheckpointLog(self.checkpoints).append(
            anchor.Checkpoint.make(signer, head.seq, head.hash, self.registry.clock()))


async def record_file(recordings: Recordings, hearing: Hearing, participant: uuid.UUID,
                      data: bytes) -> str:
    await recordings.begin_segment(hearing.id, 1_800_000_000.0)
    path = f"recordings/{hearing.id}/000-001-{participant}.webm"
    await recordings.file_started(hearing.id, participant, 0, path, 0.0)
    full = recordings.data_dir / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(data)
    await recordings.file_finished(path, FileOutcome(duration=4.0, codecs="vp8,opus"))
    await recordings.end_segment(hearing.id, 0, 4.0)
    return path


@pytest.fixture
async def court(registry: Registry, clock: FakeClock, tmp_path: Path) -> Court:
    data_dir = tmp_path / "data"
    key = tmp_path / "keys" / "audit-signing-key.pem"
    signer = anchor.load_or_create_key(key)
    recordings = Recordings(registry.db, clock, data_dir, signer)
    transcripts = Transcripts(registry.db, clock, signer)
    exhibits = Exhibits(registry.db, clock, data_dir)

    sealed = await make_hearing(registry, 0, 2)
    judge = (await add_judge(registry, sealed)).participant
    await registry.transition(sealed.id, HearingAction.OPEN, ACTOR)
    await registry.transition(sealed.id, HearingAction.START, ACTOR)
    await record_file(recordings, sealed, judge.id, b"\x1aE\xdf\xa3" + os.urandom(4000))
    lines = [await transcripts.add(sealed.id, SpokenLine(judge.id, t, t + 2.0, text, "zh"))
             for t, text in ((1.0, "现在开庭"), (4.0, "核对当事人身份"), (8.0, "休庭"))]
    await exhibits.add(sealed.id, "借条", "image/png", chunks(png()),
                       participant_id=None, actor=ACTOR)
    await registry.transition(sealed.id, HearingAction.CLOSE, "judge:wang")
    await recordings.seal(sealed.id, await recordings.closed_by(sealed.id))
    await transcripts.seal(sealed.id, "judge:wang")
    await transcripts.correct(sealed.id, lines[1].id, "核对当事人身份。", ACTOR)
    await transcripts.seal_by_judge(sealed.id, "judge:wang", None)
    composite = data_dir / "review" / f"{sealed.id}.mp4"
    composite.parent.mkdir(parents=True)
    composite.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    await recordings.add_composite(sealed.id, composite.relative_to(data_dir).as_posix(),
                                   FileOutcome(duration=4.0, codecs="h264,aac"))

    recessed = await make_hearing(registry, 3, 4)
    lawyer = (await add_remote(registry, recessed)).participant
    for action in (HearingAction.OPEN, HearingAction.START, HearingAction.RECESS):
        await registry.transition(recessed.id, action, ACTOR)
    await record_file(recordings, recessed, lawyer.id, b"\x1aE\xdf\xa3" + os.urandom(6000))

    made = Court(registry, data_dir, key, tmp_path / "audit-checkpoints.jsonl", sealed,
                 recessed, lines[0].id)
    await made.checkpoint()
    return made


async def rechain(registry: Registry, seq: int, data: dict[str, Any]) -> None:
    """Rewrite event `seq`'s data and recompute its hash and every later one: the chain
    alone checks out again."""
    async with registry.db.write() as session:
        rows = (await session.scalars(
            select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq))).all()
        prev = rows[0].prev_hash
        for row in rows:
            if row.seq == seq:
                row.data = data
            row.prev_hash = prev
            row.hash = audit.event_hash(seq=row.seq, at=row.at, actor=row.actor,
                                        action=row.action, hearing_id=row.hearing_id,
                                        data=row.data, prev_hash=prev)
            prev = row.hash
        # Unique hashes: move them aside first, then write them in place.
        new = {row.seq: (row.prev_hash, row.hash) for row in rows}
        for row in rows:
            row.hash = f"x{row.seq:063d}"
        await session.flush()
        for row in rows:
            row.prev_hash, row.hash = new[row.seq]


async def test_an_untouched_record_verifies(court: Court) -> None:
    report = await court.verify()
    assert report.findings == [] and report.ok
    assert (report.anchored, report.checkpoints, report.seals) == (True, 1, 3)


def db_id(court: Court, value: uuid.UUID) -> str:
    """A UUID as the database stores it (SQLite: 32 hex digits)."""
    return value.hex if court.registry.db.dialect == "sqlite" else str(value)


def _file(court: Court, hearing: Hearing, glob: str) -> Path:
    [path] = list((court.data_dir).glob(glob.format(hearing=hearing.id)))
    return path


async def _edit_sealed_line(court: Court) -> None:
    await execute(court.registry, "UPDATE transcript_segments SET text = '被告人认罪' "
                  "WHERE id = :id", id=db_id(court, court.line_id))


async def _clear_sealed_at(court: Court) -> None:
    await execute(court.registry, "UPDATE hearings SET record_sealed_at = NULL")


async def _delete_tail(court: Court) -> None:
    await execute(court.registry, "DELETE FROM audit_events WHERE seq > "
                  "(SELECT MAX(seq) - 3 FROM audit_events)")


async def _rewrite_and_rechain(court: Court) -> None:
    events = await all_events(court.registry)
    target = next(e for e in events if e.action == "participant.added")
    await rechain(court.registry, target.seq, {**target.data, "name": "Someone Else"})


async def _forge_seal_after_checkpoint(court: Court) -> None:
    # Past the last checkpoint, only the seal's signature can tell.
    await court.registry.record(court.recessed.id, ACTOR, "hearing.noted", note="after")
    await court.checkpoint()
    await execute(court.registry, "UPDATE transcript_segments SET text = '被告人认罪' "
                  "WHERE id = :id", id=db_id(court, court.line_id))
    events = await all_events(court.registry)
    seal = next(e for e in reversed(events) if e.action == "transcript.sealed_by_judge")
    _, lines = await Transcripts(court.registry.db, court.registry.clock).of_hearing(
        court.sealed.id)
    forged = {**seal.data, "record_sha256": record_sha256(lines)}
    await execute(court.registry, "UPDATE hearings SET record_sha256 = :h WHERE id = :id",
                  h=forged["record_sha256"], id=db_id(court, court.sealed.id))
    # The attacker appends the forged seal as a new event, after the checkpoint.
    async with court.registry.db.write() as session:
        await audit.append(session, actor=seal.actor, action=seal.action,
                           at=court.registry.clock(), hearing_id=court.sealed.id, data=forged)


async def _alter_exhibit(court: Court) -> None:
    path = _file(court, court.sealed, "exhibits/{hearing}/*.png")
    path.write_bytes(path.read_bytes()[:-8] + b"tampered")


async def _alter_composite(court: Court) -> None:
    path = _file(court, court.sealed, "review/{hearing}.mp4")
    with path.open("r+b") as f:
        f.seek(100)
        f.write(b"tampered")


async def _truncate_unclosed_recording(court: Court) -> None:
    path = _file(court, court.recessed, "recordings/{hearing}/*.webm")
    path.write_bytes(path.read_bytes()[:1000])


async def _delete_recording_row(court: Court) -> None:
    await execute(court.registry, "DELETE FROM recordings WHERE kind = 'participant' AND "
                  "hearing_id = :id", id=db_id(court, court.recessed.id))


async def _close_without_seal(court: Court) -> None:
    await court.registry.transition(court.recessed.id, HearingAction.CLOSE, ACTOR)


async def _truncate_checkpoints(court: Court) -> None:
    court.checkpoints.write_text(court.checkpoints.read_text().replace('"seq":', '"seq":1'))


TAMPERING: dict[str, tuple[Callable[[Court], Awaitable[None]], str]] = {
    "edited sealed line": (_edit_sealed_line, "sealed by the judge in audit event"),
    "cleared record_sealed_at": (_clear_sealed_at, "no longer marked sealed"),
    "deleted tail events": (_delete_tail, "were deleted"),
    "rewritten and rechained": (_rewrite_and_rechain, "the chain was rewritten"),
    "forged seal after the checkpoint": (_forge_seal_after_checkpoint,
                                         "its signature does not match"),
    "exhibit bytes": (_alter_exhibit, "exhibit '借条'"),
    "composite bytes": (_alter_composite, ".mp4 was altered"),
    "truncated recording of an open hearing": (_truncate_unclosed_recording,
                                               ".webm was altered"),
    "deleted recording row": (_delete_recording_row, "was deleted from the database"),
    "closed, never sealed": (_close_without_seal, "were never sealed"),
    "forged checkpoint": (_truncate_checkpoints, "its signature does not match"),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
async def test_each_tampering_is_found(court: Court, tampering: str) -> None:
    tamper, expected = TAMPERING[tampering]
    await tamper(court)
    report = await court.verify()
    assert not report.ok
    messages = [f.message for f in report.findings]
    assert report.chain.ok, report.chain  # none of these breaks the chain's own links
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("tampering", list(TAMPERING))
async def test_verify_audit_cli_names_each_tampering(
    court: Court, database_url: str, tampering: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from web.cli import main

    for key in list(os.environ):
        if key.startswith("TINGSHEN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TINGSHEN_DATABASE_URL", database_url)
    monkeypatch.setenv("TINGSHEN_DATA_DIR", str(court.data_dir))
    monkeypatch.setenv("TINGSHEN_SIGNING_KEY_PATH", str(court.key))
    monkeypatch.setenv("TINGSHEN_CHECKPOINT_FILE", str(court.checkpoints))
    assert await asyncio.to_thread(main, ["verify-audit"]) == 0
    out, err = capsys.readouterr()
    assert "intact" in out and "1 checkpoints and 3 seals signed" in out and err == ""

    tamper, expected = TAMPERING[tampering]
    await tamper(court)
    assert await asyncio.to_thread(main, ["verify-audit"]) == 1
    out, err = capsys.readouterr()
    assert "intact" not in out
    [line] = [line for line in err.splitlines() if expected in line]
    # When what it names happened, in the court's time (the clock: 2026-11-23 01:00 UTC).
    assert line.endswith(" [2026-11-23 09:00 Beijing time]"), line
    assert err.splitlines()[-1].startswith("verification failed: ")


# -- anchors that cannot be read -------------------------------------------------------------


def _checkpoints_elsewhere(court: Court) -> str:
    court.checkpoints = court.checkpoints.with_name("wrong-path.jsonl")
    return f"3 seals are signed but the checkpoint file {court.checkpoints} is missing"


def _checkpoints_emptied(court: Court) -> str:
    court.checkpoints.write_text("")
    return f"3 seals are signed but the checkpoint file {court.checkpoints} holds no checkpoint"


def _checkpoints_a_directory(court: Court) -> str:
    court.checkpoints = court.data_dir
    return f"the checkpoint file {court.checkpoints} cannot be read"


def _key_elsewhere(court: Court) -> str:
    court.key = court.key.with_name("wrong-key.pem")
    return f"signatures cannot be checked: no signing key at {court.key}"


def _key_not_a_key(court: Court) -> str:
    court.key = court.key.with_name("not-a-key.pem")
    court.key.write_text("-----BEGIN NOTHING-----\n")
    return f"signatures cannot be checked: {court.key} is not a PEM key"


# Each misplaces an anchor (as a wrong setting would) and returns what must be said of it.
MISPLACED: dict[str, Callable[[Court], str]] = {
    "checkpoint file missing": _checkpoints_elsewhere,
    "checkpoint file empty": _checkpoints_emptied,
    "checkpoint file unreadable": _checkpoints_a_directory,
    "signing key missing": _key_elsewhere,
    "signing key unreadable": _key_not_a_key,
}


@pytest.mark.parametrize("misplaced", list(MISPLACED))
async def test_anchors_that_cannot_be_read_are_found(court: Court, misplaced: str) -> None:
    expected = MISPLACED[misplaced](court)
    report = await court.verify()
    assert not report.ok and report.chain.ok
    messages = [f.message for f in report.findings]
    assert [m for m in messages if expected in m], messages


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("misplaced", list(MISPLACED))
async def test_verify_audit_cli_names_anchors_it_cannot_read(
    court: Court, database_url: str, misplaced: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from web.cli import main

    for key in list(os.environ):
        if key.startswith("TINGSHEN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TINGSHEN_DATABASE_URL", database_url)
    monkeypatch.setenv("TINGSHEN_DATA_DIR", str(court.data_dir))
    # What a wrong setting would hide: an event rewritten and the chain recomputed.
    await _rewrite_and_rechain(court)
    expected = MISPLACED[misplaced](court)
    monkeypatch.setenv("TINGSHEN_SIGNING_KEY_PATH", str(court.key))
    monkeypatch.setenv("TINGSHEN_CHECKPOINT_FILE", str(court.checkpoints))
    assert await asyncio.to_thread(main, ["verify-audit"]) == 1
    out, err = capsys.readouterr()
    assert "intact" not in out
    assert [line for line in err.splitlines() if expected in line], err
    assert err.splitlines()[-1].startswith("verification failed: ")

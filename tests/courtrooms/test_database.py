"""Migrations and engine set-up against real SQLite and real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from courtrooms.database import Database, alembic_config, migrate
from courtrooms.errors import ScheduleConflict
from courtrooms.models import Base, Court, Location, Participant, Role
from courtrooms.registry import Registry
from courtrooms.schemas import CourtIn
from tests.courtrooms.builders import ACTOR, make_court, make_hearing, make_room


def _schema_diffs(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return compare_metadata(context, Base.metadata)


def _head(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def _current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    """Our `alembic check`: autogenerate finds nothing left to migrate."""
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            diffs = await conn.run_sync(_schema_diffs)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert diffs == []
        assert set(Base.metadata.tables) <= tables
        assert await _current_revision(db) == _head(database_url)
    finally:
        await db.aclose()


async def test_schema_check_sees_drift(database_url: str) -> None:
    """The check above is not vacuous: a schema that drifted from the models is reported."""
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP INDEX ix_hearings_state"))
            await conn.execute(text("ALTER TABLE courts ADD COLUMN extra INTEGER"))
        async with db.engine.connect() as conn:
            diffs = await conn.run_sync(_schema_diffs)
        assert sorted(d[0] for d in diffs) == ["add_index", "remove_column"]
    finally:
        await db.aclose()


async def test_foreign_keys_are_enforced(database_url: str) -> None:
    db = Database(database_url)
    try:
        with pytest.raises(IntegrityError):
            async with db.write() as session:
                session.add(
                    Participant(
                        hearing_id=uuid.uuid4(), name="Nobody", name_key="nobody",
                        role=Role.WITNESS, location=Location.REMOTE,
                        created_at=datetime.now(UTC),
                    )
                )
        async with db.read() as session:
            assert (await session.scalars(select(Participant))).all() == []
    finally:
        await db.aclose()


async def test_foreign_keys_are_enforced_on_every_sqlite_connection(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fk.db'}"
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    try:
        async with db.engine.connect() as first, db.engine.connect() as second:
            for conn in (first, second):
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await db.aclose()


async def test_migrate_is_idempotent_and_keeps_data(database_url: str, clock: Any) -> None:
    db = Database(database_url)
    try:
        registry = Registry(db, clock)
        court = await make_court(registry, "保留的法院")
        await asyncio.to_thread(migrate, database_url)
        await asyncio.to_thread(migrate, database_url)
        assert (await registry.get_court(court.id)).name == "保留的法院"
        assert await _current_revision(db) == _head(database_url)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_schema_diffs) == []
        # Writing still works after re-running the migration.
        await registry.create_court(CourtIn(name="另一个法院"), ACTOR)
    finally:
        await db.aclose()


async def test_migrate_creates_sqlite_file_and_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "data" / "tingshen.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(migrate, url)
    assert path.exists()
    db = Database(url)
    try:
        assert await _current_revision(db) == _head(url)
    finally:
        await db.aclose()


async def test_times_come_back_aware_in_utc(database_url: str) -> None:
    db = Database(database_url)
    beijing = timezone(timedelta(hours=8))
    when = datetime(2026, 11, 23, 9, 30, 0, 123456, tzinfo=beijing)
    try:
        async with db.write() as session:
            court = Court(name="Time zones", created_at=when)
            session.add(court)
        async with db.read() as session:
            stored = await session.get(Court, court.id)
        assert stored is not None
        assert stored.created_at == when
        assert stored.created_at.utcoffset() == timedelta(0)
        assert stored.created_at.hour == 1
    finally:
        await db.aclose()


async def test_naive_times_are_refused(database_url: str) -> None:
    db = Database(database_url)
    try:
        with pytest.raises(Exception, match="naive datetime"):
            async with db.write() as session:
                session.add(Court(name="Naive", created_at=datetime(2026, 11, 23, 9, 30)))
        async with db.read() as session:
            assert (await session.scalars(select(Court))).all() == []
    finally:
        await db.aclose()


async def test_writes_are_serialized_across_processes(database_url: str, clock: Any) -> None:
    """Two processes (two engines, two in-process locks) still cannot double-book a room."""
    dbs = [Database(database_url), Database(database_url)]
    try:
        first, second = (Registry(db, clock) for db in dbs)
        room = await make_room(first)
        for day in range(5):
            results = await asyncio.gather(
                make_hearing(first, 24 * day + 1, 24 * day + 2, room),
                make_hearing(second, 24 * day + 1, 24 * day + 2, room),
                return_exceptions=True,
            )
            refused = [r for r in results if isinstance(r, BaseException)]
            assert len(refused) == 1, results
            assert isinstance(refused[0], ScheduleConflict), refused
        await asyncio.gather(
            *(make_court(first if i % 2 else second, f"Court {i}") for i in range(10))
        )
        report = await first.verify_audit()
        assert (report.ok, report.events) == (True, 2 + 5 + 10)
    finally:
        for db in dbs:
            await db.aclose()


async def test_sqlite_commits_are_synced_to_the_disk(tmp_path: Path) -> None:
    """A commit (an audit event, a line of the record) survives a power cut: SQLite's WAL is
    synced at every commit (synchronous=FULL, 2), not only at checkpoints (NORMAL, 1)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}"
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    try:
        async with db.engine.connect() as first, db.engine.connect() as second:
            for conn in (first, second):
                assert (await conn.execute(text("PRAGMA synchronous"))).scalar_one() == 2
                assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await db.aclose()

"""Engine, sessions and migrations for the registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Key of the PostgreSQL advisory lock that serializes registry writes across processes, so that
# conflict checks and the audit chain see every earlier write. Any constant unique to Tingshen.
WRITE_LOCK_KEY = 0x7469_6E67_7368_656E & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`. Blocking: call it off the event loop."""
    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, sqlite_synchronous: str = "FULL") -> AsyncEngine:
    """The engine for `url`. On SQLite, every commit is synced to the disk before it returns
    (`synchronous=FULL`): audit events and trial record lines survive a power cut, as they
    do on PostgreSQL (`synchronous_commit=on`). NORMAL is for the benchmark's comparison."""
    if sqlite_synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"sqlite_synchronous must be FULL or NORMAL: {sqlite_synchronous}")
    _ensure_sqlite_dir(url)
    kwargs: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.close()

    return engine


class Database:
    """One engine and session factory per process; `write()` serializes registry writes."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.engine = create_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success; only one runs at a time across processes."""
        async with self._write_lock, self.sessions() as session, session.begin():
            if self.dialect == "postgresql":
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY}
                )
            else:
                # The driver would begin only at the first INSERT, after the conflict checks
                # have read; take SQLite's write lock before any read instead.
                await session.execute(text("BEGIN IMMEDIATE"))
            yield session

    async def aclose(self) -> None:
        await self.engine.dispose()

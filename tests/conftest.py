"""Fixtures with real parts: a real PostgreSQL and real SQLite, the real app on a real port."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config import Settings, load_settings
from courtrooms.database import Database, migrate
from courtrooms.registry import Registry
from tests.clients import HearingClient
from tests.servers import PostgresServer, RedisServer
from tests.web.support import DatabaseState
from web.app import create_app

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
TEMPLATE_DB = "tingshen_template"


@dataclass
class FakeClock:
    """The registry's clock, moved by tests to check time windows."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="tingshen-pg-"))
    server = PostgresServer.start(root)
    try:
        server.psql(f"CREATE DATABASE {TEMPLATE_DB}")
        migrate(f"{server.url}/{TEMPLATE_DB}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "tingshen.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "tingshen.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:16]}"
    server.psql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    return f"{server.url}/{name}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own, empty."""
    server = RedisServer.start(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        environ={},
        data_dir=tmp_path / "var",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        # The tests call as the bootstrap administrator throughout, accounts or not (by
        # default the admin token is off once an administrator account exists).
        keep_admin_token=True,
        public_url="http://court.example",
        # This machine may have no interface but loopback; peers meet on 127.0.0.1.
        ice_host_addresses=["127.0.0.1"],
        heartbeat_seconds=1.0,
        whisper_model="tiny.en",  # small and fast; the multilingual base is benchmarked
    )


@pytest.fixture
async def registry(database_url: str, clock: FakeClock) -> AsyncIterator[Registry]:
    db = Database(database_url)
    try:
        yield Registry(db, clock)
    finally:
        await db.aclose()


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, clock: FakeClock) -> TestClient:
    """The real application on a real loopback port, migrated at start-up like production."""
    return await aiohttp_client(create_app(settings, clock=clock))


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def db_state(client: TestClient, settings: Settings) -> AsyncIterator[DatabaseState]:
    """Every table of the app's database, read through a connection of its own."""
    # Depends on `client` so that the app has migrated the database before the first snapshot.
    state = DatabaseState(settings.database)
    try:
        yield state
    finally:
        await state.aclose()


@pytest.fixture
async def participants() -> AsyncIterator[list[HearingClient]]:
    """Clients a test creates; all closed at the end."""
    made: list[HearingClient] = []
    yield made
    for c in made:
        await c.close()


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Mount a small tmpfs (a disk that fills up) at a path; unmounted after the test."""
    mounted: list[Path] = []

    def mount(where: Path, size: str) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       check=True)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
async def full_default_executor() -> AsyncIterator[None]:
    """The loop's default executor (what the rest of the server shares) with its one thread
    taken for the test: work that must not wait on it is seen to get done regardless."""
    loop = asyncio.get_running_loop()
    busy = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(busy)
    release = threading.Event()
    blocked = loop.run_in_executor(None, release.wait)
    try:
        yield
    finally:
        release.set()
        await blocked
        busy.shutdown(wait=False)

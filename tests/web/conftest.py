"""Fixtures of the web tests: a world of entities made through the API, the database's state."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from tests.web.support import DatabaseState, World, make_world


@pytest.fixture
async def world(client: TestClient, admin: dict[str, str]) -> World:
    return await make_world(client, admin)


@pytest.fixture
async def db_state(client: TestClient, settings: Settings) -> AsyncIterator[DatabaseState]:
    # Depends on `client` so that the app has migrated the database before the first snapshot.
    state = DatabaseState(settings.database)
    try:
        yield state
    finally:
        await state.aclose()

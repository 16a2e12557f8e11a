"""Fixtures of the web tests: a world of entities made through the API."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.web.support import World, make_world


@pytest.fixture
async def world(client: TestClient, admin: dict[str, str]) -> World:
    return await make_world(client, admin)

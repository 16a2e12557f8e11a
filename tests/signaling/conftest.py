"""A scheduled hearing with a judge, a defendant at a prison terminal and a lawyer at home."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import FakeClock


@dataclass
class LiveHearing:
    id: str
    tokens: dict[str, str]
    ids: dict[str, str]
    device_key: str
    base_url: str


async def schedule(client: TestClient, admin: dict[str, str], clock: FakeClock,
                   auto_admit: bool = False, id_digits: dict[str, str] | None = None
                   ) -> LiveHearing:
    """`id_digits`: the last digits of the ID number on file, by role."""
    start = clock.now.isoformat()
    end = clock.now.replace(hour=clock.now.hour + 2).isoformat()
    r = await client.post("/api/v1/courts", json={"name": "Test Court"}, headers=admin)
    court = await r.json()
    r = await client.post("/api/v1/courtrooms", json={"court_id": court["id"], "name": "Room 1"},
                          headers=admin)
    room = await r.json()
    r = await client.post("/api/v1/prison-terminals", json={"name": "T1", "prison": "P1"},
                          headers=admin)
    terminal = await r.json()
    r = await client.post("/api/v1/hearings", headers=admin, json={
        "case_number": "(2026)测01刑初1号", "title": "Test trial", "kind": "trial",
        "courtroom_id": room["id"], "scheduled_start": start, "scheduled_end": end,
        "auto_admit": auto_admit,
    })
    hearing = await r.json()
    tokens, ids = {}, {}
    people: list[dict[str, Any]] = [
        {"name": "Judge Wang", "role": "judge", "location": "courtroom"},
        {"name": "Zhang San", "role": "defendant", "location": "prison",
         "terminal_id": terminal["id"]},
        {"name": "Lawyer Li", "role": "lawyer", "location": "remote"},
    ]
    for person in people:
        if id_digits and person["role"] in id_digits:
            person["id_number_last4"] = id_digits[person["role"]]
        r = await client.post(f"/api/v1/hearings/{hearing['id']}/participants", json=person,
                              headers=admin)
        assert r.status == 201, await r.text()
        body = await r.json()
        tokens[person["role"]] = body["token"]
        ids[person["role"]] = body["id"]
    base = str(client.make_url("")).rstrip("/")
    return LiveHearing(hearing["id"], tokens, ids, terminal["device_key"], base)


@pytest.fixture
async def hearing(client: TestClient, admin: dict[str, str], clock: FakeClock) -> LiveHearing:
    return await schedule(client, admin, clock)

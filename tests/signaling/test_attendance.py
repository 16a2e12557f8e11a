"""Attendance through the real server: every join and departure audited with its cause, the
court's warnings, and the report that tells a walk-out from a network failure."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from tests.clients import HearingClient
from tests.conftest import FakeClock
from tests.signaling.test_recording import command
from web.app import create_app

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, clock: FakeClock) -> TestClient:
    """The real application with a 1 s WebSocket heartbeat: a dead link is found at once."""
    quick = settings.model_copy(update={"heartbeat_seconds": 1.0})
    return await aiohttp_client(create_app(quick, clock=clock))


def present(judge: HearingClient, participant_id: str) -> bool | None:
    seat = judge.seat(participant_id)
    return None if seat is None else bool(seat["present"])


async def attendance_of(client: Any, hearing: Any, admin: dict[str, str]
                        ) -> dict[str, dict[str, Any]]:
    r = await client.get(f"/api/v1/hearings/{hearing.id}/attendance", headers=admin)
    assert r.status == 200, await r.text()
    return {a["name"]: a for a in (await r.json())["items"]}


async def test_joins_and_departures_are_logged_with_their_cause_and_warnings_reach_the_party(
    hearing, participants, client, admin
):
    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    await judge.next_message("welcome")
    lawyer_id = hearing.ids["lawyer"]

    async def lawyer_joins(name: str) -> HearingClient:
        c = HearingClient(hearing.base_url, name)
        c.publish = False
        participants.append(c)
        await c.join(hearing.tokens["lawyer"])
        await c.next_message("welcome")
        await judge.wait_for(lambda: present(judge, lawyer_id) is True)
        return c

    lawyer = await lawyer_joins("lawyer")
    await judge.send({"type": "command", "action": "admit", "participant_id": lawyer_id})
    await lawyer.next_message("admitted")
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")

    # The court warns: the lawyer is told, the court too.
    await judge.send({"type": "command", "action": "warn", "participant_id": lawyer_id,
                      "reason": "请勿打断法庭"})
    warning = await lawyer.next_message("alert")
    assert warning == {"type": "alert", "code": "warning", "message": "请勿打断法庭"}
    assert (await judge.next_message("warned"))["participant_id"] == lawyer_id
    # The court does not warn itself; a warning's words are bounded.
    mark = len(judge.messages)
    await judge.send({"type": "command", "action": "warn",
                      "participant_id": hearing.ids["judge"]})
    assert (await judge.next_message("error", after=mark))["code"] == "invalid"
    mark = len(judge.messages)
    await judge.send({"type": "command", "action": "warn", "participant_id": lawyer_id,
                      "reason": "x" * 201})
    refused = await judge.next_message("error", after=mark)
    assert refused["code"] == "invalid" and refused["field"] == "reason"
    mark = len(judge.messages)
    await judge.send({"type": "command", "action": "mute", "participant_id": lawyer_id,
                      "reason": "不该有理由"})
    refused = await judge.next_message("error", after=mark)
    assert refused["field"] == "reason" and "only warn" in refused["message"]
    assert not (judge.seat(lawyer_id) or {}).get("muted_by_court")

    # Walks out while the court sits (says leave).
    await lawyer.send({"type": "leave"})
    await judge.wait_for(lambda: present(judge, lawyer_id) is False)
    # Back, then joins again from another tab: the first connection is replaced, no absence.
    lawyer = await lawyer_joins("lawyer-2")
    await lawyer_joins("lawyer-3")
    await lawyer.wait_for(lambda: lawyer.closed_code == 4002)
    # The network drops (no closing handshake at all).
    newest = participants[-1]
    assert newest._ws is not None and newest._ws._conn is not None
    # The link goes dead: nothing more is read, no ping answered (the server's heartbeat,
    # 1 s here, finds out).
    newest._ws._conn.transport.pause_reading()  # type: ignore[union-attr]
    await judge.wait_for(lambda: present(judge, lawyer_id) is False, within=30)
    last = await lawyer_joins("lawyer-4")
    # And walks out for good while the court sits.
    await last.send({"type": "leave"})
    await judge.wait_for(lambda: present(judge, lawyer_id) is False)

    async def logged() -> dict[str, Any]:
        return (await attendance_of(client, hearing, admin))["Lawyer Li"]

    deadline = asyncio.get_running_loop().time() + 10  # the audit is written behind them
    while len((a := await logged())["absences"]) < 3:
        assert asyncio.get_running_loop().time() < deadline, a
        await asyncio.sleep(0.1)
    assert [x["cause"] for x in a["absences"]] == ["left", "network_lost", "left"], a
    # Back within the minute (a page reloaded) is no walk-out; the network never is.
    assert [x["walk_out"] for x in a["absences"]] == [False, False, True]
    assert [x["returned_at"] is not None for x in a["absences"]] == [True, True, False]
    assert a["walk_outs"] == 1 and a["network_failures"] == 1 and a["joins"] == 4
    assert not a["present"] and [w["reason"] for w in a["warnings"]] == ["请勿打断法庭"]
    report = await attendance_of(client, hearing, admin)
    assert report["Zhang San"]["joined_first"] is None  # never came
    assert report["Judge Wang"]["absences"] == []

    # Only the court reads it: a party's own link is refused.
    r = await client.get(f"/api/v1/hearings/{hearing.id}/attendance",
                         headers={"Authorization": f"Bearer {hearing.tokens['lawyer']}"})
    assert r.status in (401, 403), await r.text()

    # The court's document notes the same, in Beijing time, each cause in the court's words.
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript/export/txt", headers=admin)
    text = await r.text()
    section = text[text.index("到庭及中断情况"):].splitlines()[1:]
    beijing = ZoneInfo("Asia/Shanghai")
    left = [datetime.fromisoformat(x["left_at"]).astimezone(beijing) for x in a["absences"]]
    warned = datetime.fromisoformat(a["warnings"][0]["at"]).astimezone(beijing)
    assert f"{warned:%H:%M} 法庭警告律师Lawyer Li：请勿打断法庭" in section, section
    for at, cause in zip(left, ("主动离开", "网络中断", "主动离开"), strict=True):
        assert f"{at:%H:%M} 律师Lawyer Li离开庭审（{cause}）" in section, section
    assert sum("律师Lawyer Li重新加入" in line for line in section) == 2, section

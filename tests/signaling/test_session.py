"""Real aiortc participants through the real server."""

from __future__ import annotations

import pytest

from tests.clients import HearingClient

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_media_flows_both_ways_after_admission(hearing, participants):
    judge = HearingClient(hearing.base_url, "judge")
    defendant = HearingClient(hearing.base_url, "defendant")
    participants += [judge, defendant]
    await judge.join(hearing.tokens["judge"])
    await defendant.join(device_key=hearing.device_key)
    await defendant.next_message("welcome")
    welcome = await judge.next_message("welcome")
    assert welcome["participant"]["admitted"] is True
    d_id = hearing.ids["defendant"]
    await judge.wait_for(lambda: (judge.seat(d_id) or {}).get("present") is True)
    assert judge.seat(d_id)["admitted"] is False
    await judge.send({"type": "command", "action": "admit", "participant_id": d_id})
    await defendant.next_message("admitted")
    j_id = hearing.ids["judge"]
    await judge.wait_for(lambda: judge.frames_from(d_id, "video") > 10, 30)
    await defendant.wait_for(lambda: defendant.frames_from(j_id, "video") > 10, 30)
    await judge.wait_for(lambda: judge.frames_from(d_id, "audio") > 10, 30)
    await defendant.wait_for(lambda: defendant.frames_from(j_id, "audio") > 10, 30)

"""The court's commands (signaling/court.py) through the real server: signing of the record so
far opened at a recess the judge chooses, and an interpreter's party on their seat."""

from __future__ import annotations

import uuid

import pytest

from tests.clients import HearingClient
from tests.signaling.test_recording import (  # noqa: F401
    audit_actions,
    auto_hearing,
    command,
    join_all,
)
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def refused(client: HearingClient, message: dict[str, object]) -> dict[str, object]:
    mark = len(client.messages)
    await client.send(message)
    return await client.next_message("error", after=mark)


async def test_the_judge_opens_signing_at_a_recess_and_everyone_is_told(
    auto_hearing, participants, client, admin  # noqa: F811
):
    hearing = auto_hearing
    reply = await client.post(f"/api/v1/hearings/{hearing.id}/participants", headers=admin,
                              json={"name": "Chen Yi", "role": "interpreter",
                                    "location": "remote",
                                    "interprets_for_id": hearing.ids["defendant"]})
    assert reply.status == 201, await reply.text()
    interpreter_id = (await reply.json())["id"]
    judge, lawyer = HearingClient(hearing.base_url, "judge"), HearingClient(hearing.base_url,
                                                                             "lawyer")
    participants += [judge, lawyer]
    for c in (judge, lawyer):
        c.publish = False
        await c.join(hearing.tokens[c.name])
        await c.next_message("welcome")
    welcome = next(m for m in judge.messages if m["type"] == "welcome")
    assert welcome["hearing"]["signing_open"] is False
    listed = {p["participant_id"]: p for p in welcome["expected"]}
    assert listed[interpreter_id]["interprets_for_id"] == hearing.ids["defendant"]
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    open_signing = {"type": "command", "action": "open_signing"}
    assert (await refused(judge, open_signing))["code"] == "not_editable"  # not at a recess
    await command(judge, "recess", "recess")
    assert (await refused(lawyer, open_signing))["code"] == "forbidden"
    assert (await refused(judge, {**open_signing, "participant_id": hearing.ids["lawyer"]})
            )["field"] == "participant_id"

    await judge.send(open_signing)
    for c in (judge, lawyer):
        told = await c.next_message("signing")
        assert told["open"] is True and len(told["record_sha256"]) == 64
    actions = [e["action"] for e in await audit_actions(client, hearing, admin)]
    assert actions.count("record.signing_opened") == 1
    # One who joins during the recess learns it from the welcome; the resume ends it.
    late = HearingClient(hearing.base_url, "interpreter")
    late.publish = False
    participants.append(late)
    await late.join((await (await client.post(
        f"/api/v1/hearings/{hearing.id}/participants/{interpreter_id}/token",
        headers=admin)).json())["token"])
    welcome = await late.next_message("welcome")
    assert welcome["hearing"]["signing_open"] is True
    assert welcome["participant"]["interprets_for_id"] == hearing.ids["defendant"]
    await command(judge, "resume", "in_session")
    signing = await client.get(f"/api/v1/hearings/{hearing.id}/signing", headers=admin)
    assert signing.status == 409


async def test_the_recording_so_far_is_composited_when_signing_opens_at_a_recess(
    auto_hearing, participants, client, admin  # noqa: F811
):
    """Issue 18: at a recess's signing a party replays a line from the recording so far."""
    hearing = auto_hearing
    judge, lawyer = await join_all(hearing, participants, "judge", "lawyer")
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    await judge.wait_for(lambda: judge.frames.get("video", 0) > 60, 30)
    await command(judge, "recess", "recess")
    signing = f"/api/v1/hearings/{hearing.id}/signing"
    party = {"Authorization": f"Bearer {hearing.tokens['lawyer']}"}
    await judge.send({"type": "command", "action": "open_signing"})
    await lawyer.next_message("signing")
    composites = client.server.app[HUB].composites
    await judge.wait_for(lambda: composites.status(uuid.UUID(hearing.id)).state != "idle", 30)
    await composites.settled()
    state = await (await client.get(signing, headers=party)).json()
    assert state["stage"] == "recess" and state["recording"] is True, (
        composites.status(uuid.UUID(hearing.id)))
    r = await client.get(f"{signing}/recording", headers=party)
    assert r.status == 200 and r.headers["Content-Type"] == "video/mp4", await r.text()
    assert len(await r.read()) > 10_000

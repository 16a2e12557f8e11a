"""Witnesses kept apart (《人民法院在线诉讼规则》 art. 26): a witness waits outside even in a
hearing that admits everyone, sees none of the earlier testimony when called in, and can be
sent out again or released; each step is in the audit."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from courtrooms.transcripts import SpokenLine
from tests.clients import HearingClient
from tests.signaling.test_recording import audit_actions, auto_hearing, command  # noqa: F401
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_a_witness_waits_outside_testifies_without_the_earlier_record_and_is_released(
    auto_hearing, participants, client, admin  # noqa: F811
):
    hearing = auto_hearing
    r = await client.post(f"/api/v1/hearings/{hearing.id}/participants", headers=admin,
                          json={"name": "Witness Chen", "role": "witness",
                                "location": "remote"})
    assert r.status == 201, await r.text()
    body = await r.json()
    witness_id, witness_token = body["id"], body["token"]
    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    await judge.next_message("welcome")
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    # Earlier testimony the witness must not learn.
    await client.app[HUB].transcripts.add(uuid.UUID(hearing.id), SpokenLine(
        participant_id=uuid.UUID(hearing.ids["judge"]), start=1.0, end=2.0,
        text="The defendant says he was at home.", language="en", words=[]))

    witness = HearingClient(hearing.base_url, "witness")
    participants.append(witness)
    await witness.join(witness_token)
    welcome = await witness.next_message("welcome")
    # Outside, though the hearing admits everyone else at once: no record, no media.
    assert welcome["participant"]["admitted"] is False
    assert not any(m.get("type") in ("record", "offer", "caption") for m in witness.messages)
    await judge.wait_for(lambda: (judge.seat(witness_id) or {}).get("present") is True)

    # Called in: in the hearing, with media, and none of the record so far.
    await judge.send({"type": "command", "action": "admit", "participant_id": witness_id})
    await witness.next_message("admitted")
    record = await witness.next_message("record")
    assert record["lines"] == []
    await witness.next_message("offer")
    await judge.wait_for(lambda: judge.frames_from(witness_id, "video") > 5)

    # Sent out again: back outside, media gone; rejoining keeps them outside.
    mark = len(witness.messages)
    await judge.send({"type": "command", "action": "send_out", "participant_id": witness_id})
    await witness.next_message("sent_out", after=mark)
    await judge.wait_for(lambda: (judge.seat(witness_id) or {}).get("admitted") is False)
    await witness.close()
    again = HearingClient(hearing.base_url, "witness-again")
    participants.append(again)
    await again.join(witness_token)
    assert (await again.next_message("welcome"))["participant"]["admitted"] is False
    # Exhibits and other participant-only doors stay shut while outside.
    r = await client.post(f"/api/v1/hearings/{hearing.id}/exhibits?title=x", data=b"%PDF-1.4",
                          headers={"Authorization": f"Bearer {witness_token}",
                                   "Content-Type": "application/pdf"})
    assert r.status in (403, 401), await r.text()

    # Only witnesses are sent out or released.
    mark = len(judge.messages)
    await judge.send({"type": "command", "action": "send_out",
                      "participant_id": hearing.ids["lawyer"]})
    err = await judge.next_message("error", after=mark)
    assert err["code"] in ("invalid", "unknown_participant")

    # Released: out for good.
    await judge.send({"type": "command", "action": "release", "participant_id": witness_id})
    removed = await again.next_message("removed")
    assert removed["released"] is True
    await again.wait_for(lambda: again.closed_code == 4003)
    actions = [e["action"] for e in await audit_actions(client, hearing, admin)]
    for action in ("participant.admitted", "witness.sent_out", "witness.released"):
        assert action in actions, actions
    # The departure is logged on its own time (after the socket closed): wait for it.
    deadline = time.monotonic() + 20
    while True:
        r = await client.get(f"/api/v1/hearings/{hearing.id}/attendance", headers=admin)
        [chen] = [a for a in (await r.json())["items"] if a["name"] == "Witness Chen"]
        if chen["absences"][-1]["cause"] == "released" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert chen["absences"][-1]["cause"] == "released" and not chen["absences"][-1]["walk_out"]

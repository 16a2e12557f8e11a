"""The last digits of a party's ID number at the join, through the real server with real
clients: asked for, refused when wrong, a lockout after a few tries, and not asked of a
prison terminal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from courtrooms.id_digits import FAILED, LOCKOUT, TRIES
from tests.clients import HearingClient
from tests.conftest import FakeClock
from tests.signaling.conftest import LiveHearing, schedule

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

LAWYER, DEFENDANT = "0427", "318X"


@pytest.fixture
async def hearing(client: TestClient, admin: dict[str, str], clock: FakeClock) -> LiveHearing:
    return await schedule(client, admin, clock, auto_admit=True,
                          id_digits={"lawyer": LAWYER, "defendant": DEFENDANT})


async def refusal(c: HearingClient, message: dict[str, Any]) -> dict[str, Any]:
    """Send a join and return the error it got (and no welcome)."""
    mark = len(c.messages)
    await c.send(message)
    error = await c.next_message("error", after=mark)
    assert not any(m.get("type") == "welcome" for m in c.messages[mark:])
    return error


async def failures(client: TestClient, admin: dict[str, str], hearing_id: str
                   ) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/audit?hearing_id={hearing_id}&limit=200", headers=admin)
    return [e for e in (await r.json())["items"] if e["action"] == FAILED]


async def test_a_party_joins_only_with_the_right_digits(hearing, participants, client, admin):
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    participants += [judge, lawyer]
    await judge.join(hearing.tokens["judge"])  # the court is never asked
    await judge.next_message("welcome")
    await lawyer.connect()
    join = {"type": "join", "token": hearing.tokens["lawyer"], "ref": "j1"}
    required = await refusal(lawyer, join)
    assert required["code"] == "id_digits_required"
    assert required["field"] == "id_digits" and required["ref"] == "j1"
    wrong = await refusal(lawyer, {**join, "id_digits": "0428"})
    assert wrong["code"] == "id_digits_wrong" and wrong["tries_left"] == TRIES - 1
    assert LAWYER not in wrong["message"]
    malformed = await refusal(lawyer, {**join, "id_digits": "04a7"})
    assert malformed["code"] == "invalid" and malformed["field"] == "id_digits"
    # Nobody saw the lawyer arrive while refused.
    l_id = hearing.ids["lawyer"]
    assert not (judge.seat(l_id) or {}).get("present")
    mark = len(lawyer.messages)
    await lawyer.send({**join, "id_digits": LAWYER})
    welcome = await lawyer.next_message("welcome", after=mark)
    assert welcome["participant"]["participant_id"] == l_id
    await judge.wait_for(lambda: (judge.seat(l_id) or {}).get("present") is True)
    # One wrong try audited, without the digits; the malformed one never reached the registry.
    [event] = await failures(client, admin, hearing.id)
    assert event["data"]["failures"] == 1 and event["actor"] == f"participant:{l_id}"
    assert "0428" not in str(event) and LAWYER not in str(event)
    # A reconnect joins with them again (the page keeps them) and takes the same seat.
    again = HearingClient(hearing.base_url, "lawyer again")
    participants.append(again)
    await again.join(hearing.tokens["lawyer"], id_digits=LAWYER)
    await again.next_message("welcome")


async def test_a_few_wrong_tries_lock_the_participant_out(
    hearing, participants, client, admin, clock
):
    lawyer = HearingClient(hearing.base_url, "lawyer")
    participants.append(lawyer)
    await lawyer.connect()
    join = {"type": "join", "token": hearing.tokens["lawyer"]}
    for n in range(1, TRIES):
        wrong = await refusal(lawyer, {**join, "id_digits": f"{n:04d}"})
        assert wrong["code"] == "id_digits_wrong" and wrong["tries_left"] == TRIES - n
    locked = await refusal(lawyer, {**join, "id_digits": "9999"})
    assert locked["code"] == "id_digits_locked"
    until = (clock.now + LOCKOUT).isoformat()
    assert locked["locked_until"] == until
    # Locked: the right digits do not get in, on this socket or a new one.
    assert (await refusal(lawyer, {**join, "id_digits": LAWYER}))["code"] == "id_digits_locked"
    other = HearingClient(hearing.base_url, "another tab")
    participants.append(other)
    await other.connect()
    assert (await refusal(other, {**join, "id_digits": LAWYER}))["code"] == "id_digits_locked"
    events = await failures(client, admin, hearing.id)
    assert [e["data"]["failures"] for e in events] == list(range(1, TRIES + 1))
    assert events[-1]["data"]["locked_until"] == until
    # Minutes later, the right digits get in.
    clock.advance(LOCKOUT)
    mark = len(other.messages)
    await other.send({**join, "id_digits": LAWYER.lower()})
    await other.next_message("welcome", after=mark)


async def test_many_sockets_at_once_get_no_more_tries(hearing, participants, client, admin):
    clients = [HearingClient(hearing.base_url, f"guesser {n}") for n in range(3 * TRIES)]
    participants += clients
    await asyncio.gather(*(c.connect() for c in clients))
    replies = await asyncio.gather(*(
        refusal(c, {"type": "join", "token": hearing.tokens["lawyer"], "id_digits": f"{n:04d}"})
        for n, c in enumerate(clients)))
    assert {r["code"] for r in replies} <= {"id_digits_wrong", "id_digits_locked"}
    assert len(await failures(client, admin, hearing.id)) == TRIES


async def test_a_prison_terminal_is_not_asked_but_the_invitation_link_is(
    hearing, participants, client, admin
):
    kiosk = HearingClient(hearing.base_url, "kiosk")
    participants.append(kiosk)
    await kiosk.join(device_key=hearing.device_key)
    welcome = await kiosk.next_message("welcome")
    assert welcome["participant"]["participant_id"] == hearing.ids["defendant"]
    # The kiosk's own token, derived from its key, is not asked either.
    r = await client.get("/api/v1/terminal/assignment",
                         headers={"Authorization": f"Device {hearing.device_key}"})
    assignment = await r.json()
    assert r.status == 200 and assignment["token"], assignment
    by_token = HearingClient(hearing.base_url, "kiosk by token")
    participants.append(by_token)
    await by_token.join(assignment["token"])
    await by_token.next_message("welcome")
    # The defendant's invitation link (any browser) is.
    browser = HearingClient(hearing.base_url, "defendant at home")
    participants.append(browser)
    await browser.connect()
    join = {"type": "join", "token": hearing.tokens["defendant"]}
    assert (await refusal(browser, join))["code"] == "id_digits_required"
    mark = len(browser.messages)
    await browser.send({**join, "id_digits": DEFENDANT})
    await browser.next_message("welcome", after=mark)
    assert await failures(client, admin, hearing.id) == []

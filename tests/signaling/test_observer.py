"""An observer (supervision) trying everything the judge and the clerk may do, and failing.

Over the WebSocket every command on every kind of target, and every participant action; over
REST every state change and court route with the observer's own token. Each is `forbidden`
(or 401/403 JSON); the seats, the hearing's state and the database are as before.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from signaling.messages import Command
from tests.clients import HearingClient
from tests.signaling.conftest import LiveHearing
from tests.web.support import API, DatabaseState, assert_error, call
from web.api import api
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SEND_INTERVAL_S = 1 / 15
COMMANDS: tuple[str, ...] = Command.model_fields["action"].annotation.__args__  # type: ignore[union-attr]


async def paced(c: HearingClient, message: dict[str, Any]) -> None:
    """Send under the server's 20 messages a second: each refusal is about the message."""
    await asyncio.sleep(SEND_INTERVAL_S)
    await c.send(message)


async def seated(base_url: str, token: str, name: str, participants: list[HearingClient]
                 ) -> HearingClient:
    c = HearingClient(base_url, name)
    c.publish = False  # supervision is about what the observer may do, not the media
    participants.append(c)
    await c.join(token)
    await c.next_message("welcome")
    return c


async def test_an_observer_sends_every_command_and_changes_nothing(
    client: TestClient, admin: dict[str, str], hearing: LiveHearing,
    participants: list[HearingClient], db_state: DatabaseState,
) -> None:
    r = await call(client, "POST", f"{API}/hearings/{hearing.id}/participants", headers=admin,
                   json={"name": "Senior Judge Zhou", "role": "observer", "location": "remote"})
    observer_seat: dict[str, Any] = r.json
    judge = await seated(hearing.base_url, hearing.tokens["judge"], "judge", participants)
    defendant = await seated(hearing.base_url, hearing.tokens["defendant"], "defendant",
                             participants)
    lawyer = await seated(hearing.base_url, hearing.tokens["lawyer"], "lawyer", participants)
    ids = hearing.ids
    # The defendant is admitted and the lawyer waits in the lobby: admitting, removing and
    # muting would each change a seat.
    await judge.wait_for(lambda: (judge.seat(ids["lawyer"]) or {}).get("present") is True)
    await judge.send({"type": "command", "action": "admit", "participant_id": ids["defendant"]})
    await defendant.next_message("admitted")
    observer = await seated(hearing.base_url, observer_seat["token"], "observer", participants)
    o_id = observer_seat["id"]
    hub = client.server.app[HUB]
    admitted = {ids["judge"], ids["defendant"], o_id}
    for _ in range(300):  # until the peers of those admitted have connected
        seats = await hub.seats(uuid.UUID(hearing.id))
        if {s.participant_id for s in seats if s.connection == "connected"} == admitted:
            break
        await asyncio.sleep(0.1)
    seats_before = [s.public() for s in seats]
    assert {s["participant_id"] for s in seats_before if s["connection"] == "connected"} == admitted
    # The roster follows the seats (at most every 0.1 s): it reaches the court before the
    # observer starts, so that anything arriving afterwards is the observer's doing.
    await judge.wait_for(lambda: all(
        (judge.seat(p) or {}).get("connection") == "connected" for p in admitted), 30)
    for c in (judge, defendant):
        # Each roster is a participants message and its consultations message.
        await c.wait_for(lambda c=c: sum(m.get("type") == "participants" for m in c.messages)
                         == sum(m.get("type") == "consultations" for m in c.messages), 30)
    before = await db_state.snapshot()
    marks = {id(c): len(c.messages) for c in (judge, defendant, lawyer)}

    targets = [ids["judge"], ids["defendant"], ids["lawyer"], o_id, str(uuid.uuid4()), None]
    refused = 0
    for action in COMMANDS:
        for target in targets:
            message: dict[str, Any] = {"type": "command", "action": action, "ref": action}
            if target is not None:
                message["participant_id"] = target
            mark = len(observer.messages)
            await paced(observer, message)
            error = await observer.next_message("error", after=mark)
            assert (error["code"], error.get("ref")) == ("forbidden", action), (message, error)
            assert "observer" in error["message"]
            refused += 1
    for message in ({"type": "consult", "action": "request", "with": ids["lawyer"]},
                    {"type": "consult", "action": "end"},
                    {"type": "mute", "muted": True}, {"type": "hand", "raised": True},
                    {"type": "camera", "off": True}, {"type": "screen", "sharing": True},
                    {"type": "present", "exhibit_id": None},
                    {"type": "present", "exhibit_id": str(uuid.uuid4()), "page": 2}):
        mark = len(observer.messages)
        await paced(observer, message)
        error = await observer.next_message("error", after=mark)
        assert error["code"] == "forbidden", (message, error)
        refused += 1
    assert refused == len(COMMANDS) * len(targets) + 8

    # Still connected, still watching; nobody saw anything happen.
    mark = len(observer.messages)
    await observer.send({"type": "ping", "ref": "still here"})
    assert (await observer.next_message("pong", after=mark))["ref"] == "still here"
    assert [s.public() for s in await hub.seats(uuid.UUID(hearing.id))] == seats_before
    await db_state.assert_unchanged(before, "an observer's commands")
    for c in (judge, defendant, lawyer):
        seen = [m["type"] for m in c.messages[marks[id(c)]:]]
        assert not set(seen) & {"hearing", "removed", "admitted", "exhibit", "participants",
                                "consultations"}, (c.name, seen)
        assert c.closed_code is None, c.name
    hearing_now = await call(client, "GET", f"{API}/hearings/{hearing.id}", headers=admin)
    assert hearing_now.json["state"] == "scheduled"


async def test_an_observers_token_opens_no_court_route(
    client: TestClient, admin: dict[str, str], hearing: LiveHearing, db_state: DatabaseState,
) -> None:
    r = await call(client, "POST", f"{API}/hearings/{hearing.id}/participants", headers=admin,
                   json={"name": "Senior Judge Zhou", "role": "observer", "location": "remote"})
    token, o_id = r.json["token"], r.json["id"]
    as_observer = {"Authorization": f"Bearer {token}"}
    before = await db_state.snapshot()
    # The court's own routes (state changes, people, review permissions) take the admin token.
    hid = hearing.id
    for method, path, body in (
        *(("POST", f"/hearings/{hid}/{a}", None)
           for a in ("open", "start", "recess", "resume", "close", "cancel")),
        ("PATCH", f"/hearings/{hid}", {"title": "改"}),
        ("POST", f"/hearings/{hid}/participants",
         {"name": "X", "role": "lawyer", "location": "remote"}),
        ("DELETE", f"/hearings/{hid}/participants/{hearing.ids['lawyer']}", None),
        ("PUT", f"/hearings/{hid}/participants/{o_id}/review", {"may_review": True}),
        ("POST", f"/hearings/{hid}/participants/{hearing.ids['judge']}/token", None),
        ("DELETE", f"/hearings/{hid}/participants/{hearing.ids['judge']}/token", None),
        ("POST", f"/hearings/{hid}/composite", None),
    ):
        reply = await call(client, method, API + path, headers=as_observer, json=body)
        assert_error(reply, 401, "unauthorized")
    # The routes a participant's token opens: observers watch, they do not review, correct,
    # seal or present.
    for method, path in (("GET", f"/hearings/{hid}/recordings"),
                         ("GET", f"/hearings/{hid}/transcript"),
                         ("GET", f"/hearings/{hid}/transcript/export/txt"),
                         ("PATCH", f"/hearings/{hid}/transcript/{uuid.uuid4()}"),
                         ("POST", f"/hearings/{hid}/transcript/seal")):
        reply = await call(client, method, API + path, headers=as_observer,
                           json={"text": "改写"} if method == "PATCH" else None)
        error = assert_error(reply, 403)
        assert error["code"] in ("access_denied", "forbidden"), (path, error)
    upload = await call(client, "POST", f"{API}/hearings/{hid}/exhibits", data=b"%PDF-1.4",
                        params={"title": "x"},
                        headers={**as_observer, "Content-Type": "application/pdf"})
    assert "observers" in assert_error(upload, 403, "access_denied")["message"]
    await db_state.assert_unchanged(before, "an observer's token on court routes")
    assert {e.path for e in api.endpoints if e.auth == "admin"} >= {
        f"{API}/hearings/{{id}}/{a}" for a in ("open", "start", "recess", "resume", "close")}

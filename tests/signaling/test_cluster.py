"""Two server processes sharing Redis: one hearing, participants on both, media in one.

Both apps run in this test's process (each with its own cluster identity, hub and Whisper
worker), against one database and a real redis-server; `tests/web/test_workers.py` runs real
worker processes and kills one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import redis.asyncio as aioredis

from config import load_settings
from signaling.cluster import seats_key
from signaling.routing import route
from tests.clients import HearingClient, join_until_welcomed
from tests.conftest import ADMIN_TOKEN
from tests.signaling.conftest import schedule
from tests.signaling.test_hearing_room import join_all
from tests.signaling.test_privacy import consulting
from web.app import create_app
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def settings(tmp_path, database_url, redis_server):
    return load_settings(
        environ={}, data_dir=tmp_path / "var", database_url=database_url,
        admin_token=ADMIN_TOKEN, ice_host_addresses=["127.0.0.1"], heartbeat_seconds=1.0,
        whisper_model="tiny.en", redis_url=redis_server.url,
    )


@pytest.fixture
async def pair(aiohttp_client, settings, clock):
    """Two processes' apps: `a` and `b`."""
    a = await aiohttp_client(create_app(settings, clock=clock))
    b = await aiohttp_client(create_app(settings, clock=clock, run_migrations=False))
    return a, b


def base(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_participants_on_two_processes_meet_in_one_hearing(pair, admin, clock,
                                                                participants, redis_server):
    a, b = pair
    hub_a, hub_b = a.server.app[HUB], b.server.app[HUB]
    hearing = await schedule(a, admin, clock)
    judge = HearingClient(base(a), "judge")
    lawyer = HearingClient(base(b), "lawyer")
    participants += [judge, lawyer]
    await judge.join(hearing.tokens["judge"])
    await judge.next_message("welcome")
    await lawyer.join(hearing.tokens["lawyer"])
    welcome = await lawyer.next_message("welcome")
    assert welcome["participant"]["participant_id"] == hearing.ids["lawyer"]

    # The hearing's media is held by the first process; the second relays the lawyer there.
    assert set(hub_a.hearings) == {hearing.id} and not hub_b.hearings
    assert hub_a.cluster.relayed_sessions == 1
    r = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await r.get(f"tingshen:lease:{hearing.id}") == hub_a.cluster.id
        stored = await r.hgetall(seats_key(hearing.id))
    finally:
        await r.aclose()
    assert {json.loads(v)["participant_id"] for v in stored.values()} == {
        hearing.ids["judge"], hearing.ids["lawyer"]}

    # The judge (on a) admits the lawyer (on b): the command, the admission, the offer and the
    # answer cross processes, and media flows both ways.
    await judge.wait_for(lambda: (judge.seat(hearing.ids["lawyer"]) or {}).get("present"))
    await judge.send({"type": "command", "action": "admit",
                      "participant_id": hearing.ids["lawyer"]})
    await lawyer.next_message("admitted")
    await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "audio") > 20, 30)
    await lawyer.wait_for(lambda: lawyer.frames_from(hearing.ids["judge"], "audio") > 20, 30)


    # A state change made through the second process reaches the hearing in the first: the
    # court there starts recording.
    for action in ("open", "start"):
        r = await b.post(f"/api/v1/hearings/{hearing.id}/{action}", headers=admin)
        assert r.status == 200, await r.text()
    await judge.wait_for(lambda: judge.hearing_state == "in_session")
    await lawyer.wait_for(lambda: lawyer.hearing_state == "in_session")
    # The second process's API counts who is present in the first (seats in Redis).
    r = await b.get("/api/v1/hearings/live", headers=admin)
    [entry] = (await r.json())["items"]
    assert entry["present"] == 2
    for _ in range(100):
        r = await b.get(f"/api/v1/hearings/{hearing.id}/recordings", headers=admin)
        listing = await r.json()
        if {i["participant_id"] for i in listing["items"]} == {hearing.ids["judge"],
                                                               hearing.ids["lawyer"]}:
            break
        await asyncio.sleep(0.1)
    assert listing["segments"] and listing["segments"][0]["index"] == 0
    assert {i["participant_id"] for i in listing["items"]} == {hearing.ids["judge"],
                                                               hearing.ids["lawyer"]}
    assert all(i["status"] == "recording" for i in listing["items"])

    # The lawyer leaves through the second process: the first marks the seat away.
    await lawyer.close()
    await judge.wait_for(lambda: not (judge.seat(hearing.ids["lawyer"]) or {}).get("present"))
    assert hub_a.cluster.relayed_sessions == 0


async def test_a_join_waits_when_redis_is_unreachable(pair, admin, clock, participants,
                                                      redis_server):
    a, _ = pair
    hearing = await schedule(a, admin, clock)
    redis_server.stop()
    judge = HearingClient(base(a), "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    refused = await judge.next_message("error", within=15)
    assert refused["code"] == "cluster_unavailable"
    await judge.wait_for(lambda: judge.closed_code is not None)
    assert judge.closed_code == 1013
    # Operators see it: the process is not ready, and says why.
    for _ in range(50):
        r = await a.get("/readyz")
        if r.status == 503:
            break
        await asyncio.sleep(0.1)
    assert r.status == 503
    assert (await r.json())["checks"]["redis"] == "unreachable"
    redis_server.run()
    for _ in range(50):
        r = await a.get("/readyz")
        if r.status == 200:
            break
        await asyncio.sleep(0.1)
    assert r.status == 200, await r.text()


async def test_a_redis_restart_loses_no_recording_and_relayed_people_reconnect(
        pair, admin, clock, participants, redis_server):
    """Redis dies and comes back empty. Media never passes through Redis: the hearing goes on
    and its files keep growing; the relayed participant's pipe broke (frames may have been
    lost), so they are told to reconnect, and do, into the same hearing; the holder writes the
    seats and its lease back."""
    a, b = pair
    hub_a = a.server.app[HUB]
    hearing = await schedule(a, admin, clock, auto_admit=True)
    judge = HearingClient(base(a), "judge")
    lawyer = HearingClient(base(b), "lawyer")
    participants += [judge, lawyer]
    await judge.join(hearing.tokens["judge"])
    await judge.next_message("welcome")
    await lawyer.join(hearing.tokens["lawyer"])
    await lawyer.next_message("welcome")
    for action in ("open", "start"):
        r = await a.post(f"/api/v1/hearings/{hearing.id}/{action}", headers=admin)
        assert r.status == 200, await r.text()
    await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "audio") > 20, 30)
    judge_frames = judge.frames_from(hearing.ids["lawyer"], "audio")

    redis_server.restart(down_s=2.0)

    # The relayed lawyer is sent to reconnect; the judge, connected to the holder, is not.
    await lawyer.wait_for(lambda: lawyer.closed_code is not None, 20)
    assert lawyer.closed_code == 1013
    # The holder takes its lease back and writes the seats again.
    r = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        for _ in range(50):
            if await r.get(f"tingshen:lease:{hearing.id}") == hub_a.cluster.id \
                    and await r.exists(seats_key(hearing.id)):
                break
            await asyncio.sleep(0.1)
        assert await r.get(f"tingshen:lease:{hearing.id}") == hub_a.cluster.id
        assert hearing.ids["judge"] in await r.hgetall(seats_key(hearing.id))
    finally:
        await r.aclose()

    await lawyer.close()
    # Like the page: retry until welcomed (the holder may still be resubscribing: 1013).
    again = await join_until_welcomed(base(b), hearing.tokens["lawyer"], "lawyer again")
    participants.append(again)
    welcome = await again.next_message("welcome")
    assert welcome["hearing"]["state"] == "in_session"
    await again.wait_for(lambda: again.frames_from(hearing.ids["judge"], "audio") > 20, 30)
    assert judge.closed_code is None
    await judge.wait_for(
        lambda: judge.frames_from(hearing.ids["lawyer"], "audio") > judge_frames + 20, 30)
    assert len(hub_a.hearings) == 1

    # Nothing recorded is lost: one segment throughout (the judge's file never stopped), the
    # lawyer's reconnection a second file of the same segment.
    r2 = await a.post(f"/api/v1/hearings/{hearing.id}/close", headers=admin)
    assert r2.status == 200, await r2.text()
    await judge.wait_for(lambda: judge.closed_code == 4000, 30)
    for _ in range(100):
        listing = await (await a.get(f"/api/v1/hearings/{hearing.id}/recordings",
                                     headers=admin)).json()
        if all(i["status"] != "recording" for i in listing["items"]):
            break
        await asyncio.sleep(0.1)
    assert [s["index"] for s in listing["segments"]] == [0]
    files = [i for i in listing["items"] if i["kind"] == "participant"]
    assert all(i["status"] == "complete" for i in files), files
    judge_files = [i for i in files if i["participant_id"] == hearing.ids["judge"]]
    lawyer_files = [i for i in files if i["participant_id"] == hearing.ids["lawyer"]]
    assert len(judge_files) == 1 and len(lawyer_files) == 2


async def test_a_seat_write_that_lands_late_leaves_no_older_seat_stored(
        client, admin, clock, participants):
    """The seats in Redis are what the next holder takes up after a crash, and routes by. A
    write to Redis may take a while (a new connection, a busy machine): the defendant's hand,
    written just before the court granted a consultation but landing after the grant, must
    not leave the defendant stored outside it (taken up, they would be before the court)."""
    hub = client.server.app[HUB]
    hearing = await schedule(client, admin, clock)
    clients = await join_all(hearing, participants)
    judge, defendant, lawyer = (clients[r] for r in ("judge", "defendant", "lawyer"))
    d_id, l_id = hearing.ids["defendant"], hearing.ids["lawyer"]
    await lawyer.send({"type": "consult", "action": "request", "with": d_id})
    await judge.wait_for(lambda: ((judge.seat(l_id) or {}).get("consultation") or {})
                         .get("state") == "requested")

    # The defendant's next write is slow: it lands once the grant's has (or after 2 s, should
    # the grant's wait for it).
    store = hub.bus.store_seats
    slow, granted, landed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def store_seats(hearing_id, seats, order):
        if not slow.is_set() and any(s.participant_id == d_id for s in seats):
            slow.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(granted.wait(), 2.0)
            stored = await store(hearing_id, seats, order)
            landed.set()
            return stored
        stored = await store(hearing_id, seats, order)
        if any(s.consulting is not None for s in seats):
            granted.set()
        return stored

    hub.bus.store_seats = store_seats
    await defendant.send({"type": "hand", "raised": True})
    await asyncio.wait_for(slow.wait(), 10)
    await judge.send({"type": "command", "action": "grant_consultation", "participant_id": l_id})
    await judge.wait_for(lambda: consulting(judge, hearing))
    await asyncio.wait_for(landed.wait(), 10)

    live = hub.hearings[hearing.id]
    stored = {s.participant_id: s for s in await hub.bus.load_seats(hearing.id)}
    assert (stored[d_id], stored[l_id]) == (live.seats[d_id], live.seats[l_id])
    assert not {pid for pid, _ in route(stored.values()).on_record} & {d_id, l_id}


async def test_a_seat_write_that_fails_is_written_again(
        client, admin, clock, participants, monkeypatch):
    """A write to Redis that fails (a timeout on a busy machine) while Redis stays up: the
    seat is stored again by itself, not left as it was until some later change."""
    hub = client.server.app[HUB]
    hearing = await schedule(client, admin, clock)
    clients = await join_all(hearing, participants)
    d_id = hearing.ids["defendant"]
    cluster = hub.bus.cluster
    store_held = cluster.store_held
    failed = asyncio.Event()

    async def flaky(hearing_id, fields):
        if not failed.is_set() and d_id in fields and json.loads(fields[d_id])["hand_raised"]:
            failed.set()
            raise aioredis.ConnectionError("Timeout reading from socket")
        return await store_held(hearing_id, fields)

    monkeypatch.setattr(cluster, "store_held", flaky)
    await clients["defendant"].send({"type": "hand", "raised": True})
    await asyncio.wait_for(failed.wait(), 10)
    live = hub.hearings[hearing.id]
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        stored = {s.participant_id: s for s in await hub.bus.load_seats(hearing.id)}
        if stored[d_id] == live.seats[d_id]:
            break
        assert asyncio.get_running_loop().time() < deadline, (stored[d_id], live.seats[d_id])
        await asyncio.sleep(0.05)
    assert stored[d_id].hand_raised


async def test_a_process_taken_over_without_knowing_it_writes_no_seats(
        client, admin, clock, participants):
    """A holder whose loop stalled past its process key's expiry is taken over before it
    learns so: its late seat writes must not overwrite the new holder's seats."""
    hub = client.server.app[HUB]
    hearing = await schedule(client, admin, clock)
    clients = await join_all(hearing, participants)
    d_id = hearing.ids["defendant"]
    redis = hub.bus.cluster.redis
    live = hub.hearings[hearing.id]
    await redis.set(f"tingshen:lease:{hearing.id}", "another-process", px=60_000)
    await clients["defendant"].send({"type": "hand", "raised": True})
    # Either this process handles the hand before its next renewal tells it, or it has let
    # the hearing go: in both cases nothing of it is written.
    deadline = asyncio.get_running_loop().time() + 5
    while not live.seats[d_id].hand_raised and hearing.id in hub.hearings:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    stored = {s.participant_id: s for s in await hub.bus.load_seats(hearing.id)}
    assert not stored[d_id].hand_raised

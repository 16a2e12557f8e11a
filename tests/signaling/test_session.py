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


async def admitted_pair(hearing, participants, second="defendant"):
    """The judge and one admitted participant with media flowing both ways."""
    judge = HearingClient(hearing.base_url, "judge")
    other = HearingClient(hearing.base_url, second)
    participants += [judge, other]
    await judge.join(hearing.tokens["judge"])
    await other.join(hearing.tokens[second])
    other_id = hearing.ids[second]
    await judge.wait_for(lambda: (judge.seat(other_id) or {}).get("present") is True)
    await judge.send({"type": "command", "action": "admit", "participant_id": other_id})
    await judge.wait_for(lambda: judge.frames_from(other_id, "audio") > 5, 30)
    await other.wait_for(lambda: other.frames_from(hearing.ids["judge"], "audio") > 5, 30)
    return judge, other


async def growth(client, participant_id, kind, seconds=1.5):
    import asyncio

    before = client.frames_from(participant_id, kind)
    await asyncio.sleep(seconds)
    return client.frames_from(participant_id, kind) - before


async def test_mute_is_enforced_by_the_server(hearing, participants):
    judge, defendant = await admitted_pair(hearing, participants)
    d_id = hearing.ids["defendant"]
    assert await growth(judge, d_id, "audio") > 30
    await judge.send({"type": "command", "action": "mute", "participant_id": d_id})
    await judge.wait_for(lambda: judge.seat(d_id)["muted_by_court"] is True)
    await growth(judge, d_id, "audio", 0.5)  # frames already in flight
    assert await growth(judge, d_id, "audio") <= 2
    assert await growth(judge, d_id, "video") > 10  # only audio is withheld
    # The defendant cannot lift the court's mute, neither by unmuting nor by command.
    mark = len(defendant.messages)
    await defendant.send({"type": "mute", "muted": False})
    await defendant.send({"type": "command", "action": "unmute", "participant_id": d_id})
    refused = await defendant.next_message("error", after=mark)
    assert refused["code"] == "forbidden"
    assert await growth(judge, d_id, "audio") <= 2
    await judge.send({"type": "command", "action": "unmute", "participant_id": d_id})
    await judge.wait_for(lambda: judge.seat(d_id)["muted"] is False)
    await judge.wait_for(lambda: judge.frames_from(d_id, "audio") > 0)
    assert await growth(judge, d_id, "audio") > 30


async def test_self_mute_withholds_audio(hearing, participants):
    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    l_id = hearing.ids["lawyer"]
    await lawyer.send({"type": "mute", "muted": True})
    await judge.wait_for(lambda: judge.seat(l_id)["muted_self"] is True)
    await growth(judge, l_id, "audio", 0.5)
    assert await growth(judge, l_id, "audio") <= 2
    await lawyer.send({"type": "mute", "muted": False})
    await judge.wait_for(lambda: judge.seat(l_id)["muted"] is False)
    await growth(judge, l_id, "audio", 0.5)
    assert await growth(judge, l_id, "audio") > 30


async def test_commands_from_others_are_refused(hearing, participants, client, admin):
    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    for action, target in (("start", None), ("open", None), ("close", None),
                           ("mute", hearing.ids["judge"]), ("remove", hearing.ids["judge"]),
                           ("admit", hearing.ids["defendant"])):
        mark = len(lawyer.messages)
        message = {"type": "command", "action": action, "ref": action}
        if target:
            message["participant_id"] = target
        await lawyer.send(message)
        refused = await lawyer.next_message("error", after=mark)
        assert refused["code"] == "forbidden" and refused["ref"] == action
    r = await client.get(f"/api/v1/hearings/{hearing.id}", headers=admin)
    assert (await r.json())["state"] == "scheduled"
    assert judge.seat(hearing.ids["judge"])["muted"] is False
    assert await growth(judge, hearing.ids["lawyer"], "video") > 10


async def test_hearing_commands_reach_everyone_and_the_registry(hearing, participants, client,
                                                                 admin):
    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    for action, state in (("open", "open"), ("start", "in_session"), ("recess", "recess"),
                          ("resume", "in_session")):
        await judge.send({"type": "command", "action": action})
        await lawyer.wait_for(lambda s=state: lawyer.hearing_state == s)
        await judge.wait_for(lambda s=state: judge.hearing_state == s)
    mark = len(judge.messages)
    await judge.send({"type": "command", "action": "open", "ref": "again"})
    refused = await judge.next_message("error", after=mark)
    assert refused["code"] == "invalid_transition" and "in_session" in refused["message"]
    r = await client.get(f"/api/v1/hearings/{hearing.id}", headers=admin)
    assert (await r.json())["state"] == "in_session"
    # A transition through the REST API reaches live participants too.
    r = await client.post(f"/api/v1/hearings/{hearing.id}/close", headers=admin)
    assert r.status == 200
    await lawyer.wait_for(lambda: lawyer.hearing_state == "closed")
    await lawyer.wait_for(lambda: lawyer.closed_code == 4000)
    # Coming back to a closed hearing is refused the same way.
    late = HearingClient(hearing.base_url, "late")
    participants.append(late)
    await late.join(hearing.tokens["lawyer"])
    assert (await late.next_message("error"))["code"] == "hearing_finished"
    await late.wait_for(lambda: late.closed_code == 4000)
    r = await client.get(f"/api/v1/audit?hearing_id={hearing.id}", headers=admin)
    actions = [e["action"] for e in (await r.json())["items"]]
    assert "participant.admitted" in actions and "hearing.start" in actions


async def test_leave_and_rejoin_gets_the_seat_back(hearing, participants):
    judge, defendant = await admitted_pair(hearing, participants)
    d_id = hearing.ids["defendant"]
    await judge.send({"type": "command", "action": "mute", "participant_id": d_id})
    await judge.wait_for(lambda: judge.seat(d_id)["muted"] is True)
    await defendant.close()
    await judge.wait_for(lambda: judge.seat(d_id)["present"] is False)
    await judge.wait_for(lambda: all(s["participant_id"] != d_id for s in judge.slots))
    back = HearingClient(hearing.base_url, "defendant-again")
    participants.append(back)
    await back.join(device_key=hearing.device_key)
    welcome = await back.next_message("welcome")
    assert welcome["participant"]["admitted"] is True
    assert welcome["participant"]["muted_by_court"] is True
    await judge.wait_for(lambda: judge.seat(d_id)["present"] is True)
    await judge.wait_for(lambda: judge.frames_from(d_id, "video") > 10, 30)
    await back.wait_for(lambda: back.frames_from(hearing.ids["judge"], "video") > 10, 30)


async def test_media_restart_renegotiates_a_new_connection(hearing, participants):
    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    l_id = hearing.ids["lawyer"]
    offers = sum(1 for m in lawyer.messages if m["type"] == "offer")
    await lawyer.restart_media()
    await lawyer.wait_for(
        lambda: sum(1 for m in lawyer.messages if m["type"] == "offer") > offers
    )
    lawyer.frames_by_mid.clear()
    await lawyer.wait_for(lambda: lawyer.frames_from(hearing.ids["judge"], "video") > 10, 30)
    await growth(judge, l_id, "video", 1.0)
    assert await growth(judge, l_id, "video") > 10


async def test_removed_participant_is_disconnected(hearing, participants):
    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    l_id = hearing.ids["lawyer"]
    await judge.send({"type": "command", "action": "remove", "participant_id": l_id})
    await lawyer.next_message("removed")
    await lawyer.wait_for(lambda: lawyer.closed_code == 4001)
    await judge.wait_for(lambda: judge.seat(l_id)["present"] is False)
    assert judge.seat(l_id)["admitted"] is False
    # Rejoining puts them back in the lobby, not in the hearing.
    again = HearingClient(hearing.base_url, "lawyer-again")
    participants.append(again)
    await again.join(hearing.tokens["lawyer"])
    welcome = await again.next_message("welcome")
    assert welcome["participant"]["admitted"] is False
    mark = len(again.messages)
    await again.send({"type": "answer", "sdp": "v=0", "ref": "x"})
    assert (await again.next_message("error", after=mark))["code"] == "not_admitted"


async def test_hostile_messages_get_errors_and_the_hearing_goes_on(hearing, participants):
    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    l_id = hearing.ids["lawyer"]
    cases = [
        ("{not json", "malformed_json"),
        ("[1, 2]", "invalid"),
        ('{"type": 5}', "invalid"),
        ('{"type": "explode"}', "unknown_type"),
        ('{"type": "mute"}', "invalid"),
        ('{"type": "mute", "muted": "yes"}', "invalid"),
        ('{"type": "mute", "muted": true, "extra": 1}', "invalid"),
        ('{"type": "command", "action": "detonate"}', "invalid"),
        ('{"type": "command", "action": "mute", "participant_id": "nobody"}', "forbidden"),
        ('{"type": "join", "token": "x"}', "already_joined"),
        ('{"type": "ice", "candidate": "candidate:garbage", "sdp_mid": "0"}',
         "negotiation_failed"),
        ('{"type": "answer", "sdp": "v=0 nonsense"}', "negotiation_failed"),
        ('{"type": "answer", "sdp": "' + "a" * (65 * 1024) + '"}', "sdp_too_large"),
        ('{"type": "ping", "ref": "' + "r" * 100 + '"}', "invalid"),
    ]
    for raw, code in cases:
        mark = len(lawyer.messages)
        await lawyer.send_raw(raw)
        reply = await lawyer.next_message("error", after=mark)
        assert reply["code"] == code, (raw[:60], reply)
    mark = len(lawyer.messages)
    await lawyer.send_raw(b"\x00\x01binary")
    assert (await lawyer.next_message("error", after=mark))["code"] == "invalid"
    mark = len(lawyer.messages)
    await lawyer.send({"type": "ping", "ref": "alive"})
    assert (await lawyer.next_message("pong", after=mark))["ref"] == "alive"
    assert lawyer.closed_code is None
    await growth(judge, l_id, "video", 0.5)
    assert await growth(judge, l_id, "video") > 10


async def test_a_flood_is_rate_limited_without_disconnecting(hearing, participants):
    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    mark = len(lawyer.messages)
    for i in range(300):
        await lawyer.send({"type": "ping", "ref": str(i)})
    limited = await lawyer.next_message("error", after=mark)
    assert limited["code"] == "rate_limited"
    pongs = [m for m in lawyer.messages[mark:] if m["type"] == "pong"]
    assert 40 <= len(pongs) < 300
    import asyncio

    await asyncio.sleep(1.0)
    mark = len(lawyer.messages)
    await lawyer.send({"type": "ping", "ref": "after"})
    assert (await lawyer.next_message("pong", after=mark))["ref"] == "after"
    assert await growth(judge, hearing.ids["lawyer"], "video") > 10


async def test_before_joining_only_join_is_accepted(hearing, participants, client, admin):
    lawyer = HearingClient(hearing.base_url, "lawyer")
    participants.append(lawyer)
    await lawyer.connect()
    await lawyer.send({"type": "answer", "sdp": "v=0", "ref": "early"})
    early = await lawyer.next_message("error")
    assert early["code"] == "not_joined" and early["ref"] == "early"
    mark = len(lawyer.messages)
    await lawyer.join("forged-token")
    assert (await lawyer.next_message("error", after=mark))["code"] == "access_denied"
    mark = len(lawyer.messages)
    await lawyer.join(device_key="forged-key")
    assert (await lawyer.next_message("error", after=mark))["code"] == "access_denied"
    # A revoked token is refused; a reissued one works on the same connection.
    r = await client.post(
        f"/api/v1/hearings/{hearing.id}/participants/{hearing.ids['lawyer']}/token",
        headers=admin,
    )
    fresh = (await r.json())["token"]
    mark = len(lawyer.messages)
    await lawyer.join(hearing.tokens["lawyer"])
    assert (await lawyer.next_message("error", after=mark))["code"] == "access_denied"
    await lawyer.join(fresh)
    welcome = await lawyer.next_message("welcome")
    assert welcome["participant"]["participant_id"] == hearing.ids["lawyer"]
    assert welcome["participant"]["admitted"] is False


async def test_a_dead_peer_is_detected_by_heartbeat(hearing, participants, aiohttp_client):
    import aiohttp

    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    await judge.next_message("welcome")
    l_id = hearing.ids["lawyer"]
    async with aiohttp.ClientSession() as session:
        # autoping off: this client never answers the server's pings, like a dead peer.
        ws = await session.ws_connect(f"{hearing.base_url}/ws", autoping=False)
        await ws.send_json({"type": "join", "token": hearing.tokens["lawyer"]})
        await judge.wait_for(lambda: (judge.seat(l_id) or {}).get("present") is True)
        await judge.wait_for(lambda: judge.seat(l_id)["present"] is False, within=10)
        await ws.close()


async def test_raised_hands_and_lobby_presence_are_visible(hearing, participants):
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    participants += [judge, lawyer]
    await judge.join(hearing.tokens["judge"])
    await lawyer.join(hearing.tokens["lawyer"])
    l_id = hearing.ids["lawyer"]
    await judge.wait_for(lambda: (judge.seat(l_id) or {}).get("present") is True)
    assert judge.seat(l_id)["admitted"] is False
    await lawyer.send({"type": "hand", "raised": True})  # allowed from the lobby
    await judge.wait_for(lambda: judge.seat(l_id)["hand_raised"] is True)
    await lawyer.send({"type": "hand", "raised": False})
    await judge.wait_for(lambda: judge.seat(l_id)["hand_raised"] is False)
    assert not any(m["type"] == "offer" for m in lawyer.messages)  # no media in the lobby


async def test_the_clerk_cannot_mute_the_judge(client, admin, hearing, participants):
    r = await client.post(f"/api/v1/hearings/{hearing.id}/participants", headers=admin,
                          json={"name": "Clerk Zhou", "role": "clerk", "location": "courtroom"})
    clerk_token, c_id = (await r.json())["token"], (await r.json())["id"]
    judge = HearingClient(hearing.base_url, "judge")
    clerk = HearingClient(hearing.base_url, "clerk")
    participants += [judge, clerk]
    await judge.join(hearing.tokens["judge"])
    await clerk.join(clerk_token)
    await clerk.next_message("welcome")
    j_id = hearing.ids["judge"]
    for action in ("mute", "unmute"):
        mark = len(clerk.messages)
        await clerk.send({"type": "command", "action": action, "participant_id": j_id})
        assert (await clerk.next_message("error", after=mark))["code"] == "forbidden"
    assert judge.seat(j_id)["muted_by_court"] is False
    # The judge may mute the clerk (and the clerk a party, as before).
    await judge.send({"type": "command", "action": "mute", "participant_id": c_id})
    await judge.wait_for(lambda: (judge.seat(c_id) or {}).get("muted_by_court") is True)


async def test_media_restarts_are_rate_limited_and_the_hearing_goes_on(hearing, participants):
    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    mark = len(lawyer.messages)
    for _ in range(12):
        await lawyer.send({"type": "media_restart"})
    await lawyer.wait_for(lambda: any(m.get("code") == "rate_limited"
                                      for m in lawyer.messages[mark:]))
    offers = sum(m["type"] == "offer" for m in lawyer.messages[mark:])
    assert offers <= 6, offers  # five restarts in a burst (and perhaps one renegotiation)
    await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "audio") > 5, 30)


async def test_the_restart_limit_holds_across_reconnects(hearing, participants):
    """Each connection asks for fewer restarts than the burst: a limit kept per connection
    would let every one through, as often as rejoins are allowed."""
    import time

    from signaling.limits import MEDIA_RESTARTS_BURST, MEDIA_RESTARTS_PER_S

    judge, lawyer = await admitted_pair(hearing, participants, "lawyer")
    l_id = hearing.ids["lawyer"]
    started = time.monotonic()
    granted, refusal, connections = 0, None, 0
    while refusal is None and connections < 6:  # 7 arrivals: within their own burst of 10
        if connections:
            previous = lawyer
            lawyer = HearingClient(hearing.base_url, f"lawyer-{connections}")
            participants.append(lawyer)
            await lawyer.join(hearing.tokens["lawyer"])
            await lawyer.next_message("offer", within=20)  # the arrival's own peer
            await previous.close()
        connections += 1
        for n in range(3):
            mark = len(lawyer.messages)
            await lawyer.restart_media()
            await lawyer.send({"type": "ping", "ref": f"after-{n}"})
            # Messages are handled in order: by the pong, the restart was granted or refused.
            await lawyer.wait_for(lambda n=n, c=lawyer, m=mark: any(
                x.get("ref") == f"after-{n}" for x in c.messages[m:]), 20)
            refusal = next((x for x in lawyer.messages[mark:] if x["type"] == "error"), None)
            if refusal is not None:
                break
            granted += 1
            await lawyer.next_message("offer", after=mark, within=20)
    elapsed = time.monotonic() - started
    assert refusal is not None, f"{granted} restarts over {connections} connections allowed"
    assert connections > 1  # the allowance did not start afresh with the new connection
    assert granted <= MEDIA_RESTARTS_BURST + MEDIA_RESTARTS_PER_S * elapsed, (granted, elapsed)
    assert refusal["code"] == "rate_limited" and "media restarts" in refusal["message"]
    assert lawyer.closed_code is None  # refused, not disconnected
    # A rejoin is not a restart: it still seats them, with media again.
    back = HearingClient(hearing.base_url, "lawyer-back")
    participants.append(back)
    seen = judge.frames_from(l_id, "video")
    await back.join(hearing.tokens["lawyer"])
    await back.wait_for(lambda: back.frames_from(hearing.ids["judge"], "video") > 10, 30)
    await judge.wait_for(lambda: judge.frames_from(l_id, "video") > seen + 10, 30)


async def test_rejoining_in_a_loop_is_refused_until_it_slows_down(hearing, participants):
    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    await judge.next_message("welcome")
    refused = None
    for n in range(15):
        c = HearingClient(hearing.base_url, f"lawyer-{n}")
        participants.append(c)
        await c.join(hearing.tokens["lawyer"])
        await c.wait_for(lambda c=c: c.closed_code is not None
                         or any(m["type"] == "welcome" for m in c.messages))
        if c.closed_code is not None:
            refused = c
            break
    assert refused is not None, "fifteen joins in a row were all seated"
    error = next(m for m in refused.messages if m["type"] == "error")
    assert error["code"] == "rate_limited" and refused.closed_code == 1013
    # The hearing goes on (the judge's roster comes within 0.1 s; later on a busy machine).
    await judge.wait_for(lambda: judge.seat(hearing.ids["lawyer"]) is not None)


async def test_a_lobby_flood_does_not_fan_out_to_everyone(hearing, participants):
    import asyncio

    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    participants += [judge, lawyer]
    await judge.join(hearing.tokens["judge"])
    await lawyer.join(hearing.tokens["lawyer"])
    l_id = hearing.ids["lawyer"]
    await judge.wait_for(lambda: (judge.seat(l_id) or {}).get("present") is True)
    await judge.next_message("offer")  # the judge's own peer, before the flood
    loop = asyncio.get_running_loop()
    mark, began = len(judge.messages), loop.time()
    for n in range(50):  # within the connection's burst: every one is handled
        await lawyer.send({"type": "hand", "raised": n % 2 == 0})
    await judge.wait_for(lambda: judge.seat(l_id)["hand_raised"] is False)
    await asyncio.sleep(0.3)  # anything still scheduled arrives
    rosters = sum(m["type"] == "participants" for m in judge.messages[mark:])
    elapsed = loop.time() - began
    # At most one roster per 0.1 s (and the last one right), not one per raised hand; and a
    # hand routes no media differently, so nobody's slots are touched.
    assert rosters <= elapsed / 0.1 + 2 and rosters < 25, (rosters, elapsed)
    assert not [m for m in judge.messages[mark:] if m["type"] in ("slots", "offer")]

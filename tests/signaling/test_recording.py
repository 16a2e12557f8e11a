"""Recording through a real server and real aiortc participants: files, timeline, seal, review."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.clients import HearingClient
from tests.probe import (
    codecs,
    decoded_frames,
    duration,
    first_loud_instant,
    playable_seconds,
)
from tests.signaling.conftest import LiveHearing, schedule
from web.keys import HUB, RECORDINGS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def join_all(hearing: LiveHearing, participants: list[HearingClient],
                   *roles: str) -> list[HearingClient]:
    clients = []
    for role in roles:
        c = HearingClient(hearing.base_url, role)
        participants.append(c)
        await c.join(hearing.tokens[role])
        clients.append(c)
    for c in clients:
        for other in roles:
            if other != c.name:
                await c.wait_for(lambda c=c, o=other: c.frames_from(hearing.ids[o], "video") > 5)
    return clients


async def command(judge: HearingClient, action: str, state: str) -> float:
    """Send a hearing command; the wall-clock instant the judge saw the new state."""
    await judge.send({"type": "command", "action": action})
    await judge.wait_for(lambda: judge.hearing_state == state)
    return time.time()


async def recordings_of(client: Any, hearing: LiveHearing, headers: dict[str, str]
                        ) -> dict[str, Any]:
    r = await client.get(f"/api/v1/hearings/{hearing.id}/recordings", headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()


async def finished_recordings(client: Any, hearing: LiveHearing, headers: dict[str, str]
                              ) -> dict[str, Any]:
    """The listing once no file is still being written (a recess finishes them)."""
    deadline = time.monotonic() + 15
    while True:
        listing = await recordings_of(client, hearing, headers)
        if listing["items"] and all(f["status"] != "recording" for f in listing["items"]):
            return listing
        assert time.monotonic() < deadline, listing
        await asyncio.sleep(0.2)


async def audit_actions(client: Any, hearing: LiveHearing, admin: dict[str, str]
                        ) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/audit?hearing_id={hearing.id}&limit=200", headers=admin)
    return list((await r.json())["items"])


async def sealed(client: Any, hearing: LiveHearing, admin: dict[str, str]) -> dict[str, Any]:
    """The seal event, once the closing hearing has finished its files and sealed them."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        events = await audit_actions(client, hearing, admin)
        seals = [e for e in events if e["action"] == "recording.sealed"]
        if seals:
            return seals[0]
        await asyncio.sleep(0.2)
    raise AssertionError("the recordings were not sealed after the hearing closed")


@pytest.fixture
async def auto_hearing(client, admin, clock) -> LiveHearing:
    return await schedule(client, admin, clock, auto_admit=True)


async def test_a_hearing_is_recorded_per_participant_on_one_timeline(
    auto_hearing, participants, client, admin, settings
):
    hearing = auto_hearing
    judge, lawyer = await join_all(hearing, participants, "judge", "lawyer")
    await command(judge, "open", "open")
    started = await command(judge, "start", "in_session")
    # Both participants beep at the same instant; the recordings must agree on when.
    beep_at = started + 3.0
    judge.audio.beep_at = lawyer.audio.beep_at = beep_at
    await asyncio.sleep(10.0)
    recessed = await command(judge, "recess", "recess")
    await asyncio.sleep(2.0)
    resumed = await command(judge, "resume", "in_session")
    await asyncio.sleep(3.0)
    await command(judge, "close", "closed")
    seal = await sealed(client, hearing, admin)

    listing = await recordings_of(client, hearing, admin)
    segments = listing["segments"]
    assert [s["index"] for s in segments] == [0, 1]
    first, second = segments
    # The recess shows on the timeline as the gap between the segments.
    assert abs((first["end"] - first["start"]) - (recessed - started)) < 0.3
    assert abs((second["start"] - first["end"]) - (resumed - recessed)) < 0.3

    files = [f for f in listing["items"] if f["kind"] == "participant"]
    assert len(files) == 4
    by_role: dict[tuple[str, int], dict[str, Any]] = {}
    for f in files:
        assert f["status"] == "complete" and f["error"] is None, f
        assert f["codecs"] == "vp8,opus" and f["media_type"] == "video/webm"
        by_role[(f["role"], f["segment"])] = f
        path = settings.data_dir / "recordings" / hearing.id / Path(f["url"]).parent.name
        assert path.parent.is_dir()
    assert set(by_role) == {("judge", 0), ("judge", 1), ("lawyer", 0), ("lawyer", 1)}

    recordings = client.server.app[RECORDINGS]
    rows, _ = await recordings.of_hearing(uuid.UUID(hearing.id))
    paths = {str(r.id): recordings.path_of(r) for r in rows}
    for f in files:
        path = paths[f["id"]]
        assert codecs(path) == ["opus", "vp8"]
        frames = decoded_frames(path)
        assert frames["video"] > 25 * duration(path) and frames["audio"] > 45 * duration(path)
        segment = segments[f["segment"]]
        in_session = segment["end"] - f["offset"]
        # The file covers the time in session from its start (a frame's length either way).
        assert abs(duration(path) - in_session) <= 0.05, (f, duration(path))
        assert abs(f["duration"] - duration(path)) < 0.05
        assert f["size"] == path.stat().st_size and len(f["sha256"]) == 64

    # Over the hearing, each participant's recording is the time in session within 1 %.
    for role in ("judge", "lawyer"):
        recorded = sum(duration(paths[by_role[(role, n)]["id"]]) for n in (0, 1))
        in_session = sum(s["end"] - by_role[(role, s["index"])]["offset"] for s in segments)
        assert abs(recorded - in_session) <= 0.01 * in_session, (role, recorded, in_session)

    origin = datetime.fromisoformat(listing["timeline_origin"]).timestamp()
    heard = {}
    for role in ("judge", "lawyer"):
        f = by_role[(role, 0)]
        onset = first_loud_instant(paths[f["id"]])
        assert onset is not None, f"{role}'s beep is not in the recording"
        heard[role] = f["offset"] + onset
    assert abs(heard["judge"] - heard["lawyer"]) <= 0.1, heard
    for role, at in heard.items():
        assert abs(at - (beep_at - origin)) <= 0.25, (role, at, beep_at - origin)

    # The manifest was sealed into the audit chain when the hearing closed.
    seals = [e for e in await audit_actions(client, hearing, admin)
             if e["action"] == "recording.sealed"]
    assert seals == [seal]
    assert seal["data"]["manifest_sha256"] == listing["manifest_sha256"]
    assert seal["data"]["files"] == 4
    assert await recordings.verify() == []
    tampered = paths[by_role[("lawyer", 1)]["id"]]
    with tampered.open("r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    problems = [f.message for f in await recordings.verify()]
    assert len(problems) == 1 and "altered" in problems[0] and tampered.name in problems[0]


async def test_review_access_and_range_requests(auto_hearing, participants, client, admin,
                                                clock):
    hearing = auto_hearing
    judge, lawyer = await join_all(hearing, participants, "judge", "lawyer")
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    await asyncio.sleep(2.0)
    await command(judge, "recess", "recess")
    base = f"/api/v1/hearings/{hearing.id}"

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    listing = await finished_recordings(client, hearing, bearer(hearing.tokens["judge"]))
    item = next(f for f in listing["items"] if f["role"] == "lawyer")
    # Judge and admin may fetch; the lawyer may not until the judge permits it.
    for headers in ({}, bearer("not-a-token"), bearer(hearing.tokens["lawyer"]),
                    bearer(hearing.tokens["defendant"])):
        r = await client.get(f"{base}/recordings", headers=headers)
        assert r.status in (401, 403), headers
        assert (await r.json())["error"]["code"] in ("unauthorized", "access_denied")
        r = await client.get(item["url"], headers=headers)
        assert r.status in (401, 403)
    mark = len(judge.messages)
    await judge.send({"type": "command", "action": "permit_review",
                      "participant_id": hearing.ids["lawyer"]})
    await lawyer.send({"type": "command", "action": "permit_review",
                       "participant_id": hearing.ids["lawyer"], "ref": "self"})
    refused = await lawyer.next_message("error")
    assert refused["code"] == "forbidden"
    await asyncio.sleep(0.3)
    assert not [m for m in judge.messages[mark:] if m.get("type") == "error"]
    r = await client.get(f"{base}/recordings", headers=bearer(hearing.tokens["lawyer"]))
    assert r.status == 200
    # A <video> element cannot send headers: it plays a signed link made for the lawyer
    # (never the token in the URL), range requests included.
    made = await client.post(f"{base}/links", headers=bearer(hearing.tokens["lawyer"]),
                             json={"path": item["url"]})
    assert made.status == 201, await made.text()
    signed = (await made.json())["url"]
    assert hearing.tokens["lawyer"] not in signed
    ranged = await client.get(signed, headers={"Range": "bytes=0-99"})
    assert ranged.status == 206 and len(await ranged.read()) == 100
    whole = await client.get(signed)
    assert whole.status == 200 and whole.headers["Content-Type"] == "video/webm"
    data = await whole.read()
    assert len(data) == item["size"]
    part = await client.get(item["url"], headers={**admin, "Range": "bytes=100-199"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{item['size']}"
    assert await part.read() == data[100:200]
    tail = await client.get(item["url"], headers={**admin, "Range": f"bytes={item['size']}-"})
    assert tail.status == 416
    # Another hearing's token, unknown ids and traversal attempts change nothing.
    r = await client.post("/api/v1/hearings", headers=admin, json={
        "case_number": "(2026)测01民初2号", "title": "Another", "kind": "mediation",
        "scheduled_start": (clock.now + timedelta(days=1)).isoformat(),
        "scheduled_end": (clock.now + timedelta(days=1, hours=1)).isoformat()})
    other = (await r.json())["id"]
    r = await client.post(f"/api/v1/hearings/{other}/participants", headers=admin,
                          json={"name": "Judge Zhou", "role": "judge", "location": "courtroom"})
    other_judge = (await r.json())["token"]
    r = await client.get(item["url"], headers=bearer(other_judge))
    assert r.status == 403
    r = await client.get(f"/api/v1/hearings/{other}/recordings", headers=bearer(other_judge))
    assert r.status == 200 and (await r.json())["items"] == []
    for bad in (f"{base}/recordings/../../../etc/passwd/media",
                f"{base}/recordings/%2e%2e%2f%2e%2e%2fadmin_token/media",
                f"{base}/recordings/{hearing.ids['judge']}/media"):
        r = await client.get(bad, headers=admin)
        assert r.status == 404, bad
    events = await audit_actions(client, hearing, admin)
    assert "recording.review_permitted" in [e["action"] for e in events]
    # Once per viewing and reader, whatever the ranges: the lawyer's whole file, and the
    # clerk's viewing that began in the middle (a seek) and went on.
    viewed = [e for e in events if e["action"] == "recording.viewed"]
    assert len(viewed) == 2 and len({e["actor"] for e in viewed}) == 2, viewed


@pytest.fixture
def small_disk(settings, tmpfs):
    """The recordings directory on a 96 KiB tmpfs: it fills within seconds."""
    return tmpfs(settings.data_dir / "recordings", "96k")


async def test_a_full_disk_alerts_the_court_and_the_hearing_goes_on(
    small_disk, auto_hearing, participants, client, admin
):
    hearing = auto_hearing
    judge, lawyer = await join_all(hearing, participants, "judge", "lawyer")
    await command(judge, "open", "open")
    started = await command(judge, "start", "in_session")
    alert = await judge.next_message("alert", within=60)
    failed_after = time.time() - started
    assert alert["code"] == "recording_failed" and "recording failed" in alert["message"]
    # The lawyer is not the court: no alert for them.
    assert not [m for m in lawyer.messages if m.get("type") == "alert"]
    # Media keeps flowing after the failure.
    before = lawyer.frames_from(hearing.ids["judge"], "video")
    await lawyer.wait_for(lambda: lawyer.frames_from(hearing.ids["judge"], "video") > before + 30)
    assert judge.hearing_state == "in_session"
    await command(judge, "close", "closed")
    await sealed(client, hearing, admin)
    listing = await recordings_of(client, hearing, admin)
    files = [f for f in listing["items"] if f["kind"] == "participant"]
    interrupted = [f for f in files if f["status"] == "interrupted"]
    assert interrupted and all("space" in f["error"].lower() for f in interrupted)
    recordings = client.server.app[RECORDINGS]
    rows, _ = await recordings.of_hearing(uuid.UUID(hearing.id))
    kept = [recordings.path_of(r) for r in rows if r.size > 0]
    assert kept, "what was written before the disk filled is kept"
    # Everything but the last cluster (at most a second) before the disk filled plays; the
    # alert reaches the judge a little after the failure (the writer's queue, the loop).
    assert failed_after > 1.0
    playable = {p.name: playable_seconds(p) for p in kept}
    assert max(playable.values()) >= failed_after - 2.5, (failed_after, playable)
    for path in kept:
        assert codecs(path) == ["opus", "vp8"]


async def test_closing_completes_when_everyone_hangs_up_at_once(
    auto_hearing, participants, client, admin, settings
):
    """The judge closes and every participant hangs up at once: the files of the last
    segment are still finished, and the recordings and the record are still sealed."""
    hearing = auto_hearing
    judge, lawyer = await join_all(hearing, participants, "judge", "lawyer")
    await command(judge, "open", "open")
    started = await command(judge, "start", "in_session")
    await asyncio.sleep(4.0)
    closing = time.time()
    await judge.send({"type": "command", "action": "close"})
    await asyncio.gather(judge.close(), lawyer.close())
    in_session = closing - started

    deadline = time.monotonic() + 30
    while True:
        actions = {e["action"] for e in await audit_actions(client, hearing, admin)}
        if {"recording.sealed", "transcript.sealed"} <= actions:
            break
        assert time.monotonic() < deadline, sorted(actions)
        await asyncio.sleep(0.3)

    listing = await recordings_of(client, hearing, admin)
    files = [f for f in listing["items"] if f["kind"] == "participant"]
    assert {f["role"] for f in files} == {"judge", "lawyer"}
    recordings = client.server.app[RECORDINGS]
    rows, _ = await recordings.of_hearing(uuid.UUID(hearing.id))
    paths = {str(r.id): recordings.path_of(r) for r in rows}
    for f in files:
        assert f["status"] == "complete" and f["error"] is None, f
        played = duration(paths[f["id"]])
        assert abs(played - in_session) < 1.0, (f, played, in_session)
        assert abs(f["duration"] - played) < 0.05, (f, played)
    completed = {e["data"]["recording_id"] for e in await audit_actions(client, hearing, admin)
                 if e["action"] == "recording.complete"}
    assert completed >= {f["id"] for f in files}


@pytest.mark.parametrize("failing", ["drain", "seal"])
async def test_a_failing_record_does_not_leave_the_recordings_unsealed(
    auto_hearing, participants, client, admin, monkeypatch, failing
):
    """The trial record fails as the hearing closes (its drain, or its seal): the files are
    still finished and the recordings sealed, and the composite still starts."""
    from courtrooms.transcripts import Transcripts
    from signaling.transcript import LiveTranscript

    async def broken(*args, **kwargs):
        raise RuntimeError(f"the record's {failing} failed")

    if failing == "drain":
        monkeypatch.setattr(LiveTranscript, "aclose", broken)
    else:
        monkeypatch.setattr(Transcripts, "seal", broken)
    hearing = auto_hearing
    judge, _ = await join_all(hearing, participants, "judge", "lawyer")
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    await asyncio.sleep(2.0)
    await judge.send({"type": "command", "action": "close"})
    await judge.wait_for(lambda: judge.closed_code == 4000, 30)
    seal = await sealed(client, hearing, admin)
    assert seal["data"], seal
    listing = await recordings_of(client, hearing, admin)
    files = [f for f in listing["items"] if f["kind"] == "participant"]
    assert files and all(f["status"] == "complete" for f in files), files
    # The record is sealed (or its failure audited) after the recordings: wait for either.
    deadline = time.monotonic() + 30
    while not ({"transcript.sealed", "hearing.sealing_failed"} & (actions := {
            e["action"] for e in await audit_actions(client, hearing, admin)})):
        assert time.monotonic() < deadline, actions
        await asyncio.sleep(0.2)
    assert ("transcript.sealed" in actions) == (failing == "drain")
    assert ("hearing.sealing_failed" in actions) == (failing == "seal")
    assert client.server.app[HUB].composites.status(uuid.UUID(hearing.id)).state != "idle"


async def test_a_gap_in_someones_recording_is_alerted_to_the_court_as_it_happens(
    auto_hearing, participants, client, admin
):
    hearing = auto_hearing
    judge, lawyer = await join_all(hearing, participants, "judge", "lawyer")
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    lawyer_id = hearing.ids["lawyer"]
    await judge.wait_for(lambda: judge.frames_from(lawyer_id, "audio") > 50)

    # The lawyer's browser stops sending audio (its connection stays up).
    resume = asyncio.Event()
    track = lawyer.audio
    original = track.recv

    async def stalled() -> Any:
        await resume.wait()
        return await original()

    track.recv = stalled  # type: ignore[method-assign]
    stopped = time.time()
    await judge.wait_for(lambda: any(m.get("code") == "recording_gap" for m in judge.messages),
                         within=20)
    [gap] = [m for m in judge.messages if m.get("code") == "recording_gap"]
    assert gap["participant_id"] == lawyer_id and "Lawyer Li" in gap["message"]
    assert stopped - 2.0 <= gap["since"] <= time.time()
    # The court alone is told, and not about the judge, whose audio kept coming.
    assert not any(m.get("code") == "recording_gap" for m in lawyer.messages)

    resume.set()
    await judge.wait_for(lambda: any(m.get("code") == "recording_gap_ended"
                                     for m in judge.messages), within=20)
    [ended] = [m for m in judge.messages if m.get("code") == "recording_gap_ended"]
    assert ended["participant_id"] == lawyer_id and ended["seconds"] >= 3.0
    actions = [e["action"] for e in await audit_actions(client, hearing, admin)]
    assert actions.count("recording.gap_started") == 1
    assert actions.count("recording.gap_ended") == 1

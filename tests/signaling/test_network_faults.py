"""Packet loss, delay and a blackout between a real server and a participant in another network
namespace: what the court sees, and that nothing recorded is lost.

The server listens on its end of a veth pair (ICE host candidates restricted to it); the judge
runs in this process; the defendant is a separate process inside the namespace
(`tests.remote_participant`), so every packet between it and the server crosses the impaired
link (`tests.faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from config import Settings
from tests.clients import BEEP_S, HearingClient
from tests.conftest import FakeClock
from tests.faults import BLACKOUT, ROOT, Impairment, NetworkNamespace, network_namespace
from tests.probe import codecs, decoded_frames, duration
from tests.remote_participant import HEARTBEAT_S
from tests.signaling.conftest import LiveHearing, schedule
from tests.signaling.test_recording import command, recordings_of, sealed
from web.app import create_app
from web.keys import RECORDINGS

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.timeout(120),
]

LOSS = Impairment(loss_pct=15.0, delay_ms=100.0)  # each way: about 200 ms round trip
BLACKOUT_S = 10.0
SHORT_BLACKOUT_S = 6.0


class Remote:
    """The defendant's process in the namespace, and the JSON lines it wrote."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self._changed:
                self.events.append(json.loads(line))
                self._changed.notify_all()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], after: int = 0,
                       within: float = 20.0) -> dict[str, Any]:
        """The first event from `after` on that satisfies `predicate`."""
        deadline = time.monotonic() + within
        while True:
            found = next((e for e in self.events[after:] if predicate(e)), None)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._reader.done():
                tail = self.stderr.read_text()[-2000:]
                errors = [e for e in self.events if e["event"] in ("error", "closed")][:6]
                raise TimeoutError(f"remote participant: condition not met; last events "
                                   f"{[e['event'] for e in self.events[-10:]]}; its last "
                                   f"errors {errors}; stderr: {tail}")
            with contextlib.suppress(TimeoutError):
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def aclose(self) -> None:
        """Ask it to leave (close its stdin), then make sure it is gone."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10.0)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        await self._reader


@pytest.fixture
async def netns() -> AsyncIterator[NetworkNamespace]:
    async with network_namespace() as namespace:
        yield namespace


@pytest.fixture
def serve(aiohttp_client: Any, settings: Settings, clock: FakeClock, netns: NetworkNamespace
          ) -> Callable[[float], Awaitable[TestClient]]:
    """The real app listening on this namespace's end of the link, offering only that address
    as its ICE host candidate, with a given WebSocket heartbeat."""

    async def start(heartbeat_s: float) -> TestClient:
        on_link = settings.model_copy(update={
            "host": netns.root_address, "ice_host_addresses": [netns.root_address],
            "heartbeat_seconds": heartbeat_s,
        })
        return await aiohttp_client(create_app(on_link, clock=clock),
                                    server_kwargs={"host": netns.root_address})

    return start


@pytest.fixture
async def remote(netns: NetworkNamespace, tmp_path: Path
                 ) -> AsyncIterator[Callable[..., Awaitable[Remote]]]:
    """Start participants inside the namespace; all stopped before it is deleted."""
    started: list[Remote] = []

    async def start(base_url: str, token: str, heartbeat_s: float = HEARTBEAT_S,
                    encoded: bool = False) -> Remote:
        stderr = tmp_path / f"remote-{len(started)}.log"
        with stderr.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                # `--` first: a token may start with "-" (URL-safe base64).
                *netns.exec_args(sys.executable, "-m", "tests.remote_participant",
                                 "--heartbeat", str(heartbeat_s),
                                 *(["--encoded"] if encoded else []), "--", base_url, token),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                cwd=ROOT,
            )
        participant = Remote(process, stderr)
        started.append(participant)
        await participant.wait_for(lambda e: e["event"] == "started")
        return participant

    yield start
    for participant in started:
        await participant.aclose()


def qualities(judge: HearingClient, participant_id: str, after: int = 0
              ) -> list[dict[str, Any]]:
    """What the court's console showed about one participant's link, in order."""
    return [q for m in judge.messages[after:] if m.get("type") == "quality"
            for q in m["participants"] if q["participant_id"] == participant_id]


def seats(judge: HearingClient, participant_id: str, after: int = 0) -> list[dict[str, Any]]:
    """The participant's seat in each `participants` message the court got."""
    return [p for m in judge.messages[after:] if m.get("type") == "participants"
            for p in m["participants"] if p["participant_id"] == participant_id]


async def paths_by_id(client: TestClient, hearing: LiveHearing) -> dict[str, Path]:
    """Where each recording of the hearing is, by its id in the listing."""
    recordings = client.server.app[RECORDINGS]
    rows, _ = await recordings.of_hearing(uuid.UUID(hearing.id))
    return {str(row.id): recordings.path_of(row) for row in rows}


async def files_being_written(client: TestClient, hearing: LiveHearing, admin: dict[str, str]
                              ) -> dict[str, Path]:
    """Each role's recording file now being written."""
    listing = await recordings_of(client, hearing, admin)
    paths = await paths_by_id(client, hearing)
    return {f["role"]: paths[f["id"]] for f in listing["items"] if f["status"] == "recording"}


def loud_onsets(path: Path, threshold: float = 0.3) -> list[float]:
    """Seconds from the file's time zero at which each beep starts."""
    onsets: list[float] = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            samples = frame.to_ndarray()
            if samples.dtype != np.float32:
                samples = samples.astype(np.float32) / 32768.0
            loud = np.flatnonzero(np.abs(samples).max(axis=0) > threshold)
            if loud.size:
                at = float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
                if not onsets or at - onsets[-1] > 2 * BEEP_S:
                    onsets.append(at)
    return onsets


def audio_packets_between(path: Path, start_s: float, end_s: float) -> int:
    """Audio packets in `path` whose time is within [start_s, end_s) of the file."""
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(container.streams.audio[0])
                   if packet.pts is not None
                   and start_s <= float(packet.pts * packet.time_base) < end_s)


def audio_gaps(path: Path) -> tuple[int, float]:
    """Audio packets in `path` and the longest gap between two of them, in seconds."""
    times = []
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.audio[0]):
            if packet.pts is not None:
                times.append(float(packet.pts * packet.time_base))
    times.sort()
    return len(times), max(np.diff(times), default=0.0)


async def test_loss_and_delay_are_shown_to_the_court_and_the_record_keeps_growing(
    serve, remote, netns, participants, admin, clock
):
    # The default heartbeat: a ping every 15 s, answered within 7.5 s, which a lossy link
    # manages (TCP retransmits); with a 1 s heartbeat the loss would cut the socket instead.
    client = await serve(15.0)
    hearing = await schedule(client, admin, clock, auto_admit=True)
    defendant_id = hearing.ids["defendant"]
    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    # A distant defendant: the delay is there from the start. aiortc smooths the round trip
    # it reports (each receiver report moves it 15 % of the way), so a delay that came later
    # would take the court's figure some 20 s to reach.
    await netns.impair(Impairment(delay_ms=LOSS.delay_ms))
    # Nor does the defendant ping (as a browser): a 2 s ping answered within 1 s over a lossy
    # link on a busy machine closed its socket in CI, and the rejoin's new connection then
    # had to be made through the loss.
    defendant = await remote(hearing.base_url, hearing.tokens["defendant"], heartbeat_s=0)
    await judge.wait_for(lambda: judge.frames_from(defendant_id, "video") > 10)
    await defendant.wait_for(lambda e: e["event"] == "frames" and e["video"] > 10)
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")

    await netns.impair(LOSS)
    impaired = time.time()
    # Loss rates are over the time since the previous report (every 2 s): skip the report
    # that straddles the change.
    await asyncio.sleep(2.5)
    mark = len(judge.messages)
    files = await files_being_written(client, hearing, admin)
    sizes = {role: path.stat().st_size for role, path in files.items()}
    frames_before = (judge.frames_from(defendant_id, "video"),
                     defendant.of("frames")[-1]["video"])
    await judge.wait_for(lambda: len(qualities(judge, defendant_id, mark)) >= 5, within=15)
    seen = qualities(judge, defendant_id, mark)
    # The hearing goes on through the loss: media both ways (on a busy machine the
    # defendant's process decodes late, so wait for its frames rather than for a time).
    await judge.wait_for(lambda: judge.frames_from(defendant_id, "video") > frames_before[0] + 50,
                         within=30)
    await defendant.wait_for(lambda e: e["event"] == "frames"
                             and e["video"] > frames_before[1] + 50, within=30)
    grown = {role: path.stat().st_size for role, path in files.items()}
    await netns.clear()
    cleared = time.time()
    cleared_mark = len(judge.messages)

    # Each report covers 2 s: one may catch a lucky stretch (the RTT imposed sits at the
    # "fair" threshold); the court must see the link degraded in all the others.
    degraded = [q for q in seen if q["grade"] in ("fair", "poor")]
    assert len(degraded) >= len(seen) - 1, seen
    assert all(q["connection"] == "connected" for q in seen), seen
    # A report with nothing measured yet (a peer the participant restarted under the loss)
    # says nothing either way; the others must show the loss.
    measured = [q for q in seen if q["loss_pct"] is not None]
    assert len(measured) >= len(seen) - 1, seen
    loss = statistics.median(q["loss_pct"] for q in measured)
    rtt = statistics.median(q["rtt_ms"] for q in measured)
    print(f"imposed {LOSS.loss_pct} % loss and {LOSS.delay_ms} ms each way; the court saw "
          f"loss {[q['loss_pct'] for q in seen]} % (median {loss}), "
          f"rtt {[q['rtt_ms'] for q in seen]} ms (median {rtt})")
    assert 10.0 <= loss <= 30.0, seen
    # The smoothed figure climbs to the 200 ms imposed from below; on a busy machine fewer
    # receiver reports arrive, so it may still be short of it, and both ends answer late,
    # which adds to it (487 ms measured with three other programs spinning on two cores).
    assert 150.0 <= rtt <= 1000.0, seen
    # The hearing goes on (media both ways, waited for above), state unchanged, both files
    # growing.
    assert judge.hearing_state == "in_session"
    assert set(sizes) == {"judge", "defendant"}
    for role in sizes:
        assert grown[role] > sizes[role] + 10_000, (role, sizes, grown)

    # Once the link is clean again, the court sees it good again.
    def good_again() -> bool:
        after = qualities(judge, defendant_id, cleared_mark)
        return bool(after) and after[-1]["grade"] == "good"

    await judge.wait_for(good_again, within=15)
    recovered = qualities(judge, defendant_id, cleared_mark)
    assert recovered[-1]["loss_pct"] < 1.5 and recovered[-1]["rtt_ms"] < rtt, recovered

    await command(judge, "close", "closed")
    await sealed(client, hearing, admin)
    listing = await recordings_of(client, hearing, admin)
    origin = datetime.fromisoformat(listing["timeline_origin"]).timestamp()
    items = {f["role"]: f for f in listing["items"] if f["kind"] == "participant"}
    assert set(items) == {"judge", "defendant"}
    paths = await paths_by_id(client, hearing)
    for f in items.values():
        assert f["status"] == "complete" and f["error"] is None, f
        assert codecs(paths[f["id"]]) == ["opus", "vp8"]
        assert decoded_frames(paths[f["id"]])["video"] > 0
    # The judge's side of the link was clean: all of the judge's audio is in the record.
    judge_file = paths[items["judge"]["id"]]
    packets, gap = audio_gaps(judge_file)
    assert packets >= 0.95 * duration(judge_file) / 0.020 and gap < 0.2, (packets, gap)
    # The defendant's audio while the link lost 15 %: what the record kept of it.
    defendant_file = items["defendant"]
    start = origin + defendant_file["offset"]
    kept = audio_packets_between(paths[defendant_file["id"]], impaired + 0.5 - start,
                                 cleared - start)
    sent = (cleared - impaired - 0.5) / 0.020
    print(f"the defendant's recording kept {kept / sent:.0%} of the audio sent over the lossy "
          f"link (the link delivered about {100 - LOSS.loss_pct:.0f} %)")
    # What the link delivered reaches the record: 85 % measured. (aiortc's own audio jitter
    # buffer dropped what followed each loss, aiortc issue #543: 32 % was kept in CI.) The loss
    # is random and the window short, hence 70 %.
    assert kept >= 0.7 * sent, (kept, sent)


async def test_a_blackout_drops_the_participant_who_rejoins_and_nothing_recorded_is_lost(
    serve, remote, netns, participants, admin, clock
):
    # A ping every 2 s, answered within 1 s: the server gives a silent participant up within
    # 3 s (production's 15 s heartbeat does the same, later).
    client = await serve(2.0)
    hearing = await schedule(client, admin, clock)
    defendant_id = hearing.ids["defendant"]
    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    defendant = await remote(hearing.base_url, hearing.tokens["defendant"])
    await judge.wait_for(lambda: judge.seat(defendant_id) is not None)
    await judge.send({"type": "command", "action": "admit", "participant_id": defendant_id})
    await judge.wait_for(lambda: judge.frames_from(defendant_id, "video") > 10)
    await defendant.wait_for(lambda e: e["event"] == "frames" and e["video"] > 10)
    await command(judge, "open", "open")
    started = await command(judge, "start", "in_session")
    await asyncio.sleep(4.0)

    mark, events_mark = len(judge.messages), len(defendant.events)
    await netns.impair(BLACKOUT)
    blackout = time.time()
    # What the court sees: the defendant is away (the server gave up on the silent socket);
    # the seat is kept, admitted.
    await judge.wait_for(lambda: any(not s["present"] for s in seats(judge, defendant_id, mark)),
                         within=BLACKOUT_S - 2)
    away = time.time() - blackout
    gone = next(s for s in seats(judge, defendant_id, mark) if not s["present"])
    assert gone["connection"] == "closed" and gone["admitted"], gone
    # The defendant's side noticed too, and keeps trying.
    await defendant.wait_for(lambda e: e["event"] == "closed", after=events_mark,
                             within=BLACKOUT_S - away)
    await asyncio.sleep(max(0.0, blackout + BLACKOUT_S - time.time()))
    await netns.clear()
    restored = time.time()

    # It rejoins by itself, with its seat (admitted: no one let it in again), and media flows.
    rejoined = await defendant.wait_for(lambda e: e["event"] == "welcome", after=events_mark,
                                        within=15)
    assert rejoined["participant"]["admitted"], rejoined
    await judge.wait_for(lambda: any(s["present"] and s["connection"] == "connected"
                                     for s in seats(judge, defendant_id, mark)), within=15)
    back = time.time() - restored
    frames = judge.frames_from(defendant_id, "video")
    await judge.wait_for(lambda: judge.frames_from(defendant_id, "video") > frames + 30)
    received = defendant.of("frames")[-1]["video"]
    await defendant.wait_for(lambda e: e["event"] == "frames" and e["video"] > received + 30)
    assert all(s["admitted"] for s in seats(judge, defendant_id, mark))
    print(f"blackout: the court saw the defendant away after {away:.1f} s and back "
          f"{back:.1f} s after the link returned; the defendant's client retried "
          f"{len(defendant.of('connect_failed'))} time(s)")
    await asyncio.sleep(4.0)
    closing = await command(judge, "close", "closed")
    await sealed(client, hearing, admin)

    listing = await recordings_of(client, hearing, admin)
    origin = datetime.fromisoformat(listing["timeline_origin"]).timestamp()
    items = sorted((f for f in listing["items"] if f["kind"] == "participant"),
                   key=lambda f: f["offset"])
    for f in items:
        assert f["status"] == "complete" and f["error"] is None, f
    by_role: dict[str, list[dict[str, Any]]] = {}
    for f in items:
        by_role.setdefault(f["role"], []).append(f)
    paths = await paths_by_id(client, hearing)

    # The judge's recording went on through the blackout: one file, no gap in its audio,
    # as long as the session.
    (judge_file,) = by_role["judge"]
    judge_path = paths[judge_file["id"]]
    packets, gap = audio_gaps(judge_path)
    played = duration(judge_path)
    assert abs(played - (closing - started)) < 1.0, (played, closing - started)
    assert gap < 0.2, gap
    assert packets >= 0.95 * played / 0.020, (packets, played)

    # The defendant's recording: the file up to the blackout is finished and holds every
    # beep sent before it; a new file from the rejoin holds every beep after it.
    before, after = by_role["defendant"]
    assert before["segment"] == after["segment"] == 0
    assert abs(origin + before["offset"] + before["duration"] - blackout) < 1.0, before
    assert origin + after["offset"] >= restored, after
    assert abs(origin + after["offset"] + after["duration"] - closing) < 1.0, after
    beeps = [e["at"] for e in defendant.of("beep")]
    for f in (before, after):
        file_path = paths[f["id"]]
        assert codecs(file_path) == ["opus", "vp8"]
        frames_in = decoded_frames(file_path)
        assert frames_in["video"] > 0 and frames_in["audio"] > 40 * f["duration"], frames_in
        start = origin + f["offset"]
        end = start + f["duration"]
        sent = [at - start for at in beeps if start + 0.5 < at < end - 0.5]
        heard = loud_onsets(file_path)
        assert sent, (f, beeps)
        for at in sent:
            assert any(abs(h - at) < 0.3 for h in heard), (f["url"], at, heard)



async def test_a_short_blackout_is_shown_to_the_court_and_the_same_connection_carries_on(
    serve, remote, netns, participants, admin, clock
):
    # A heartbeat patient enough (a ping every 30 s, answered within 15 s, however TCP backs
    # off) and a socket that does not ping, as a browser's: the socket outlives the blackout.
    client = await serve(30.0)
    hearing = await schedule(client, admin, clock, auto_admit=True)
    defendant_id = hearing.ids["defendant"]
    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    defendant = await remote(hearing.base_url, hearing.tokens["defendant"], 0)
    await judge.wait_for(lambda: judge.frames_from(defendant_id, "video") > 10)
    await defendant.wait_for(lambda e: e["event"] == "frames" and e["video"] > 10)
    await command(judge, "open", "open")
    started = await command(judge, "start", "in_session")
    await asyncio.sleep(3.0)

    mark, events_mark = len(judge.messages), len(defendant.events)
    await netns.impair(BLACKOUT)
    blackout = time.time()
    # The court sees the link dead while it is: nothing comes in, everything is lost.
    await judge.wait_for(lambda: any(q["grade"] == "poor" and q["loss_pct"] == 100.0
                                     and q["kbps_in"] == 0
                                     for q in qualities(judge, defendant_id, mark)),
                         within=SHORT_BLACKOUT_S)
    seen_dead = time.time() - blackout
    await asyncio.sleep(max(0.0, blackout + SHORT_BLACKOUT_S - time.time()))
    audio, video = (judge.frames_from(defendant_id, "audio"),
                    judge.frames_from(defendant_id, "video"))
    cleared_mark = len(judge.messages)
    await netns.clear()
    restored = time.time()

    # The same connection carries the defendant's sound again at once...
    await judge.wait_for(lambda: judge.frames_from(defendant_id, "audio") > audio + 50,
                         within=5)
    heard_after = time.time() - restored
    received = defendant.of("frames")[-1]["audio"]
    await defendant.wait_for(lambda e: e["event"] == "frames" and e["audio"] > received + 50,
                             within=5)

    def good_again() -> bool:
        after = qualities(judge, defendant_id, cleared_mark)
        return bool(after) and after[-1]["grade"] == "good"

    await judge.wait_for(good_again, within=10)
    # ...with no rejoin: the seat stayed, present and connected, and the client never left.
    assert all(s["present"] and s["connection"] == "connected"
               for s in seats(judge, defendant_id, mark)), seats(judge, defendant_id, mark)
    assert not [e for e in defendant.events[events_mark:]
                if e["event"] in ("closed", "welcome", "connect_failed")]
    await asyncio.sleep(3.0)
    closing = await command(judge, "close", "closed")
    await sealed(client, hearing, admin)
    picture_back = judge.frames_from(defendant_id, "video") > video
    print(f"short blackout: the court saw the link dead after {seen_dead:.1f} s; the "
          f"defendant was heard again {heard_after:.1f} s after the link returned; their "
          f"picture {'came back' if picture_back else 'had not come back'} "
          f"{time.time() - restored:.0f} s after it")

    # One file per participant (the same connection throughout), complete and readable; the
    # defendant's holds the gap of the blackout and the sound and beeps after it.
    listing = await recordings_of(client, hearing, admin)
    origin = datetime.fromisoformat(listing["timeline_origin"]).timestamp()
    items = {f["role"]: f for f in listing["items"] if f["kind"] == "participant"}
    assert len([f for f in listing["items"] if f["kind"] == "participant"]) == 2
    paths = await paths_by_id(client, hearing)
    for f in items.values():
        assert f["status"] == "complete" and f["error"] is None, f
        assert codecs(paths[f["id"]]) == ["opus", "vp8"]
    judge_file = paths[items["judge"]["id"]]
    packets, gap = audio_gaps(judge_file)
    assert gap < 0.2 and packets >= 0.95 * duration(judge_file) / 0.020, (packets, gap)
    assert abs(duration(judge_file) - (closing - started)) < 1.0
    defendant_item = items["defendant"]
    defendant_file = paths[defendant_item["id"]]
    start = origin + defendant_item["offset"]
    _, gap = audio_gaps(defendant_file)
    assert SHORT_BLACKOUT_S - 0.5 <= gap <= SHORT_BLACKOUT_S + 1.5, gap
    kept = audio_packets_between(defendant_file, restored + 0.5 - start, closing - 0.5 - start)
    assert kept >= 0.9 * (closing - restored - 1.0) / 0.020, kept
    heard = loud_onsets(defendant_file)
    sent = [e["at"] - start for e in defendant.of("beep")
            if restored + 0.5 < e["at"] < closing - 0.5]
    assert sent and all(any(abs(h - at) < 0.3 for h in heard) for at in sent), (sent, heard)

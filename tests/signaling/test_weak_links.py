"""A party on a weak link still hears the court (issue 16): audio first, video by importance.

A hearing of four in which the judge, the lawyer and the prosecutor each publish what a webcam
and a browser send (640x360 VP8 at ~800 kbit/s, Opus at 32 kbit/s: pre-encoded, so that the
test's own clients cost little), and the defendant, in another network namespace, receives
through a bottleneck (`tc tbf`) of 1 Mbit/s or 300 kbit/s: three videos (2.4 Mbit/s) do not
fit, the three voices do. Without adaptation the defendant heard 28-34% of the audio packets at
1 Mbit/s and was cut off at 300 kbit/s.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.bench.forwarding.loops import MediaLoops, encode_audio_loop, encode_video_loop
from tests.clients import HearingClient
from tests.signaling.conftest import schedule
from tests.signaling.test_network_faults import (  # noqa: F401  (fixtures)
    netns,
    qualities,
    remote,
    serve,
)
from tests.signaling.test_recording import command
from web.loadtest.encoded import PreEncodedAudio, PreEncodedVideo

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.timeout(240),
    pytest.mark.alone,  # measures media in real time: `make test` runs it on its own
]

PUBLISHERS = ("judge", "lawyer", "prosecutor")
AUDIO_FRAMES_PER_S = 50  # Opus, 20 ms a packet
SETTLE_S = 6.0  # the server learns the link from the defendant's reports, then holds back
WINDOW_S = 10.0


@pytest.fixture(scope="module")
def loops() -> MediaLoops:
    return MediaLoops(encode_video_loop(), encode_audio_loop())


class Timeline:
    """A count sampled with the wall clock every `every` seconds, so that it can be read at
    the moments another process stamped its own counts with (this process's reads come late
    on a busy machine, by as much as a second)."""

    def __init__(self, count: Callable[[], int], every: float = 0.05) -> None:
        self._count = count
        self._every = every
        self.times: list[float] = []
        self.values: list[int] = []

    @contextlib.asynccontextmanager
    async def sampling(self) -> AsyncIterator[Timeline]:
        async def sample() -> None:
            while True:
                self._sample()
                await asyncio.sleep(self._every)

        task = asyncio.create_task(sample())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._sample()  # later than any stamp received meanwhile

    def _sample(self) -> None:
        self.times.append(time.time())
        self.values.append(self._count())

    def at(self, t: float) -> float:
        """The count at wall-clock time `t`, between the samples either side of it."""
        assert self.times and self.times[0] <= t <= self.times[-1], (t, self.times[:1])
        i = bisect.bisect_left(self.times, t)
        if self.times[i] == t or i == 0:
            return float(self.values[i])
        t0, t1 = self.times[i - 1], self.times[i]
        v0, v1 = self.values[i - 1], self.values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


async def publishers(client: Any, admin: dict[str, str], hearing: Any, loops: MediaLoops,
                     participants: list[HearingClient]) -> dict[str, HearingClient]:
    r = await client.post(f"/api/v1/hearings/{hearing.id}/participants", headers=admin, json={
        "name": "Prosecutor Zhao", "role": "prosecutor", "location": "courtroom"})
    assert r.status == 201, await r.text()
    body = await r.json()
    tokens = {**hearing.tokens, "prosecutor": body["token"]}
    hearing.ids["prosecutor"] = body["id"]
    clients = {}
    for i, role in enumerate(PUBLISHERS):
        c = HearingClient(hearing.base_url, role)
        c.decode = False
        # Each starts at another point of the loops, as real publishers would.
        c.audio = PreEncodedAudio(loops.audio, i * len(loops.audio) // 3)
        c.video_source = (lambda i=i: PreEncodedVideo(loops.video, i * len(loops.video) // 3))
        participants.append(c)
        await c.join(tokens[role])
        clients[role] = c
    return clients


def keyframe_requests(clients: dict[str, HearingClient]) -> int:
    """Keyframe requests the server sent the publishers (PLIs their senders received)."""
    total = 0
    for c in clients.values():
        assert c.pc is not None
        for sender in c.pc.getSenders():
            track = sender.track
            if isinstance(track, PreEncodedVideo):
                total += track.keyframe_requests
    return total


# The unlimited link, with adaptation on and off, is measured in `make bench` (bench_weak_links):
# there the defendant gets every packet and full frame rate.
@pytest.mark.parametrize("kbit", [1000, 300])
async def test_a_defendant_on_a_weak_link_hears_the_court_and_stays_connected(
    kbit, serve, remote, netns, participants, admin, clock, loops  # noqa: F811
):
    client = await serve(15.0)
    hearing = await schedule(client, admin, clock, auto_admit=True)
    clients = await publishers(client, admin, hearing, loops, participants)
    judge = clients["judge"]
    defendant_id = hearing.ids["defendant"]
    await netns.limit_rate(kbit)  # the defendant's downlink, from before they join
    # No ping of its own (as a browser): the server's heartbeat (15 s) is what a weak link
    # must keep up with.
    defendant = await remote(hearing.base_url, hearing.tokens["defendant"], heartbeat_s=0,
                             encoded=True)
    await defendant.wait_for(lambda e: e["event"] == "frames" and e["audio"] > 100, within=40)
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    for c in clients.values():
        await c.wait_for(lambda c=c: c.frames.get("video", 0) > 30, within=30)

    # The court is told what the defendant's link carries and that videos are held back.
    await judge.wait_for(lambda: any(
        q["videos_held"] >= 1 and q["downlink_kbps"] is not None
        for q in qualities(judge, defendant_id)), within=60)
    settled = time.time() + SETTLE_S
    publishers_sent = Timeline(lambda: sum(c.audio.sent for c in clients.values()))
    async with publishers_sent.sampling():
        first = await defendant.wait_for(
            lambda e: e["event"] == "frames" and e["t"] >= settled, within=SETTLE_S + 10)
        requests_before = keyframe_requests(clients)
        mark = len(judge.messages)
        heard_before = {r: c.frames_from(defendant_id, "audio") for r, c in clients.items()}
        last = await defendant.wait_for(
            lambda e: e["event"] == "frames" and e["t"] >= first["t"] + WINDOW_S,
            after=defendant.events.index(first), within=WINDOW_S + 10)
    span = last["t"] - first["t"]
    # Against what the publishers sent over the same window, by the defendant's process's
    # clock (one wall clock on this machine): on a busy machine the publishers' process (the
    # server's too) sends late, and what was not sent cannot be heard.
    published = publishers_sent.at(last["t"]) - publishers_sent.at(first["t"])
    assert published >= 0.5 * span * AUDIO_FRAMES_PER_S * len(PUBLISHERS), (published, span)
    heard = (last["audio"] - first["audio"]) / published
    # What the link delivered of the audio the server sent the defendant, from the gaps in
    # the streams' sequence numbers: the same counters at both ends of the window, so that
    # neither process's lateness moves it.
    received = last["audio_received"] - first["audio_received"]
    delivered = received / max(1, received + last["audio_lost"] - first["audio_lost"])
    requests = (keyframe_requests(clients) - requests_before) / span / len(PUBLISHERS)
    reports = qualities(judge, defendant_id, mark)
    print(f"{kbit} kbit/s: the defendant heard {heard:.1%} of the audio packets published "
          f"({delivered:.1%} of those the server sent) over "
          f"{span:.0f} s, {last['video'] - first['video']} video frames; keyframe requests "
          f"{requests:.2f}/s per publisher; court saw "
          f"{[(q['downlink_kbps'], q['videos_held']) for q in reports]} (kbit/s, videos held)")

    # Audio first: the court is heard. Issue 16's goals are 99% at 1 Mbit/s and 95% at 300
    # kbit/s (measured by `make bench BENCH=weak_links` over longer windows): held here on
    # what the link delivered of the audio sent to the defendant (before audio came first,
    # 28-34% at 1 Mbit/s). Against what the publishers sent, read at the same moments: it
    # shows the server forwarded the court's audio. (Read when this process got round to it,
    # the window's two ends moved apart on a busy machine: 100.5%, 90.2%, 83.5% and 65% were
    # seen with nothing lost; the packets in flight at either end still count.)
    assert delivered >= (0.95 if kbit == 300 else 0.99), delivered
    assert heard >= 0.85, heard
    # Connected throughout: no rejoin, no media restart.
    assert not defendant.of("closed"), defendant.of("closed")
    assert all(e["media"] == "connected" for e in defendant.events
               if e["event"] == "frames" and e["t"] >= first["t"])
    assert reports
    # The court sees the weak link and what is held back; the estimate is near the link.
    assert all(q["videos_held"] >= 1 for q in reports), reports
    # A probe lifts the estimate past the link for a moment before the loss it causes is
    # reported (693 kbit/s on the 300 kbit/s link was seen in CI, the next report 160): most
    # reports, not every one, are near the link.
    assert all(q["downlink_kbps"] is not None for q in reports), reports
    estimates = sorted(q["downlink_kbps"] for q in reports)
    assert estimates[len(estimates) // 2] <= kbit * 1.6, reports
    assert estimates[-1] <= kbit * 3, reports
    # The defendant's own voice still reaches the court (their uplink is not limited): what
    # the others received of what they sent (on a busy machine the defendant's process may
    # send less than 50 packets a second, and the clients sharing this process with the
    # server may drop some at their own sockets: neither is the server's doing). The
    # defendant's count comes from its own busy process, read at other moments than the
    # clients' here: 86% was seen in CI with every packet arriving and 78% here with a full
    # suite and two browser suites beside it, hence 70% (before audio came first, 7-71%; the
    # benchmark measures 100% over 30 s).
    sent = last["audio_sent"] - first["audio_sent"]
    for role, c in clients.items():
        got = c.frames_from(defendant_id, "audio") - heard_before[role]
        assert got >= 0.7 * sent and sent >= 0.5 * AUDIO_FRAMES_PER_S * span, (role, got, sent)
    # One subscriber's weak link does not make the healthy publishers send keyframes.
    assert requests <= 0.3, requests

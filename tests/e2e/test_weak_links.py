"""A defendant in real Chromium behind a weak link still hears the court, and is heard by it
(issue 16).

Chromium runs inside a network namespace (`ip netns exec` in front of Debian's binary) whose
downlink is a `tc tbf` bottleneck; the judge, the lawyer and the prosecutor are aiortc peers
publishing what a webcam and a browser send (pre-encoded 640x360 VP8 at ~800 kbit/s, Opus at
32 kbit/s). What the page hears is read from its own RTCPeerConnection's statistics.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.clients import HearingClient
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Pages,
    device_check_shown,
    pass_device_check,
    wait_for_state,
)
from tests.faults import UPLINK, NetworkNamespace
from tests.signaling.conftest import schedule
from tests.signaling.test_network_faults import netns, qualities, serve  # noqa: F401
from tests.signaling.test_recording import command
from tests.signaling.test_weak_links import loops, publishers  # noqa: F401
from web.keys import HUB
from web.loadtest.encoded import PreEncodedAudio, PreEncodedVideo

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.timeout(240),
    pytest.mark.alone,  # measures media in real time: `make test` runs it on its own
]

SETTLE_S = 6.0
WINDOW_S = 10.0

# The page's inbound audio and video so far, from its RTCPeerConnection.
INBOUND = """async () => {
  const pc = window.tingshen.pc;
  const out = {audioPackets: 0, audioLost: 0, framesDecoded: 0, state: pc && pc.connectionState};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "audio") {
      out.audioPackets += s.packetsReceived || 0;
      out.audioLost += Math.max(0, s.packetsLost || 0);
    }
    if (s.kind === "video") out.framesDecoded += s.framesDecoded || 0;
  });
  return out;
}"""


BrowserIn = Callable[..., Awaitable[Browser]]


@pytest.fixture
async def browser_in(netns: NetworkNamespace, tmp_path: Path  # noqa: F811
                     ) -> AsyncIterator[BrowserIn]:
    """Start Chromium inside the namespace (`inside=False`: outside it, on the server's side
    of the link), for the server at `origin`: everything it sends and receives crosses the
    link (Playwright talks to it over a pipe, which `ip netns exec` leaves alone). The server
    is reached at an address of the namespace's link, not localhost: Chromium is told to
    treat that origin as secure, or the page would get no camera or microphone (a court
    serves pages over https)."""
    wrapper = tmp_path / "chromium-in-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(netns.exec_args(str(CHROMIUM)))} "$@"\n')
    wrapper.chmod(0o755)
    browsers: list[Browser] = []
    async with async_playwright() as playwright:

        async def launch(origin: str, inside: bool = True) -> Browser:
            browser = await playwright.chromium.launch(
                executable_path=str(wrapper if inside else CHROMIUM), headless=True,
                args=[*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"])
            browsers.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in browsers:
                await browser.close()


async def defendant_in_session(
    pages: Pages, hearing: Any, client: Any, admin: Any, media: Any, participants: Any,
    narrow: Callable[[], Awaitable[None]],
) -> tuple[Page, dict[str, HearingClient]]:
    """The defendant's page in the namespace, the three publishers, the link narrowed by
    `narrow`, and the hearing in session. The page itself loads before the link narrows (at
    300 kbit/s its scripts alone take many seconds), and before the publishers start: their
    media share this process's event loop with the server, which on a busy machine served the
    page's scripts too late. The media start on the weak link."""
    page = await pages.open(f"{hearing.base_url}/join/{hearing.tokens['defendant']}",
                            "defendant")
    await device_check_shown(page, 60_000)
    clients = await publishers(client, admin, hearing, media, participants)
    await narrow()
    await pass_device_check(page)
    await wait_for_state(page, "live", 40_000)
    await command(clients["judge"], "open", "open")
    await command(clients["judge"], "start", "in_session")
    return page, clients


@pytest.mark.parametrize("kbit", [1000, 300])
async def test_chromium_behind_a_weak_link_hears_the_court(
    kbit, serve, netns, browser_in, participants, admin, clock, loops  # noqa: F811
):
    client = await serve(15.0)
    hearing = await schedule(client, admin, clock, auto_admit=True)
    pages = Pages(await browser_in(hearing.base_url))
    try:
        page, clients = await defendant_in_session(
            pages, hearing, client, admin, loops, participants,
            lambda: netns.limit_rate(kbit))
        judge = clients["judge"]
        defendant_id = hearing.ids["defendant"]
        await judge.wait_for(lambda: any(q["videos_held"] >= 1
                                         for q in qualities(judge, defendant_id)), within=40)
        # The page says why a tile has no picture.
        await page.locator(".tag.held").first.wait_for(timeout=20_000)
        settled = time.monotonic() + SETTLE_S
        await judge.wait_for(lambda: time.monotonic() >= settled, within=SETTLE_S + 5)
        first: dict[str, Any] = await page.evaluate(INBOUND)
        sent_first = sum(c.audio.sent for c in clients.values())
        started = time.monotonic()
        await judge.wait_for(lambda: time.monotonic() >= started + WINDOW_S,
                             within=WINDOW_S + 5)
        last: dict[str, Any] = await page.evaluate(INBOUND)
        sent = sum(c.audio.sent for c in clients.values()) - sent_first
        span = time.monotonic() - started
    finally:
        await pages.aclose()
    received = last["audioPackets"] - first["audioPackets"]
    lost = last["audioLost"] - first["audioLost"]
    heard = received / max(1, received + lost)
    print(f"Chromium at {kbit} kbit/s: {received} audio packets in {span:.0f} s, {lost} lost "
          f"({heard:.1%} heard); {last['framesDecoded'] - first['framesDecoded']} frames")
    assert last["state"] == "connected"
    # Three voices at 50 packets a second each: they arrived, and (nearly) none was lost.
    # (What the publishers sent in the window: on a busy machine their process, which is the
    # server's too, sends late, and what was not sent cannot be heard.) The two counts are
    # read in two processes at moments a busy machine moves apart (the aiortc test saw 90.2%
    # with its goal met), so this only shows the court's audio was forwarded; the goal is held
    # on what the link delivered, below.
    assert sent >= 0.5 * 3 * 50 * span, (sent, span)
    assert received >= 0.85 * sent, (received, sent, span)
    # Issue 16's goal is 99% at 1 Mbit/s and 95% at 300 kbit/s. Chromium measured 95.8-99.4%
    # at 300 kbit/s on a quiet machine; the probes that look for room cost a little, more
    # when the machine is busy, hence the margin here (the aiortc test holds 95%).
    assert heard >= (0.99 if kbit >= 1000 else 0.93), heard


# The page's outbound audio packets and video bitrate so far.
OUTBOUND = """async () => {
  const pc = window.tingshen.pc;
  const out = {audioSent: 0, videoBytes: 0, state: pc && pc.connectionState};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "outbound-rtp") return;
    if (s.kind === "audio") out.audioSent += s.packetsSent || 0;
    if (s.kind === "video") out.videoBytes += s.bytesSent || 0;
  });
  return out;
}"""


async def test_chromium_on_a_weak_uplink_is_heard_by_the_court(
    serve, netns, browser_in, participants, admin, clock, loops  # noqa: F811
):
    """The defendant's own uplink is 300 kbit/s: their browser's video gives way (the server's
    feedback reaches it) and their voice reaches the court."""
    client = await serve(15.0)
    hearing = await schedule(client, admin, clock, auto_admit=True)
    pages = Pages(await browser_in(hearing.base_url))
    try:
        page, clients = await defendant_in_session(
            pages, hearing, client, admin, loops, participants,
            lambda: netns.limit_rate(300, direction=UPLINK))
        judge = clients["judge"]
        defendant_id = hearing.ids["defendant"]
        await judge.wait_for(lambda: judge.frames_from(defendant_id, "audio") > 100, within=40)
        settled = time.monotonic() + 2 * SETTLE_S
        await judge.wait_for(lambda: time.monotonic() >= settled, within=2 * SETTLE_S + 5)
        first: dict[str, Any] = await page.evaluate(OUTBOUND)
        heard_first = {r: c.frames_from(defendant_id, "audio") for r, c in clients.items()}
        started = time.monotonic()
        await judge.wait_for(lambda: time.monotonic() >= started + WINDOW_S,
                             within=WINDOW_S + 5)
        last: dict[str, Any] = await page.evaluate(OUTBOUND)
        heard = {r: c.frames_from(defendant_id, "audio") - heard_first[r]
                 for r, c in clients.items()}
        span = time.monotonic() - started
    finally:
        await pages.aclose()
    sent = last["audioSent"] - first["audioSent"]
    video_kbps = (last["videoBytes"] - first["videoBytes"]) * 8 / span / 1000
    print(f"Chromium on a 300 kbit/s uplink: sent {sent} audio packets in {span:.0f} s, video "
          f"at {video_kbps:.0f} kbit/s; the others heard {heard}")
    assert last["state"] == "connected"
    assert sent >= 0.8 * 50 * span, (sent, span)
    # The browser's video gave way to the link (it started at several hundred kbit/s).
    assert video_kbps < 300, video_kbps
    # Their voice reached each of the others: 97.8-100% measured here. The window's two ends
    # are read in two processes (the page's count, the test's), whose packets in flight a
    # busy machine delays differently, hence 93%.
    for role, got in heard.items():
        assert got >= 0.93 * sent, (role, got, sent)


# The page's own video sender: the scalability mode it was given and what it sends.
PUBLISHED = """async () => {
  const pc = window.tingshen.pc;
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === "video");
  if (!sender) return null;
  const out = {mode: sender.getParameters().encodings.map((e) => e.scalabilityMode || null),
               bytesSent: 0, framesEncoded: 0};
  (await sender.getStats()).forEach((s) => {
    if (s.type !== "outbound-rtp") return;
    out.bytesSent += s.bytesSent || 0;
    out.framesEncoded += s.framesEncoded || 0;
    out.scalabilityMode = s.scalabilityMode;
  });
  return out;
}"""

# Frames the page decoded so far of each participant's video, by the slots the server gave.
DECODED = """async () => {
  const pc = window.tingshen.pc;
  const byMid = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") byMid[s.mid] = s.framesDecoded || 0;
  });
  const out = {};
  for (const slot of window.tingshen.slots) {
    if (slot.kind === "video" && slot.participant_id) {
      out[slot.participant_id] = byMid[slot.mid] || 0;
    }
  }
  return out;
}"""


def live_media(client: Any, hearing: Any) -> Any:
    """The hearing's media room in the server (this process)."""
    return client.server.app[HUB].hearings[hearing.id].media


@pytest.mark.timeout(360)
async def test_chromium_behind_a_weak_link_sees_the_judge_at_a_lower_frame_rate(
    serve, netns, browser_in, participants, admin, clock, loops  # noqa: F811
):
    """The judge publishes from Chromium (three temporal layers), the clerk, the lawyer and
    the prosecutor from aiortc (videos without layers, ~800 kbit/s each): behind 1 Mbit/s
    the defendant's Chromium, which before got no video at all (four voices and one whole
    video do not fit), gets the judge's at a lower frame rate, and still hears the court."""
    client = await serve(15.0)
    hearing = await schedule(client, admin, clock, auto_admit=True)
    tokens = dict(hearing.tokens)
    for name, role in (("Clerk Sun", "clerk"), ("Prosecutor Zhao", "prosecutor")):
        r = await client.post(f"/api/v1/hearings/{hearing.id}/participants", headers=admin,
                              json={"name": name, "role": role, "location": "courtroom"})
        assert r.status == 201, await r.text()
        tokens[role] = (await r.json())["token"]
    court = Pages(await browser_in(hearing.base_url, inside=False))
    pages = Pages(await browser_in(hearing.base_url))
    try:
        judge_page = await court.open(f"{hearing.base_url}/join/{tokens['judge']}", "judge")
        page = await pages.open(f"{hearing.base_url}/join/{tokens['defendant']}", "defendant")
        await device_check_shown(judge_page, 60_000)
        await device_check_shown(page, 60_000)
        clients = {}
        for i, role in enumerate(("clerk", "lawyer", "prosecutor")):
            c = HearingClient(hearing.base_url, role)
            c.audio = PreEncodedAudio(loops.audio, i * len(loops.audio) // 3)
            c.video_source = (lambda i=i: PreEncodedVideo(loops.video,
                                                          i * len(loops.video) // 3))
            participants.append(c)
            await c.join(tokens[role])
            clients[role] = c
        clerk = clients["clerk"]
        await pass_device_check(judge_page)
        await wait_for_state(judge_page, "live", 40_000)
        await netns.limit_rate(1000)
        await pass_device_check(page)
        await wait_for_state(page, "live", 40_000)
        await command(clerk, "open", "open")
        await command(clerk, "start", "in_session")
        judge_id, defendant_id = hearing.ids["judge"], hearing.ids["defendant"]
        media = live_media(client, hearing)
        judge_video = media.peers[judge_id].publications["video"]
        # Debian's Chromium takes L1T3 for VP8, and the frames reach the server in layers.
        await clerk.wait_for(lambda: all(fps > 0 for fps in judge_video.layer_fps), within=40)
        published = await judge_page.evaluate(PUBLISHED)
        assert published is not None and published["mode"] == ["L1T3"], published
        layer_fps = [round(f, 1) for f in judge_video.layer_fps]

        def reduced(q: dict[str, Any]) -> bool:
            return any(v["participant_id"] == judge_id for v in q["videos_reduced"])

        # The court is told, twice running (the link settled: a probe for more that finds the
        # limit may hold everything for up to 40 s), and the page says why the picture is slow.
        try:
            await clerk.wait_for(lambda: len(seen := qualities(clerk, defendant_id)) >= 2
                                 and all(reduced(q) for q in seen[-2:]), within=200)
        except TimeoutError as e:
            saw = [(q["downlink_kbps"], q["videos_held"], q["videos_reduced"])
                   for q in qualities(clerk, defendant_id)]
            raise AssertionError(
                f"the court never saw the judge's video reduced twice running: {saw}") from e
        await page.locator(".tag.reduced").first.wait_for(timeout=20_000)
        first: dict[str, Any] = await page.evaluate(INBOUND)
        decoded_first: dict[str, int] = await page.evaluate(DECODED)
        encoded_first = (await judge_page.evaluate(PUBLISHED))["framesEncoded"]
        # The defendant's slot that carries the judge's video, in the server.
        slot = next(s.track for s in media.peers[defendant_id].slots
                    if s.track.source is judge_video)
        thinned_first = slot.frames_thinned
        sent_first = sum(c.audio.sent for c in clients.values())
        mark = len(clerk.messages)
        started = time.monotonic()
        await clerk.wait_for(lambda: time.monotonic() >= started + WINDOW_S,
                             within=WINDOW_S + 5)
        last: dict[str, Any] = await page.evaluate(INBOUND)
        decoded_last: dict[str, int] = await page.evaluate(DECODED)
        encoded = (await judge_page.evaluate(PUBLISHED))["framesEncoded"] - encoded_first
        thinned = slot.frames_thinned - thinned_first
        sent = sum(c.audio.sent for c in clients.values()) - sent_first
        span = time.monotonic() - started
        judge_kbps = round(judge_video.bps / 1000)
        reports = qualities(clerk, defendant_id, mark)
    finally:
        await pages.aclose()
        await court.aclose()
    received = last["audioPackets"] - first["audioPackets"]
    lost = last["audioLost"] - first["audioLost"]
    heard = received / max(1, received + lost)
    judge_fps = (decoded_last.get(judge_id, 0) - decoded_first.get(judge_id, 0)) / span
    others_fps = sum(n - decoded_first.get(pid, 0) for pid, n in decoded_last.items()
                     if pid != judge_id) / span
    judge_sent_fps = encoded / span
    print(f"Chromium at 1000 kbit/s: the judge's video at {judge_fps:.1f} fps (published at "
          f"{judge_sent_fps:.1f} fps and {judge_kbps} kbit/s, layers 0/1/2 at {layer_fps} fps; "
          f"{thinned} of {encoded} frames left out for this link), "
          f"the others' at {others_fps:.1f} fps; audio {received} packets, {lost} lost "
          f"({heard:.1%} heard); the court saw "
          f"{[(q['downlink_kbps'], q['videos_held'], q['videos_reduced']) for q in reports]}")
    assert last["state"] == "connected"
    # The judge's picture moves, with upper-layer frames left out for this link: all the
    # window at half or a quarter of the frame rate (measured: 5-10 fps of 19-20, 30-65% of
    # the frames left out), or part of it: the judge's browser publishes at what its own
    # estimate and CPU allow (80-900 kbit/s seen here), and a video that fits whole is sent
    # whole. The videos without layers are held.
    assert judge_fps >= 2.0, judge_fps
    assert thinned > 0, (thinned, encoded)
    assert others_fps < 1.0, others_fps
    # Audio first, still: what the link delivered of the four voices.
    assert sent >= 0.5 * 3 * 50 * span, (sent, span)
    assert heard >= 0.99, heard

"""What people see when the worker holding their hearing dies: real Chromium pages against
`tingshen serve --workers 2` (PostgreSQL, redis-server), the holder killed with SIGKILL. Each
page says it is reconnecting and, untouched, comes back to the same hearing in session, with the
other party's video, now held by another worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from playwright.async_api import Page

from tests.e2e.conftest import Pages, pass_device_check
from tests.e2e.test_join import INBOUND, admit_in_ui, wait_state
from tests.web import test_workers as workers

# The real two-worker cluster of tests/web/test_workers.py.
cluster = workers.cluster

LOST = "连接中断，正在重新连接…"
MOVED = "庭审正在转到另一台服务器，正在重新连接…"
BACK_WITHIN_S = 30.0
MS = 1000
# A page's socket lands on either worker (SO_REUSEPORT); this many tries to place it.
PLACEMENT_TRIES = 12

# Every text the banner shows, in order, and the code that closed the socket of the moment.
WATCH = """() => {
  window.__failover = {banners: [], closes: []};
  const banner = document.getElementById("reconnecting");
  const note = () => {
    const text = banner.hidden ? "" : document.getElementById("reconnecting-text").textContent;
    const seen = window.__failover.banners;
    if (seen[seen.length - 1] !== text) seen.push(text);
  };
  new MutationObserver(note).observe(banner,
    {attributes: true, childList: true, subtree: true, characterData: true});
  window.tingshen.ws.addEventListener("close", (e) => window.__failover.closes.push(e.code));
  window.__pcBefore = window.tingshen.pc;
}"""

# In session and recording, as the page shows it.
RECORDING = """() => document.body.dataset.state === "live"
  && document.body.dataset.hearingState === "in_session"
  && !document.getElementById("recording").hidden
  && document.getElementById("recording-label").textContent === "录制中"
"""

# Back in the room, by itself: welcomed on a new socket, no banner, and a new peer connection
# playing the other party's video.
BACK = """pid => {
  const video = document.querySelector(`figure.remote[data-participant-id="${pid}"] video`);
  return window.tingshen.connected && window.tingshen.pc
    && window.tingshen.pc !== window.__pcBefore
    && window.tingshen.pc.connectionState === "connected"
    && document.getElementById("reconnecting").hidden
    && !!video && !video.paused && video.videoWidth > 0
    && !video.closest("figure").classList.contains("no-video");
}"""


class RelayWatch:
    """Which join tokens a front relays to a holder: the `open` messages on the processes'
    channels (signaling/cluster.py), read by a subscriber of its own."""

    def __init__(self, url: str) -> None:
        self.redis = aioredis.from_url(url, decode_responses=True)
        self.tokens: list[str] = []
        self._opened = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe("tingshen:to:*")
        self._task = asyncio.create_task(self._read(pubsub))

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                data = json.loads(message["data"])
                if data.get("t") == "open":
                    async with self._opened:
                        self.tokens.append(json.loads(data["text"]).get("token", ""))
                        self._opened.notify_all()
        finally:
            await pubsub.aclose()

    def count(self, token: str) -> int:
        return self.tokens.count(token)

    async def opened_since(self, token: str, before: int, within: float) -> bool:
        """Whether `token` is relayed more than `before` times, waiting up to `within`."""
        async with self._opened:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._opened.wait_for(lambda: self.count(token) > before), within)
        return self.count(token) > before

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()


async def welcomed(page: Page) -> None:
    await page.wait_for_function("() => window.tingshen.connected", timeout=20 * MS)


async def relayed(page: Page, relays: RelayWatch, token: str, opened_before: int) -> bool:
    """Whether the page's current socket is relayed to the holder (or served by it)."""
    await welcomed(page)
    # The front publishes `open` before the holder answers with `welcome`; a little grace.
    return await relays.opened_since(token, opened_before, 0.5)


async def place(page: Page, relays: RelayWatch, token: str, want_relayed: bool) -> int:
    """Drop the page's socket until it reconnects (by itself) to the worker wanted; returns
    how many drops that took."""
    before = 0  # the page's first socket: no `open` of its token before it
    for drops in range(PLACEMENT_TRIES):
        if drops:
            before = relays.count(token)
            await page.evaluate("() => { window.__old = window.tingshen.ws;"
                                " window.tingshen.ws.close(); }")
            await page.wait_for_function(
                "() => window.tingshen.ws && window.tingshen.ws !== window.__old"
                " && window.tingshen.connected", timeout=20 * MS)
        if await relayed(page, relays, token, before) == want_relayed:
            return drops
    raise AssertionError(f"the page never landed {'off' if want_relayed else 'on'} the holder")


async def video_flows(page: Page, other_id: str) -> None:
    """The other party's tile plays, and its decoded frames keep growing."""
    await page.wait_for_function(BACK, arg=other_id, timeout=20 * MS)
    start = await page.evaluate(INBOUND)
    await page.wait_for_function(
        f"() => ({INBOUND})().then(s => s.framesDecoded >= {start['framesDecoded']} + 15)",
        timeout=10 * MS, polling=250)


async def enter(pages: Pages, base: str, token: str, name: str) -> Page:
    page = await pages.open(f"{base}/join/{token}", name, locale="zh-CN")
    await pass_device_check(page)
    return page


async def test_pages_come_back_by_themselves_when_the_holder_is_killed(
    cluster: workers.Cluster, pages: Pages
) -> None:
    began = time.monotonic()
    relays = RelayWatch(cluster.env["TINGSHEN_REDIS_URL"])
    await relays.start()
    try:
        async with aiohttp.ClientSession() as http:
            api = workers.Api(http, cluster.base, workers.ADMIN_TOKEN)
            hearing_id, tokens, ids = await workers.schedule(api)
            # The judge comes first: the worker their socket reaches takes the hearing.
            judge = await enter(pages, cluster.base, tokens["judge"], "judge")
            await wait_state(judge, "live")
            holder = cluster.holder(hearing_id)
            assert holder in cluster.processes()
            lawyer = await enter(pages, cluster.base, tokens["lawyer"], "lawyer")
            await wait_state(lawyer, "lobby")
            await admit_in_ui(judge, ids["lawyer"])
            await wait_state(lawyer, "live")
            # One page on the holder, one relayed through the other worker: both ways of
            # losing the holder are seen.
            drops = await place(judge, relays, tokens["judge"], want_relayed=False)
            drops += await place(lawyer, relays, tokens["lawyer"], want_relayed=True)
            assert cluster.holder(hearing_id) == holder

            await api.call("POST", f"/hearings/{hearing_id}/open")
            await api.call("POST", f"/hearings/{hearing_id}/start")
            for page, other in ((judge, "lawyer"), (lawyer, "judge")):
                await video_flows(page, ids[other])
                await page.wait_for_function(RECORDING, timeout=20 * MS)
            for page in (judge, lawyer):
                await page.evaluate(WATCH)

            async def both_recording() -> bool:
                listing = await api.call("GET", f"/hearings/{hearing_id}/recordings")
                return len([i for i in listing["items"] if i["kind"] == "participant"
                            and i["status"] == "recording"]) == 2

            # Killed while both files are being written (the holder may lag the page).
            await workers.wait(both_recording, 30, "both participants recorded")

            processes = cluster.processes()
            survivor = next(p for p in processes if p != holder)
            killed_at = time.monotonic()
            # SIGKILL: no drain, no goodbye. The judge's socket dies with the worker; the
            # lawyer's front notices the holder's silence and closes with 4503.
            os.kill(processes[holder], signal.SIGKILL)

            for page in (judge, lawyer):
                await page.locator("#reconnecting").wait_for(state="visible", timeout=15 * MS)
            back_after: dict[str, float] = {}

            async def comes_back(page: Page, name: str, other_id: str) -> None:
                await video_flows(page, other_id)
                back_after[name] = time.monotonic() - killed_at

            await asyncio.wait_for(asyncio.gather(
                comes_back(judge, "judge", ids["lawyer"]),
                comes_back(lawyer, "lawyer", ids["judge"])), BACK_WITHIN_S + 10)
            assert max(back_after.values()) <= BACK_WITHIN_S, back_after

            seen = {name: await page.evaluate("window.__failover")
                    for name, page in (("judge", judge), ("lawyer", lawyer))}
            # Still the same documents (no reload), each told what happened, in Chinese.
            assert all(seen.values()), seen
            assert seen["judge"]["closes"][0] == 1006, seen
            assert next(b for b in seen["judge"]["banners"] if b) == LOST, seen
            assert seen["lawyer"]["closes"][0] == 4503, seen
            assert MOVED in seen["lawyer"]["banners"], seen
            for name in seen:
                assert seen[name]["banners"][-1] == "", seen

            # The hearing is held by a living worker that is not the one killed.
            new_holder = cluster.holder(hearing_id)
            living = cluster.processes()
            assert new_holder is not None and new_holder != holder, new_holder
            assert new_holder in living and holder not in living, (new_holder, living)
            # The hearing was interrupted (whichever worker found it first): in recess until
            # the court decides; both pages say why, and the judge resumes from the console.
            hearing = await api.call("GET", f"/hearings/{hearing_id}")
            assert hearing["state"] == "recess" and hearing["interrupted_at"], hearing
            for page in (judge, lawyer):
                await page.locator("#interrupted").wait_for(state="visible", timeout=10 * MS)
            assert "继续开庭" in await judge.locator("#interrupted").inner_text()
            assert "等待法官" in await lawyer.locator("#interrupted").inner_text()
            await judge.locator('[data-command="resume"]').click()
            for page in (judge, lawyer):
                await page.locator("#interrupted").wait_for(state="hidden", timeout=10 * MS)
                await page.wait_for_function(RECORDING, timeout=10 * MS)
            hearing = await api.call("GET", f"/hearings/{hearing_id}")
            assert hearing["state"] == "in_session" and hearing["interrupted_at"] is None
    finally:
        await relays.aclose()
    assert not [line for lines in pages.console.values() for line in lines
                if line.startswith("pageerror")], pages.console
    print("failover in Chromium: back after "
          + ", ".join(f"{name} {s:.1f} s" for name, s in back_after.items())
          + f"; held by {'the surviving' if new_holder == survivor else 'the restarted'} "
          f"worker; {drops} socket drop(s) to place the pages; banners {seen}; "
          f"whole test {time.monotonic() - began:.0f} s")

"""The prison terminal kiosk (/terminal) in real headless Chromium against the real server."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page

from courtrooms.invitations import JOIN_WINDOW_LEAD
from tests.conftest import FakeClock
from tests.e2e.conftest import Pages, save_screenshot
from tests.web.support import API, call, iso

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TIMEOUT_MS = 20_000
KEY_STORAGE = "tingshen.deviceKey"
POLL_S = 15  # terminal.js asks the server this often
JOIN_URL = re.compile(r"/join/([A-Za-z0-9_-]+)\?kiosk=1$")


@pytest.fixture
def clock() -> FakeClock:
    # The page counts down with the browser's clock: the server's must agree with it.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@dataclass
class Terminal:
    id: str
    device_key: str
    hearing_id: str | None = None
    defendant_id: str | None = None


async def post(client: TestClient, admin: dict[str, str], path: str,
               body: dict[str, Any]) -> dict[str, Any]:
    reply = await call(client, "POST", API + path, json=body, headers=admin)
    assert reply.status == 201, reply.text
    return reply.json


async def register(client: TestClient, admin: dict[str, str],
                   start: datetime | None = None) -> Terminal:
    """A prison terminal, and when `start` is given a hearing with the defendant on it."""
    made = await post(client, admin, "/prison-terminals",
                      {"name": "第三会见室终端", "prison": "北京市第二监狱"})
    terminal = Terminal(made["id"], made["device_key"])
    if start is not None:
        await add_hearing(client, admin, terminal, start)
    return terminal


async def add_hearing(client: TestClient, admin: dict[str, str], terminal: Terminal,
                      start: datetime) -> None:
    hearing = await post(client, admin, "/hearings", {
        "case_number": "(2026)京0105刑初321号", "title": "李某诈骗案", "kind": "arraignment",
        "scheduled_start": iso(start), "scheduled_end": iso(start + timedelta(hours=2)),
    })
    defendant = await post(client, admin, f"/hearings/{hearing['id']}/participants", {
        "name": "李某", "role": "defendant", "location": "prison", "terminal_id": terminal.id,
    })
    terminal.hearing_id, terminal.defendant_id = hearing["id"], defendant["id"]


async def wait_state(page: Page, state: str, timeout_ms: float = TIMEOUT_MS) -> None:
    await page.wait_for_function("s => document.body.dataset.state === s", arg=state,
                                 timeout=timeout_ms)


async def body_state(page: Page) -> str | None:
    return await page.evaluate("document.body.dataset.state")


async def enter_key(page: Page, key: str) -> None:
    await page.fill("#device-key", key)
    await page.click("#setup-submit")


async def stored_key(page: Page) -> str | None:
    return await page.evaluate("k => localStorage.getItem(k)", KEY_STORAGE)


async def test_terminal_counts_down_to_its_hearing(
    client: TestClient, admin: dict[str, str], clock: FakeClock, pages: Pages
) -> None:
    start = clock.now + timedelta(hours=2)
    terminal = await register(client, admin, start)
    page = await pages.open(str(client.make_url("/terminal")), "terminal")
    await wait_state(page, "setup")
    assert await page.is_visible("#device-key")
    await enter_key(page, terminal.device_key)
    await wait_state(page, "waiting")
    assert await stored_key(page) == terminal.device_key

    assert await page.inner_text("#terminal-name") == "第三会见室终端"
    assert await page.inner_text("#prison") == "北京市第二监狱"
    assert await page.inner_text("#hearing-title") == "李某诈骗案"
    assert await page.inner_text("#case-number") == "(2026)京0105刑初321号"
    assert await page.inner_text("#hearing-kind") == "远程提讯"
    assert await page.inner_text("#participant-name") == "李某（被告人）"
    # In the court's local time (Beijing), whatever the terminal's own clock says.
    local = await page.evaluate(
        "iso => new Date(iso).toLocaleTimeString('zh-CN',"
        " {hour: '2-digit', minute: '2-digit', hourCycle: 'h23',"
        " timeZone: 'Asia/Shanghai'})", iso(start))
    assert local in await page.inner_text("#scheduled-start")
    # The join window opens half an hour before the start: about 1:30:00 from now.
    countdown = await page.inner_text("#countdown")
    assert re.fullmatch(r"01:(29|30):\d\d", countdown), countdown
    seconds = int(await page.get_attribute("#countdown", "data-seconds") or 0)
    opens_in = (start - JOIN_WINDOW_LEAD - datetime.now(UTC)).total_seconds()
    assert abs(seconds - opens_in) <= 3, (seconds, opens_in)
    await page.wait_for_function(
        "s => Number(document.getElementById('countdown').dataset.seconds) < s", arg=seconds,
        timeout=5_000)
    assert await page.inner_text("#clock-time")
    assert "距离进入庭审还有" in await page.inner_text("#waiting")
    await save_screenshot(page, "terminal")

    # Kiosk discipline: the detainee cannot change the language; only the technician setting
    # the terminal up can (the choice is kept in this browser), and the page, dynamic parts
    # included, follows it.
    assert not await page.is_visible("#lang-switch")
    await page.evaluate("localStorage.setItem('tingshen.lang', 'en')")
    await page.reload()
    await wait_state(page, "waiting")
    assert not await page.is_visible("#lang-switch")
    assert await page.inner_text("#participant-name") == "李某 (Defendant)"
    assert await page.inner_text("#hearing-kind") == "Remote arraignment"
    assert "Time until you join" in await page.inner_text("#waiting")
    assert pages.errors() == {"terminal": []}


async def test_terminal_joins_by_itself_when_the_window_opens(
    client: TestClient, admin: dict[str, str], clock: FakeClock, pages: Pages
) -> None:
    terminal = await register(client, admin)
    page = await pages.open(str(client.make_url("/terminal")), "terminal")
    await enter_key(page, terminal.device_key)
    await wait_state(page, "idle")
    # The window opens a few seconds after the page shows the hearing: the page must ask again
    # right then, not at its next regular poll.
    opens_in_s = 8
    clock.now = datetime.now(UTC).replace(microsecond=0)
    await add_hearing(client, admin, terminal,
                      clock.now + JOIN_WINDOW_LEAD + timedelta(seconds=opens_in_s))
    await page.reload()
    await wait_state(page, "waiting")
    shown_at = time.monotonic()
    assert 0 < int(await page.get_attribute("#countdown", "data-seconds") or 0) <= opens_in_s
    # The server's clock moves on with the browser's.
    clock.advance(timedelta(seconds=opens_in_s))
    await page.wait_for_url(JOIN_URL, timeout=(POLL_S - 3) * 1000)
    assert time.monotonic() - shown_at < POLL_S - 2
    token = JOIN_URL.search(page.url).group(1)
    grant = await call(client, "GET", f"{API}/join/{token}")
    assert grant.status == 200 and grant.json["participant"]["id"] == terminal.defendant_id


async def test_terminal_with_an_open_window_goes_straight_to_the_hearing(
    client: TestClient, admin: dict[str, str], clock: FakeClock, pages: Pages
) -> None:
    terminal = await register(client, admin, clock.now + timedelta(minutes=10))
    page = await pages.open(str(client.make_url("/terminal")), "terminal")
    await page.evaluate("([k, v]) => localStorage.setItem(k, v)",
                        [KEY_STORAGE, terminal.device_key])
    await page.reload()
    await page.wait_for_url(JOIN_URL, timeout=TIMEOUT_MS)
    token = JOIN_URL.search(page.url).group(1)
    grant = await call(client, "GET", f"{API}/join/{token}")
    assert grant.status == 200 and grant.json["participant"]["id"] == terminal.defendant_id
    # There the device check runs as a kiosk's and passes by itself: nobody has to touch it.
    await page.wait_for_selector("#device-check .dc-kiosk #dc-countdown:not([hidden])",
                                 timeout=TIMEOUT_MS)
    await page.wait_for_function(
        "() => document.getElementById('device-check').childElementCount === 0"
        " && document.body.dataset.state !== 'device-check'", timeout=TIMEOUT_MS)
    # Kiosk discipline in the hearing (here its lobby): the detainee has no camera switch and
    # no language switch; the microphone button stays (the court can still mute).
    await page.wait_for_function(
        "() => document.getElementById('btn-camera').hidden"
        " && !document.getElementById('btn-mute').hidden", timeout=TIMEOUT_MS)
    assert not await page.is_visible("#lang-switch")


async def test_a_wrong_key_is_refused_and_a_technician_can_clear_the_right_one(
    client: TestClient, admin: dict[str, str], pages: Pages
) -> None:
    terminal = await register(client, admin)
    page = await pages.open(str(client.make_url("/terminal")), "terminal")
    await wait_state(page, "setup")
    await enter_key(page, terminal.device_key + "x")
    await page.wait_for_selector("#setup-error:not([hidden])", timeout=TIMEOUT_MS)
    assert "设备密钥无效" in await page.inner_text("#setup-error")
    assert await body_state(page) == "setup" and await stored_key(page) is None
    await enter_key(page, "设备密钥")  # typed in the wrong input mode
    assert "英文字母" in await page.inner_text("#setup-error")

    await enter_key(page, f"  {terminal.device_key} ")
    await wait_state(page, "idle")
    assert "当前没有安排的庭审" in await page.inner_text("#idle")
    assert await page.is_hidden("#setup-error")
    assert await page.inner_text("#terminal-name") == "第三会见室终端"
    await page.reload()
    await wait_state(page, "idle")

    # A short press does nothing; five seconds on the terminal's name asks to clear the key.
    name = page.locator("#terminal-name")
    await name.hover()
    await page.mouse.down()
    await asyncio.sleep(1)
    await page.mouse.up()
    await asyncio.sleep(4.5)
    assert not await page.is_visible("#reset-dialog")
    await page.mouse.down()
    await page.wait_for_selector("#reset-dialog", state="visible", timeout=8_000)
    await page.mouse.up()
    await page.click("#reset-confirm")
    await wait_state(page, "setup")
    assert await stored_key(page) is None


async def test_a_replaced_key_sends_the_terminal_back_to_setup(
    client: TestClient, admin: dict[str, str], pages: Pages
) -> None:
    terminal = await register(client, admin)
    page = await pages.open(str(client.make_url("/terminal")), "terminal")
    await enter_key(page, terminal.device_key)
    await wait_state(page, "idle")
    rotated = await call(client, "POST", f"{API}/prison-terminals/{terminal.id}/rotate-key",
                         headers=admin)
    assert rotated.status == 200, rotated.text
    await page.reload()
    await wait_state(page, "setup")
    assert "已失效" in await page.inner_text("#setup-error")
    assert await stored_key(page) is None


async def test_the_kiosk_keeps_trying_when_the_server_is_unreachable(
    client: TestClient, admin: dict[str, str], pages: Pages
) -> None:
    terminal = await register(client, admin)
    page = await pages.open(str(client.make_url("/terminal")), "terminal")
    await enter_key(page, terminal.device_key)
    await wait_state(page, "idle")
    await page.route("**/api/v1/terminal/assignment", lambda route: route.abort())
    await page.reload()
    await page.wait_for_selector("#net-note:not([hidden])", timeout=TIMEOUT_MS)
    assert "正在重新连接" in await page.inner_text("#net-note")
    assert await stored_key(page) == terminal.device_key
    await page.unroute("**/api/v1/terminal/assignment")
    # The next try comes after a short backoff, and the note goes.
    await wait_state(page, "idle")
    await page.wait_for_selector("#net-note", state="hidden", timeout=TIMEOUT_MS)


async def test_nothing_on_the_kiosk_leads_away(
    client: TestClient, admin: dict[str, str], pages: Pages
) -> None:
    page = await pages.open(str(client.make_url("/terminal")), "terminal")
    await wait_state(page, "setup")
    prevented = """([type, init, target]) => {
      const event = type === "contextmenu"
        ? new MouseEvent(type, { ...init, bubbles: true, cancelable: true })
        : new KeyboardEvent(type, { ...init, bubbles: true, cancelable: true });
      const node = target ? document.querySelector(target) : document.body;
      node.dispatchEvent(event);
      return event.defaultPrevented;
    }"""
    for key in ({"key": "F5"}, {"key": "Backspace"}, {"key": "ArrowLeft", "altKey": True},
                {"key": "r", "ctrlKey": True}, {"key": "BrowserBack"}, {"key": "F12"}):
        assert await page.evaluate(prevented, ["keydown", key, None]), key
    assert await page.evaluate(prevented, ["contextmenu", {}, None])
    # Typing the key stays possible.
    for key in ({"key": "Backspace"}, {"key": "v", "ctrlKey": True}, {"key": "a"}):
        assert not await page.evaluate(prevented, ["keydown", key, "#device-key"]), key
    assert await page.evaluate("getComputedStyle(document.body).userSelect") == "none"
    assert await page.locator("a").count() == 0

"""The device check (/static/devicecheck.js) in real headless Chromium with fake devices.

It runs on a page of its own (served by the real application, under its Content-Security-Policy)
that calls `deviceCheck()` the way the join page does and keeps what it resolves with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Page

from config import Settings
from tests.conftest import FakeClock
from tests.e2e.conftest import Pages, save_screenshot
from web.app import create_app
from web.pages import PAGE_HEADERS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TIMEOUT_MS = 20_000
HARNESS = "/test-harness/device-check"
HARNESS_HTML = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>设备检测</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/tingshen.css">
<link rel="stylesheet" href="/static/devicecheck.css"></head>
<body><button type="button" id="lang-switch" class="lang-switch" lang="en">English</button>
<section id="device-check"></section>
<script type="module" src="/static/i18n.js"></script>
<script type="module" src="/test-harness/files/harness.js"></script>
</body></html>"""
HARNESS_JS = """import { deviceCheck } from "/static/devicecheck.js";
const params = new URLSearchParams(location.search);
const container = document.getElementById("device-check");
deviceCheck(container, { kiosk: params.has("kiosk") }).then((stream) => {
  window.checked = stream;
  window.result = stream === null ? null : {
    audio: stream.getAudioTracks().map((t) => t.readyState),
    video: stream.getVideoTracks().map((t) => t.readyState),
  };
  document.body.dataset.result = stream === null ? "none" : "stream";
});
"""
# Under the page's CSP, Playwright may run functions in the page but not evaluate strings.
# getUserMedia refusing some kinds, as when the person blocked them in the browser.
DENY = """(() => {
  const deny = %s;
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const real = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints) => {
    if (deny.some((kind) => constraints[kind])) {
      throw new DOMException("Permission denied", "NotAllowedError");
    }
    return real(constraints);
  };
})();"""


@pytest.fixture
async def server(aiohttp_client: Any, settings: Settings, clock: FakeClock,
                 tmp_path: Path) -> TestClient:
    """The real application, plus the test page that runs the device check."""
    root = tmp_path / "harness"
    root.mkdir()
    (root / "index.html").write_text(HARNESS_HTML, encoding="utf-8")
    (root / "harness.js").write_text(HARNESS_JS, encoding="utf-8")
    app = create_app(settings, clock=clock)

    async def harness(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(root / "index.html", headers=PAGE_HEADERS)

    app.router.add_get(HARNESS, harness)
    app.router.add_static("/test-harness/files", root)
    return await aiohttp_client(app)


async def open_check(server: TestClient, pages: Pages, name: str, query: str = "",
                     deny: tuple[str, ...] = ()) -> Page:
    url = str(server.make_url(HARNESS)) + query
    if not deny:
        return await pages.open(url, name)
    page = await pages.open("about:blank", name)
    await page.context.add_init_script(DENY % repr(list(deny)).replace("'", '"'))
    await page.goto(url)
    return page


async def state(page: Page) -> str | None:
    return await page.evaluate("document.getElementById('device-check').dataset.state")


async def wait_state(page: Page, wanted: str) -> None:
    await page.wait_for_function(
        "s => document.getElementById('device-check').dataset.state === s", arg=wanted,
        timeout=TIMEOUT_MS)


async def result(page: Page) -> Any:
    await page.wait_for_function("() => document.body.dataset.result", timeout=TIMEOUT_MS)
    return await page.evaluate("window.result")


async def test_camera_microphone_and_connection_are_checked_and_the_stream_handed_over(
    server: TestClient, pages: Pages
) -> None:
    page = await open_check(server, pages, "check")
    # The preview plays the fake camera, mirrored.
    await page.wait_for_function(
        "() => { const v = document.getElementById('dc-video');"
        " return v && v.videoWidth > 0 && !v.paused; }", timeout=TIMEOUT_MS)
    transform = await page.eval_on_selector(
        "#dc-video", "v => getComputedStyle(v).transform")
    assert transform.startswith("matrix(-1"), transform
    # The fake microphone beeps twice a second: the level rises well above silence.
    await page.wait_for_function(
        "() => Number(document.getElementById('dc-meter').dataset.level) > 0.3",
        timeout=TIMEOUT_MS)
    # Five pings over /ws, the median round trip shown.
    await page.wait_for_selector("#dc-connection[data-rtt-ms]", timeout=TIMEOUT_MS)
    connection = await page.eval_on_selector(
        "#dc-connection", "n => [n.dataset.state, Number(n.dataset.rttMs), n.textContent]")
    assert connection[0] == "ok" and 0 <= connection[1] < 300, connection
    assert f"{connection[1]} 毫秒" in connection[2]
    await wait_state(page, "ready")
    assert "设备正常" in await page.inner_text("#dc-summary")
    assert await page.is_enabled("#dc-join")
    # The camera picker lists the fake camera by its name.
    assert "fake" in (await page.inner_text("#dc-camera-select")).lower()
    await save_screenshot(page, "device-check")

    # The speaker test plays a tone and asks; "没听到" gives advice.
    await page.click("#dc-play")
    await page.wait_for_selector("#dc-speaker[data-state='asked'] #dc-not-heard",
                                 state="visible", timeout=TIMEOUT_MS)
    assert "听到提示音了吗" in await page.inner_text("#dc-speaker")
    await page.click("#dc-not-heard")
    assert "音箱或耳机" in await page.inner_text("#dc-speaker-advice")

    # Everything it built follows the language switch.
    await page.click("#lang-switch")
    assert await page.inner_text("#dc-join") == "Enter"
    assert "Round trip to the server" in await page.inner_text("#dc-connection")
    await page.click("#lang-switch")
    assert await page.inner_text("#dc-join") == "进入"

    await page.click("#dc-join")
    assert await result(page) == {"audio": ["live"], "video": ["live"]}
    # The container is emptied; the tracks go on for the hearing.
    assert await page.evaluate(
        "(() => { const c = document.getElementById('device-check');"
        " return c.childElementCount === 0 && c.dataset.state === undefined; })()")
    assert await page.evaluate("document.getElementById('dc-video') === null")
    assert pages.errors() == {"check": []}


async def test_a_blocked_camera_and_microphone_get_advice_and_still_let_the_person_in(
    server: TestClient, pages: Pages
) -> None:
    page = await open_check(server, pages, "blocked", deny=("audio", "video"))
    await wait_state(page, "blocked")
    for advice in ("#dc-camera-advice", "#dc-mic-advice"):
        await page.wait_for_selector(advice, state="visible", timeout=TIMEOUT_MS)
        text = await page.inner_text(advice)
        assert "地址栏" in text and "允许" in text, text
    assert "摄像头" in await page.inner_text("#dc-camera-advice")
    assert "麦克风" in await page.inner_text("#dc-mic-advice")
    assert "部分设备不可用" in await page.inner_text("#dc-summary")
    # Joining without devices stays possible.
    assert await page.is_enabled("#dc-join")
    await page.click("#dc-join")
    assert await result(page) is None


async def test_without_the_camera_the_microphone_alone_is_handed_over(
    server: TestClient, pages: Pages
) -> None:
    page = await open_check(server, pages, "no-camera", deny=("video",))
    await wait_state(page, "blocked")
    assert "摄像头" in await page.inner_text("#dc-camera-advice")
    assert await page.is_hidden("#dc-mic-advice")
    await page.wait_for_function(
        "() => Number(document.getElementById('dc-meter').dataset.level) > 0.3",
        timeout=TIMEOUT_MS)
    await page.check("#dc-no-camera")
    await wait_state(page, "ready")
    await page.click("#dc-join")
    assert await result(page) == {"audio": ["live"], "video": []}


async def test_a_kiosk_enters_by_itself_once_camera_and_microphone_work(
    server: TestClient, pages: Pages
) -> None:
    page = await open_check(server, pages, "kiosk", query="?kiosk=1")
    await page.wait_for_selector("#dc-countdown:not([hidden])", timeout=TIMEOUT_MS)
    assert "秒后自动进入" in await page.inner_text("#dc-countdown")
    assert await state(page) == "ready"
    # No question about the speaker on a kiosk.
    assert await page.is_hidden("#dc-heard")
    assert await result(page) == {"audio": ["live"], "video": ["live"]}

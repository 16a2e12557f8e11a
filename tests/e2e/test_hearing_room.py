"""The hearing room in real headless Chromium against the real server: the device check before
presence, the lobby, the language switch, raised hands, the judge's console (connection quality,
the recognizer's lag), the trial record, exhibits, private consultation and supervision."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from courtrooms.transcripts import SpokenLine
from tests.e2e.conftest import VIEWPORT, Pages, pass_device_check, save_screenshot
from tests.e2e.test_join import STATE_TIMEOUT_MS, join_url, wait_state
from tests.exhibit_files import pdf, png
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# docs/screenshots are rewritten only on request (save_screenshot), not by every test run.
SCREENSHOTS = os.environ.get("TINGSHEN_SCREENSHOTS") == "1"
API = "/api/v1"
# Names a Chinese court would see; the hearing runs 09:00-11:00 Beijing time on the test clock.
PEOPLE = {
    "judge": {"name": "王建国", "role": "judge", "location": "courtroom"},
    "defendant": {"name": "张三", "role": "defendant", "location": "prison"},
    "lawyer": {"name": "李明", "role": "lawyer", "location": "remote"},
    "observer": {"name": "赵监督", "role": "observer", "location": "remote"},
}
HAN = re.compile(r"[\u3400-\u9fff]")


@dataclass
class Hearing:
    id: str
    tokens: dict[str, str]
    ids: dict[str, str]


async def schedule(client: Any, admin: dict[str, str], clock: Any, *, auto_admit: bool,
                   roles: tuple[str, ...] = ("judge", "defendant", "lawyer")) -> Hearing:
    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await client.post(API + path, json=body, headers=admin)
        assert r.status == 201, await r.text()
        reply: dict[str, Any] = await r.json()
        return reply

    court = await post("/courts", {"name": "北京市朝阳区人民法院"})
    room = await post("/courtrooms", {"court_id": court["id"], "name": "第三法庭"})
    terminal = await post("/prison-terminals", {"name": "提讯终端一号", "prison": "朝阳看守所"})
    start = clock.now
    hearing = await post("/hearings", {
        "case_number": "(2026)京0105刑初1024号", "title": "张三盗窃案", "kind": "trial",
        "courtroom_id": room["id"], "scheduled_start": start.isoformat(),
        "scheduled_end": start.replace(hour=start.hour + 2).isoformat(),
        "auto_admit": auto_admit,
    })
    tokens, ids = {}, {}
    for role in roles:
        person = dict(PEOPLE[role])
        if person["location"] == "prison":
            person["terminal_id"] = terminal["id"]
        seat = await post(f"/hearings/{hearing['id']}/participants", person)
        tokens[role], ids[role] = seat["token"], seat["id"]
    return Hearing(hearing["id"], tokens, ids)


async def open_page(pages: Pages, url: str, name: str,
                    received: list[dict[str, Any]] | None = None) -> Page:
    """Like `Pages.open`, in Beijing time; what the page's socket receives goes to `received`."""
    def on_frame(payload: str | bytes) -> None:
        if isinstance(payload, str) and received is not None:
            received.append(json.loads(payload))

    return await pages.open(
        url, name, timezone_id="Asia/Shanghai", locale="zh-CN",
        before_load=lambda page: page.on("websocket",
                                         lambda ws: ws.on("framereceived", on_frame)))


async def enter(pages: Pages, client: Any, hearing: Hearing, role: str, state: str = "live",
                received: list[dict[str, Any]] | None = None) -> Page:
    page = await open_page(pages, join_url(client, hearing.tokens[role]), role, received)
    await pass_device_check(page)
    await wait_state(page, state)
    return page


def row(page: Page, participant_id: str, roster: str = "#roster") -> Any:
    return page.locator(f'{roster} li[data-participant-id="{participant_id}"]')


async def text(page: Page, selector: str) -> str:
    return (await page.locator(selector).inner_text()).strip()


VISIBLE_REMOTE_TILES = ("[...document.querySelectorAll('figure.tile.remote')]"
                        ".filter(t => t.offsetParent !== null).map(t => t.dataset.participantId)")


async def visible_remote_tiles(page: Page) -> list[str]:
    return list(await page.evaluate(VISIBLE_REMOTE_TILES))


async def wait_remote_tiles(page: Page, expected: set[str]) -> None:
    """Until the page shows the tiles of exactly `expected` (a change of who sees whom comes
    in its own message, after the state's, and a busy browser draws it later)."""
    try:
        await page.wait_for_function(
            f"ids => {{ const seen = {VISIBLE_REMOTE_TILES}; return seen.length === ids.length"
            " && ids.every(id => seen.includes(id)); }",
            arg=sorted(expected), timeout=STATE_TIMEOUT_MS, polling=200)
    except PlaywrightTimeoutError as e:
        seen = await visible_remote_tiles(page)
        raise AssertionError(f"the page shows {seen}, not {sorted(expected)}") from e


def sha_prefix(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


async def command(page: Page, action: str) -> None:
    await page.locator(f'button[data-command="{action}"]').click(timeout=STATE_TIMEOUT_MS)


async def test_device_check_comes_before_presence_then_lobby_and_language_switch(
    client, admin, clock, pages
):
    hearing = await schedule(client, admin, clock, auto_admit=False)
    judge = await enter(pages, client, hearing, "judge")
    lawyer = await open_page(pages, join_url(client, hearing.tokens["lawyer"]), "lawyer")
    await wait_state(lawyer, "device-check")
    # Testing devices is not being in the hearing: no socket yet, the court sees the lawyer
    # only as expected, not joined.
    await asyncio.sleep(1.0)
    assert await lawyer.evaluate("window.tingshen.ws") is None
    assert await row(judge, hearing.ids["lawyer"]).get_by_text("尚未加入").count() == 1
    await pass_device_check(lawyer)
    await wait_state(lawyer, "lobby")
    await row(judge, hearing.ids["lawyer"]).get_by_text("候审").wait_for(timeout=STATE_TIMEOUT_MS)

    # The lobby: the hearing, its time in the reader's zone, who is in, and the wait.
    await lawyer.locator(f'#present li[data-participant-id="{hearing.ids["judge"]}"]').wait_for(
        timeout=STATE_TIMEOUT_MS)
    assert "王建国" in await text(lawyer, "#present")
    assert await text(lawyer, "#lobby-wait") == "等待法官准许进入"
    scheduled = await text(lawyer, "#lobby .when")
    assert all(part in scheduled for part in ("2026年11月23日", "09:00", "11:00")), scheduled
    assert await lawyer.locator("#room").is_hidden()
    await save_screenshot(lawyer, "lobby")

    # English and back, on the lobby and on the judge's console alike.
    await lawyer.locator("#lang-switch").click()
    await lawyer.wait_for_function("() => document.documentElement.lang === 'en'")
    assert await text(lawyer, "#lobby-wait") == "Waiting for the judge to admit you"
    assert "November" in await text(lawyer, "#lobby .when")
    assert not HAN.search(" ".join(await lawyer.locator("#present .role").all_inner_texts()))

    chinese = {"#btn-mute": "静音", "#btn-hand": "举手", "#console-heading": "庭审控制",
               '[data-command="start"]': "开庭", "#state": "已排期"}
    english = {"#btn-mute": "Mute", "#btn-hand": "Raise hand",
               "#console-heading": "Hearing control", '[data-command="start"]': "Start",
               "#state": "Scheduled"}
    lawyer_row = row(judge, hearing.ids["lawyer"])
    for selector, label in chinese.items():
        assert await text(judge, selector) == label, selector
    assert "律师" in await lawyer_row.inner_text()
    await judge.locator("#lang-switch").click()
    for selector, label in english.items():
        assert await text(judge, selector) == label, selector
    assert "Lawyer" in await lawyer_row.inner_text() and "waiting" in await lawyer_row.inner_text()
    assert not HAN.search(await text(judge, "#controls"))
    await judge.locator("#lang-switch").click()
    for selector, label in chinese.items():
        assert await text(judge, selector) == label, selector
    assert "律师" in await lawyer_row.inner_text()

    # Admitted (in English still): the lawyer's page goes live.
    await lawyer_row.locator('button[data-action="admit"]').click()
    await wait_state(lawyer, "live")
    assert await text(lawyer, "#btn-mute") == "Mute"
    assert not any(pages.errors().values()), pages.errors()


async def test_raised_hand_quality_lag_and_record_on_the_judges_console(
    client, admin, clock, pages
):
    hearing = await schedule(client, admin, clock, auto_admit=True)
    # Two lines already in the record: every page shows them when it arrives.
    transcripts = client.server.app[HUB].transcripts
    said = [("judge", 3.0, 7.5, "现在开庭。请被告人陈述姓名和出生日期。"),
            ("defendant", 9.0, 14.0, "我叫张三，一九九零年三月出生。")]
    for role, start, end, words in said:
        await transcripts.add(uuid.UUID(hearing.id), SpokenLine(
            uuid.UUID(hearing.ids[role]), start, end, words, "zh"))
    received: list[dict[str, Any]] = []
    judge = await enter(pages, client, hearing, "judge", received=received)
    defendant = await enter(pages, client, hearing, "defendant")
    lawyer = await enter(pages, client, hearing, "lawyer")
    for page in (judge, lawyer):
        await page.locator("#transcript li").nth(1).wait_for(timeout=STATE_TIMEOUT_MS)
        lines = await page.locator("#transcript li .text").all_inner_texts()
        assert lines == [words for *_, words in said], lines
        assert "张三" in await page.locator("#transcript li").nth(1).inner_text()

    await command(judge, "open")
    await command(judge, "start")
    for page in (judge, lawyer, defendant):
        await page.wait_for_function(
            "() => document.querySelector('#recording-label').textContent === '录制中'",
            timeout=STATE_TIMEOUT_MS)

    # A raised hand reaches the judge's roster and the hands list.
    await lawyer.locator("#btn-hand").click()
    lawyer_row = row(judge, hearing.ids["lawyer"])
    await lawyer_row.get_by_text("已举手").wait_for(timeout=STATE_TIMEOUT_MS)
    await judge.locator(f'#hands li[data-participant-id="{hearing.ids["lawyer"]}"]').wait_for()
    assert await lawyer.locator("#btn-hand").get_attribute("aria-pressed") == "true"

    # Connection quality, as the server grades it, on every participant's row.
    for role in ("lawyer", "defendant"):
        await judge.wait_for_function(
            """pid => {
              const s = document.querySelector(`#roster li[data-participant-id="${pid}"] .signal`);
              return s && s.dataset.grade !== "none";
            }""", arg=hearing.ids[role], timeout=STATE_TIMEOUT_MS)
    grades = {q["grade"] for m in received if m.get("type") == "quality"
              for q in m["participants"] if q["participant_id"] == hearing.ids["lawyer"]}
    signal = lawyer_row.locator(".signal")
    assert await signal.get_attribute("data-grade") in grades, grades
    assert re.search(r"往返 (\d+|—) 毫秒，丢包 ", await signal.get_attribute("title") or "")

    # The active speaker (every fake microphone beeps) is the one tile highlighted.
    await judge.wait_for_function("""() => {
      const active = window.tingshen.speakers.active;
      const lit = [...document.querySelectorAll("figure.tile.speaking")];
      return active && lit.length === 1 && lit[0].dataset.participantId === active;
    }""", timeout=STATE_TIMEOUT_MS)

    # The recognizer's lag, while in session.
    lag = judge.locator("#lag")
    # The first figure comes once the recognizer is loaded: slower on a busy machine.
    await lag.wait_for(timeout=3 * STATE_TIMEOUT_MS)
    said, level = await judge.evaluate(
        "() => { const lag = document.querySelector('#lag');"
        " return [lag.textContent, lag.dataset.level]; }")
    shown = re.fullmatch(r"识别延迟 (\d+\.\d) 秒", said)
    assert shown, said
    assert level == ("bad" if float(shown[1]) > 10 else "warn" if float(shown[1]) > 3 else "ok")
    # Nobody but the court sees it.
    assert await lawyer.locator("#console").is_hidden()

    if SCREENSHOTS:
        await judge.wait_for_function(
            "() => [...document.querySelectorAll('figure.tile.remote video')]"
            ".every(v => v.videoWidth > 0)", timeout=STATE_TIMEOUT_MS)
        await save_screenshot(judge, "hearing-room")

    await command(judge, "recess")
    await wait_state(lawyer, "recess")
    assert await text(lawyer, "#recording-label") == "休庭"
    assert await judge.locator("#lag").is_hidden()
    assert not any(pages.errors().values()), pages.errors()


async def test_an_exhibit_the_lawyer_presents_is_shown_to_the_judge(client, admin, clock, pages):
    hearing = await schedule(client, admin, clock, auto_admit=True,
                             roles=("judge", "lawyer"))
    judge = await enter(pages, client, hearing, "judge")
    lawyer = await enter(pages, client, hearing, "lawyer")
    picture = png((320, 200))

    await lawyer.locator("#btn-exhibit").click()
    await lawyer.locator("#exhibit-file").set_input_files(
        files=[{"name": "还款记录.png", "mimeType": "image/png", "buffer": picture}])
    await lawyer.locator("#exhibit-title").fill("证据一 还款记录")
    await lawyer.locator("#exhibit-upload").click()
    await lawyer.locator("#exhibit-dialog").wait_for(state="hidden", timeout=STATE_TIMEOUT_MS)

    image = judge.locator("#exhibit-image")
    await image.wait_for(timeout=STATE_TIMEOUT_MS)
    await judge.wait_for_function(
        "() => document.querySelector('#exhibit-image').naturalWidth > 0", timeout=STATE_TIMEOUT_MS)
    assert await judge.evaluate("document.querySelector('#exhibit-image').naturalWidth") == 320
    # Fetched with the join token in a header and shown from memory: no token in any URL.
    src = await image.get_attribute("src") or ""
    assert src.startswith("blob:"), src
    assert await judge.evaluate(
        "t => [...document.querySelectorAll('[src],[href]')].filter("
        "e => (e.getAttribute('src') || e.getAttribute('href')).includes(t)).length",
        hearing.tokens["judge"]) == 0
    assert await text(judge, "#exhibit-sha") == f"SHA-256 {sha_prefix(picture)}"
    assert await text(judge, "#exhibit-title-shown") == "证据一 还款记录"
    assert await text(judge, "#exhibit-page") == "第 1 / 1 页"
    assert "李明" in await text(judge, ".exhibit-head")
    # The judge may take it off the stage, like the lawyer who presents it.
    assert await judge.locator("#exhibit-stop").is_visible()

    # A three-page PDF: the presenter turns to page 2 and everyone follows.
    document = pdf()
    await lawyer.locator("#btn-exhibit").click()
    await lawyer.locator("#exhibit-file").set_input_files(
        files=[{"name": "合同.pdf", "mimeType": "application/pdf", "buffer": document}])
    await lawyer.locator("#exhibit-upload").click()
    await judge.wait_for_function(
        "() => document.querySelector('#exhibit-page')?.textContent === '第 1 / 3 页'",
        timeout=STATE_TIMEOUT_MS)
    assert await text(judge, "#exhibit-title-shown") == "合同"  # the file's name, untitled
    await lawyer.locator("#exhibit-next").click()
    await judge.wait_for_function(
        "() => document.querySelector('#exhibit-image')?.dataset.page === '2'"
        " && document.querySelector('#exhibit-image').src.startsWith('blob:')",
        timeout=STATE_TIMEOUT_MS)
    assert await text(judge, "#exhibit-sha") == f"SHA-256 {sha_prefix(document)}"
    await judge.wait_for_function(
        "() => document.querySelector('#exhibit-image').naturalWidth > 0", timeout=STATE_TIMEOUT_MS)

    # Stopped, then the picture shown again from the hearing's list.
    await lawyer.locator("#exhibit-stop").click()
    await judge.locator("#exhibit-view").wait_for(state="detached", timeout=STATE_TIMEOUT_MS)
    await lawyer.locator("#btn-exhibit").click()
    listed = lawyer.locator("#exhibit-list li")
    await listed.nth(1).wait_for(timeout=STATE_TIMEOUT_MS)
    first = listed.filter(has_text="证据一 还款记录")
    await first.locator("button").click()
    await judge.wait_for_function(
        "() => document.querySelector('#exhibit-title-shown')?.textContent === '证据一 还款记录'",
        timeout=STATE_TIMEOUT_MS)

    # A file of another kind is refused before upload, with a reason.
    await lawyer.locator("#btn-exhibit").click()
    await lawyer.locator("#exhibit-file").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not evidence"}])
    await lawyer.locator("#exhibit-upload").click()
    assert "PDF、PNG 或 JPEG" in await text(lawyer, "#exhibit-error")
    assert not any(pages.errors().values()), pages.errors()


async def test_a_granted_consultation_leaves_only_the_two_of_them(client, admin, clock, pages):
    hearing = await schedule(client, admin, clock, auto_admit=True)
    judge = await enter(pages, client, hearing, "judge")
    lawyer = await enter(pages, client, hearing, "lawyer")
    defendant = await enter(pages, client, hearing, "defendant")
    lawyer_id, defendant_id = hearing.ids["lawyer"], hearing.ids["defendant"]
    for page, others in ((lawyer, {hearing.ids["judge"], defendant_id}),
                         (defendant, {hearing.ids["judge"], lawyer_id})):
        await page.wait_for_function(
            "n => document.querySelectorAll('figure.tile.remote video').length === n",
            arg=len(others), timeout=STATE_TIMEOUT_MS)
        await wait_remote_tiles(page, others)

    # The defendant asks; the court sees the request; first refused, then asked again, granted.
    async def ask() -> None:
        await defendant.locator("#btn-consult").click(timeout=STATE_TIMEOUT_MS)
        await defendant.locator(f'#consult-candidates button[data-participant-id="{lawyer_id}"]'
                                ).click()
        await defendant.locator("#consult-pending").get_by_text("李明").wait_for(
            timeout=STATE_TIMEOUT_MS)

    request = judge.locator(f'#consult-requests li[data-participant-id="{defendant_id}"]')
    await ask()
    await request.locator('button[data-action="deny_consultation"]').click(timeout=STATE_TIMEOUT_MS)
    await defendant.locator("#status").get_by_text("法庭未准许私下会见申请").wait_for(
        timeout=STATE_TIMEOUT_MS)
    await ask()
    assert "张三" in await request.inner_text() and "李明" in await request.inner_text()
    await request.locator('button[data-action="grant_consultation"]').click()

    for page, partner in ((lawyer, defendant_id), (defendant, lawyer_id)):
        await wait_state(page, "consultation")
        assert await page.locator("#consult-banner").is_visible()
        assert "法庭听不到也不录制" in await text(page, "#consult-banner")
        await wait_remote_tiles(page, {partner})
        assert await page.locator("#self-tile").is_visible()
    # The court sees who is consulting, and can end it.
    for pid in (lawyer_id, defendant_id):
        await row(judge, pid).get_by_text("私下会见中").wait_for(timeout=STATE_TIMEOUT_MS)
    await judge.locator("#consult-active li").first.wait_for(timeout=STATE_TIMEOUT_MS)
    assert await judge.locator("#consult-active li").count() == 1
    assert await body_state(judge) == "live"

    await lawyer.locator("#btn-consult-return").click()
    for page in (lawyer, defendant):
        await wait_state(page, "live")
    await judge.locator("#console-consult").wait_for(state="hidden", timeout=STATE_TIMEOUT_MS)
    assert await row(judge, lawyer_id).get_by_text("私下会见中").count() == 0
    await wait_remote_tiles(lawyer, {hearing.ids["judge"], defendant_id})
    assert not any(pages.errors().values()), pages.errors()


async def body_state(page: Page) -> str | None:
    return await page.evaluate("document.body.dataset.state")


async def test_an_observer_watches_without_devices_and_is_listed_to_the_court(
    client, admin, clock, pages
):
    hearing = await schedule(client, admin, clock, auto_admit=False,
                             roles=("judge", "lawyer", "observer"))
    judge = await enter(pages, client, hearing, "judge")
    observer = await pages.browser.new_context(viewport=VIEWPORT)
    pages.contexts.append(observer)
    page = await observer.new_page()
    log = pages.console.setdefault("observer", [])
    page.on("console", lambda m: log.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
    await page.add_init_script("""(() => {
      window.__asked = 0;
      const devices = navigator.mediaDevices;
      const original = devices.getUserMedia.bind(devices);
      devices.getUserMedia = (c) => { window.__asked += 1; return original(c); };
    })()""")
    await page.goto(join_url(client, hearing.tokens["observer"]))
    # No device check: admitted at once, watching the judge.
    await wait_state(page, "live")
    await page.wait_for_function(
        "pid => document.querySelector(`video[data-participant-id=\"${pid}\"]`)?.videoWidth > 0",
        arg=hearing.ids["judge"], timeout=STATE_TIMEOUT_MS)
    assert await page.evaluate("window.__asked") == 0
    assert await page.evaluate(
        "window.tingshen.pc.getSenders().every(s => !s.track)") is True
    assert await page.locator("#observer-badge").is_visible()
    assert await text(page, "#observer-badge") == "监督模式（仅观看）"
    for control in ("#controls", "#btn-mute", "#btn-hand", "#btn-exhibit", "#self-tile"):
        assert await page.locator(control).is_hidden(), control
    assert await page.locator("#transcript-panel").is_visible()

    # The court lists the observer apart; the lawyer, in the lobby, never sees them.
    await row(judge, hearing.ids["observer"], "#observers").wait_for(timeout=STATE_TIMEOUT_MS)
    assert await row(judge, hearing.ids["observer"]).count() == 0
    assert "监督/旁听" in await text(judge, "#console-observers h2")
    lawyer = await enter(pages, client, hearing, "lawyer", state="lobby")
    await lawyer.locator(f'#present li[data-participant-id="{hearing.ids["judge"]}"]').wait_for()
    assert hearing.ids["observer"] not in await lawyer.evaluate(
        "window.tingshen.participants.map(p => p.participant_id)")
    assert not any(pages.errors().values()), pages.errors()


async def test_screen_share_replaces_the_camera_and_takes_the_main_stage(
    client, admin, clock, pages
):
    hearing = await schedule(client, admin, clock, auto_admit=True, roles=("judge", "lawyer"))
    judge = await enter(pages, client, hearing, "judge")
    received: list[dict[str, Any]] = []
    lawyer = await enter(pages, client, hearing, "lawyer", received=received)
    lawyer_id = hearing.ids["lawyer"]
    tile = judge.locator(f'figure.remote[data-participant-id="{lawyer_id}"]')
    await judge.wait_for_function(
        "pid => document.querySelector(`video[data-participant-id=\"${pid}\"]`)?.videoWidth > 0",
        arg=lawyer_id, timeout=STATE_TIMEOUT_MS)
    sender_track = ("() => window.tingshen.pc.getSenders()"
                    ".find(s => s.track && s.track.kind === 'video').track.label")
    camera = await lawyer.evaluate(sender_track)
    offers = sum(m.get("type") == "offer" for m in received)

    # The camera off: the judge sees the name instead of a black picture.
    await lawyer.locator("#btn-camera").click()
    await tile.and_(judge.locator(".no-video")).wait_for(timeout=STATE_TIMEOUT_MS)
    await row(judge, lawyer_id).get_by_text("摄像头关闭").wait_for(timeout=STATE_TIMEOUT_MS)
    await lawyer.locator("#btn-camera").click()
    await judge.wait_for_function(
        "pid => !document.querySelector(`figure.remote[data-participant-id=\"${pid}\"]`)"
        ".classList.contains('no-video')", arg=lawyer_id, timeout=STATE_TIMEOUT_MS)

    # Sharing: the same sender now carries the screen, without a new offer; the judge shows
    # the lawyer large.
    await lawyer.locator("#btn-screen").click()
    await judge.locator(f'#main-stage figure[data-participant-id="{lawyer_id}"]').wait_for(
        timeout=STATE_TIMEOUT_MS)
    assert (await lawyer.evaluate(sender_track)).startswith("screen")
    assert await lawyer.locator("#btn-screen").get_attribute("aria-pressed") == "true"
    await row(judge, lawyer_id).get_by_text("正在共享屏幕").wait_for()
    # The browser's own "stop sharing" ends the track: the camera comes back.
    await lawyer.evaluate("""() => {
      const track = window.tingshen.pc.getSenders()
        .find(s => s.track && s.track.kind === 'video').track;
      track.stop();
      track.dispatchEvent(new Event('ended'));
    }""")
    await judge.locator("#main-stage").wait_for(state="hidden", timeout=STATE_TIMEOUT_MS)
    assert await lawyer.evaluate(sender_track) == camera
    assert await tile.is_visible()
    assert sum(m.get("type") == "offer" for m in received) == offers
    assert not any(pages.errors().values()), pages.errors()


async def test_a_kiosk_joins_by_itself_with_large_controls_and_signs_the_record_at_the_end(
    client, admin, clock, pages
):
    hearing = await schedule(client, admin, clock, auto_admit=True, roles=("judge", "defendant"))
    await enter(pages, client, hearing, "judge")
    url = join_url(client, hearing.tokens["defendant"]) + "?kiosk=1"
    kiosk = await open_page(pages, url, "kiosk")
    await wait_state(kiosk, "live")  # nobody pressed anything
    assert await kiosk.locator("a").count() == 0
    for selector in ("#btn-mute", "#btn-hand", "#btn-consult"):
        box = await kiosk.locator(selector).bounding_box()
        assert box and box["height"] >= 64 and box["width"] >= 64, (selector, box)
    # Kiosk discipline: a detainee switches neither the camera off nor the language.
    for selector in ("#btn-exhibit", "#btn-screen", "#btn-camera", "#lang-switch"):
        assert await kiosk.locator(selector).is_hidden(), selector

    for action in ("open", "start", "close"):
        r = await client.post(f"{API}/hearings/{hearing.id}/{action}", headers=admin)
        assert r.status == 200, await r.text()
    await wait_state(kiosk, "ended")
    # Closed: the detainee reads and signs the record at the kiosk (tests/e2e/test_signing.py
    # signs there), and the terminal's home comes after.
    assert "秒后打开庭审笔录，请阅读并签名" in await text(kiosk, "#kiosk-return")
    await kiosk.wait_for_url(f"**/sign/{hearing.id}?kiosk=1#*", timeout=15_000)
    await kiosk.locator("#sign-kiosk").wait_for(timeout=15_000)


async def test_the_clerk_checks_identities_on_the_console_before_opening(
    client, admin, clock, pages
):
    """Everyone expected is listed, joined or not; the judge verifies the defendant (the
    server keeps a still of Chromium's fake camera) and refuses the lawyer with a reason; a
    reload of the same tab keeps the check, a new browser session does not (a refusal stands
    everywhere)."""
    hearing = await schedule(client, admin, clock, auto_admit=True)
    judge = await enter(pages, client, hearing, "judge")
    # Not joined yet, listed all the same.
    defendant_row = row(judge, hearing.ids["defendant"])
    await defendant_row.get_by_text("尚未加入").wait_for(timeout=STATE_TIMEOUT_MS)
    defendant = await enter(pages, client, hearing, "defendant")
    lawyer = await enter(pages, client, hearing, "lawyer")
    await defendant_row.locator('.tag.identity[data-identity="unchecked"]').wait_for(
        timeout=STATE_TIMEOUT_MS)

    verify = defendant_row.locator('button[data-action="verify_identity"]')
    await judge.wait_for_function(
        "b => !b.disabled", arg=await verify.element_handle(), timeout=STATE_TIMEOUT_MS)
    await verify.click()
    await defendant_row.locator('.tag.identity[data-identity="verified"]').wait_for(
        timeout=STATE_TIMEOUT_MS)
    lawyer_row = row(judge, hearing.ids["lawyer"])
    judge.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept("证件已过期")))
    await lawyer_row.locator('button[data-action="refuse_identity"]').click()
    refused = lawyer_row.locator('.tag.identity[data-identity="refused"]')
    await refused.wait_for(timeout=STATE_TIMEOUT_MS)
    await save_screenshot(judge, "identity-checks")
    assert await refused.get_attribute("title") == "证件已过期"

    r = await client.get(f"{API}/hearings/{hearing.id}/identity-checks", headers=admin)
    checks = (await r.json())["items"]
    assert [(c["participant_id"], c["outcome"], c["reason"]) for c in checks] == [
        (hearing.ids["defendant"], "verified", None),
        (hearing.ids["lawyer"], "refused", "证件已过期")]
    r = await client.get(f"{API}/hearings/{hearing.id}/identity-checks/{checks[0]['seq']}"
                         "/still", headers=admin)
    jpeg = await r.read()
    assert r.status == 200 and jpeg[:3] == b"\xff\xd8\xff" and len(jpeg) > 1000

    # The defendant's page reloads (same tab, same browser session): still verified.
    await defendant.reload()
    await pass_device_check(defendant)
    await wait_state(defendant, "live")
    await defendant_row.locator('.tag.identity[data-identity="verified"]').wait_for(
        timeout=STATE_TIMEOUT_MS)
    # The lawyer opens the link in a new browser (a new session): the refusal stands there
    # too, until the court checks again.
    await lawyer.context.close()
    await enter(pages, client, hearing, "lawyer")
    await lawyer_row.get_by_text("未在线").wait_for(state="detached", timeout=STATE_TIMEOUT_MS)
    assert await lawyer_row.locator(".tag.identity").get_attribute("data-identity") == "refused"
    # The defendant in a new browser (new device and session) is unchecked there.
    await defendant.context.close()
    await enter(pages, client, hearing, "defendant")
    await defendant_row.locator('.tag.identity[data-identity="unchecked"]').wait_for(
        timeout=STATE_TIMEOUT_MS)
    assert not any(pages.errors().values()), pages.errors()


async def test_the_header_says_when_someones_recording_has_a_gap(client, admin, clock, pages):
    """A participant's browser stops sending audio with the connection up: the court's header
    no longer says 'recording' but whose recording is interrupted, until the audio is back."""
    hearing = await schedule(client, admin, clock, auto_admit=True,
                             roles=("judge", "lawyer"))
    judge = await enter(pages, client, hearing, "judge")
    lawyer = await enter(pages, client, hearing, "lawyer")
    await command(judge, "open")
    await command(judge, "start")
    label = judge.locator("#recording-label")
    await judge.wait_for_function(
        "() => document.querySelector('#recording-label').textContent === '录制中'",
        timeout=STATE_TIMEOUT_MS)
    sender = """stop => {
      const s = window.tingshen.pc.getSenders().find(x => x.track?.kind === 'audio'
        || x.__audio);
      s.__audio = s.__audio || s.track;
      return s.replaceTrack(stop ? null : s.__audio);
    }"""
    await lawyer.evaluate(sender, True)
    await judge.wait_for_function(
        "() => document.querySelector('#recording').dataset.mode === 'gap'",
        timeout=STATE_TIMEOUT_MS)
    assert await label.inner_text() == "录制中断：李明"
    await lawyer.evaluate(sender, False)
    await judge.wait_for_function(
        "() => document.querySelector('#recording-label').textContent === '录制中'",
        timeout=STATE_TIMEOUT_MS)
    # Only the court is told (and the lawyer's own header never changed).
    assert await lawyer.locator("#recording-label").inner_text() == "录制中"

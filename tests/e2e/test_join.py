"""The participant's page in real headless Chromium against the real server and aiortc."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page

from tests.e2e.conftest import Pages, pass_device_check, save_screenshot, wait_for_state
from tests.signaling.conftest import schedule

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

STATE_TIMEOUT_MS = 30_000

# What this page receives, from its own RTCPeerConnection's statistics.
INBOUND = """async () => {
  const pc = window.tingshen.pc;
  const out = {framesDecoded: 0, audioPackets: 0};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") out.framesDecoded += s.framesDecoded || 0;
    if (s.kind === "audio") out.audioPackets += s.packetsReceived || 0;
  });
  return out;
}"""


def join_url(client: Any, token: str) -> str:
    return str(client.make_url(f"/join/{token}"))


async def open_joined(pages: Pages, url: str, name: str) -> Page:
    """Open a join link and go through the device check."""
    page = await pages.open(url, name)
    await pass_device_check(page)
    return page


async def wait_state(page: Page, state: str) -> None:
    await wait_for_state(page, state, STATE_TIMEOUT_MS)


async def body_state(page: Page) -> str | None:
    return await page.evaluate("document.body.dataset.state")


async def open_judge_and_lawyer(client: Any, admin: Any, clock: Any, pages: Pages
                                ) -> tuple[Any, Page, Page]:
    hearing = await schedule(client, admin, clock)
    judge = await open_joined(pages, join_url(client, hearing.tokens["judge"]), "judge")
    lawyer = await open_joined(pages, join_url(client, hearing.tokens["lawyer"]), "lawyer")
    return hearing, judge, lawyer


async def admit_in_ui(judge: Page, participant_id: str) -> None:
    row = judge.locator(f'#roster li[data-participant-id="{participant_id}"]')
    await row.locator('button[data-action="admit"]').click(timeout=STATE_TIMEOUT_MS)


async def test_admitted_lawyer_and_judge_see_and_hear_each_other(client, admin, clock, pages):
    hearing, judge, lawyer = await open_judge_and_lawyer(client, admin, clock, pages)
    await wait_state(judge, "live")
    # The lawyer is not admitted yet: the lobby, and the judge sees them waiting.
    await lawyer.wait_for_selector("#lobby", state="visible")
    assert await body_state(lawyer) == "lobby"
    await asyncio.sleep(0.5)
    assert await body_state(lawyer) == "lobby"
    await admit_in_ui(judge, hearing.ids["lawyer"])
    await wait_state(lawyer, "live")
    assert await body_state(judge) == "live"

    # Each page shows a tile for the other, named by its seat.
    for page, other, name, role in ((judge, "lawyer", "Lawyer Li", "律师"),
                                    (lawyer, "judge", "Judge Wang", "审判员")):
        tile = page.locator(f'figure.remote[data-participant-id="{hearing.ids[other]}"]')
        await tile.locator("video").wait_for(timeout=STATE_TIMEOUT_MS)
        await tile.get_by_text(name).wait_for(timeout=STATE_TIMEOUT_MS)
        caption = await tile.locator("figcaption").inner_text()
        assert role in caption and "null" not in caption, caption

    # Media flows both ways through the server: decoded video and received audio keep growing.
    for page in (judge, lawyer):
        await page.wait_for_function(
            f"() => ({INBOUND})().then(s => s.framesDecoded > 0 && s.audioPackets > 0)",
            timeout=STATE_TIMEOUT_MS, polling=250,
        )
    before = [await page.evaluate(INBOUND) for page in (judge, lawyer)]
    await asyncio.sleep(2.0)
    after = [await page.evaluate(INBOUND) for page in (judge, lawyer)]
    for name, b, a in zip(("judge", "lawyer"), before, after, strict=True):
        # Chromium's fake camera runs at 30 fps and Opus sends 50 packets a second.
        assert a["framesDecoded"] - b["framesDecoded"] >= 10, (name, b, a)
        assert a["audioPackets"] - b["audioPackets"] >= 30, (name, b, a)
    # And the remote video element renders real frames.
    for page, other in ((judge, "lawyer"), (lawyer, "judge")):
        video = f'video[data-participant-id="{hearing.ids[other]}"]'
        await page.wait_for_function(
            f"() => document.querySelector('{video}').videoWidth > 0", timeout=STATE_TIMEOUT_MS
        )
    await save_screenshot(judge, "join-live")  # docs/screenshots, on request only

    # The lawyer mutes: the microphone track stops and the judge's list says so.
    await lawyer.locator("#btn-mute").click()
    lawyer_row = judge.locator(f'#roster li[data-participant-id="{hearing.ids["lawyer"]}"]')
    await lawyer_row.get_by_text("自行静音").wait_for(timeout=STATE_TIMEOUT_MS)
    assert await lawyer.evaluate(
        "window.tingshen.pc.getSenders().filter(s => s.track && s.track.kind === 'audio')"
        ".every(s => !s.track.enabled)"
    )

    # The lawyer's socket drops: the page rejoins with its token, keeps its seat, and media
    # flows again on a new peer connection.
    await lawyer.evaluate("window.__oldPc = window.tingshen.pc; window.tingshen.ws.close()")
    banner = lawyer.locator("#reconnecting")
    await banner.wait_for(state="visible", timeout=STATE_TIMEOUT_MS)
    assert "正在重新连接" in await banner.inner_text()
    await lawyer.wait_for_function(
        "() => window.tingshen.pc && window.tingshen.pc !== window.__oldPc"
        " && window.tingshen.pc.connectionState === 'connected'",
        timeout=STATE_TIMEOUT_MS,
    )
    assert await body_state(lawyer) == "live"
    await banner.wait_for(state="hidden", timeout=STATE_TIMEOUT_MS)
    assert await lawyer.evaluate("window.tingshen.me.muted_self") is True
    for page in (judge, lawyer):
        start = await page.evaluate(INBOUND)
        await page.wait_for_function(
            f"() => ({INBOUND})().then(s => s.framesDecoded > {start['framesDecoded']} + 10)",
            timeout=STATE_TIMEOUT_MS, polling=250,
        )
    assert not any(pages.errors().values()), pages.errors()


async def test_closing_the_hearing_ends_both_pages(client, admin, clock, pages):
    _hearing, judge, lawyer = await open_judge_and_lawyer(client, admin, clock, pages)
    await wait_state(judge, "live")
    await wait_state(lawyer, "lobby")
    for action, state in (("open", "open"), ("start", "in_session")):
        await judge.locator(f'button[data-command="{action}"]').click(timeout=STATE_TIMEOUT_MS)
        await judge.wait_for_function(
            "s => document.body.dataset.hearingState === s", arg=state,
            timeout=STATE_TIMEOUT_MS,
        )
    assert await body_state(judge) == "live"
    await judge.locator('button[data-command="recess"]').click()
    await wait_state(judge, "recess")
    assert await body_state(lawyer) == "lobby"  # recess is for those admitted
    await judge.locator('button[data-command="resume"]').click()
    await wait_state(judge, "live")
    # Closing asks once more; the hearing goes on until the judge confirms.
    await judge.locator('button[data-command="close"]').click()
    await judge.locator('button[data-confirm="close"]').wait_for()
    await asyncio.sleep(0.3)
    assert await judge.evaluate("window.tingshen.hearingState") == "in_session"
    await judge.locator('button[data-confirm="close"]').click()
    await wait_state(judge, "ended")
    await wait_state(lawyer, "ended")
    # The server closed both sockets for good: neither page reconnects.
    await asyncio.sleep(1.5)
    for page in (judge, lawyer):
        assert await body_state(page) == "ended"
        assert await page.evaluate("window.tingshen.ws") is None
        assert await page.locator("#ended").is_visible()


async def test_an_invalid_token_gets_403_and_never_goes_live(client, pages):
    page = await pages.open(join_url(client, "not-a-valid-token"), "stranger")
    response = pages.responses["stranger"]
    assert response is not None and response.status == 403
    assert "无法加入" in await page.content()
    await asyncio.sleep(0.5)
    assert await body_state(page) == "error"


async def test_a_party_types_the_last_digits_of_their_id_number_to_join(
    client, admin, clock, pages
):
    """The court has them on file: the page asks before joining, again when they are wrong,
    and joins with them; a reconnect does not ask again, and the browser stores none."""
    hearing = await schedule(client, admin, clock, auto_admit=True, id_digits={"lawyer": "107X"})
    lawyer = await open_joined(pages, join_url(client, hearing.tokens["lawyer"]), "lawyer")
    await wait_state(lawyer, "id-digits")
    form = lawyer.locator("#id-digits")
    await form.get_by_text("请输入您的身份证号码后四位").wait_for()
    assert await lawyer.evaluate("window.tingshen.ws") is None  # nobody joined yet
    digits = lawyer.locator("#id-digits-input")
    # Malformed: the page says so itself.
    await digits.fill("10a7")
    await lawyer.locator("#id-digits-submit").click()
    await form.get_by_text("请输入 4 位：数字，末位可以是 X。").wait_for()
    assert await body_state(lawyer) == "id-digits"
    # Wrong: the server refuses, and the page asks again with the tries left.
    await digits.fill("1071")
    await lawyer.locator("#id-digits-submit").click()
    await form.get_by_text("号码不符，还可以再试 4 次。").wait_for(timeout=STATE_TIMEOUT_MS)
    assert await body_state(lawyer) == "id-digits"
    assert await digits.input_value() == ""
    await save_screenshot(lawyer, "join-id-digits")  # docs/screenshots, on request only
    # Right (an x is an X): in.
    await digits.fill("107x")
    await digits.press("Enter")
    await wait_state(lawyer, "live")
    stored = await lawyer.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    # (As typed, "107x"; the random ids stored are hex, which may hold "107" by chance.)
    assert "107x" not in stored.lower(), stored
    # The socket drops: the page rejoins with the digits it kept, without asking.
    await lawyer.evaluate("""() => {
      window.__states = [];
      new MutationObserver(() => window.__states.push(document.body.dataset.state))
        .observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
      window.tingshen.ws.close();
    }""")
    await lawyer.wait_for_function("() => window.tingshen.connected === false",
                                   timeout=STATE_TIMEOUT_MS)
    await lawyer.wait_for_function("() => window.tingshen.connected === true",
                                   timeout=STATE_TIMEOUT_MS)
    assert await body_state(lawyer) == "live"
    assert "id-digits" not in await lawyer.evaluate("window.__states")
    r = await client.get(f"/api/v1/audit?hearing_id={hearing.id}&limit=200", headers=admin)
    failed = [e for e in (await r.json())["items"] if e["action"] == "participant.id_digits_failed"]
    assert len(failed) == 1, failed
    assert not pages.errors()["lawyer"], pages.console["lawyer"]

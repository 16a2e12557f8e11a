"""Signing the trial record in real Chromium, each participant in their own browser from their
own link once the hearing is closed: a correction asked for and accepted, a signature drawn
with the mouse, a refusal noted, the judge and the clerk last, and the record final."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import docx
import pytest
from playwright.async_api import Page

from courtrooms.transcripts import SpokenLine
from tests.e2e.conftest import Pages, save_screenshot
from tests.e2e.test_hearing_room import API, command, enter, schedule
from tests.e2e.test_join import STATE_TIMEOUT_MS, join_url, wait_state
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BEIJING = ZoneInfo("Asia/Shanghai")


async def open_signing(pages: Pages, client: Any, token: str, name: str) -> Page:
    """From the join link of the closed hearing, as a participant would come back to it."""
    page = await pages.open(join_url(client, token), name, timezone_id="Asia/Shanghai",
                            locale="zh-CN")
    await page.locator("#sign-link").click()
    await page.locator("#app").wait_for(timeout=STATE_TIMEOUT_MS)
    # The player appears above the pad once the recording's metadata loads, moving the pad: wait
    # for it to settle, or strokes aimed at the pad land beside it.
    await page.wait_for_function(
        "() => !document.getElementById('player').hidden"
        " || document.getElementById('player-empty').textContent !== ''",
        timeout=STATE_TIMEOUT_MS, polling=100)
    return page


INKED = """() => {
  const pad = document.getElementById('pad');
  const px = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
  for (let i = 3; i < px.length; i += 4) if (px[i]) return true;
  return false;
}"""


async def draw_signature(page: Page) -> None:
    await page.locator("#pad").scroll_into_view_if_needed()
    box = await page.locator("#pad").bounding_box()
    assert box is not None
    x, y = box["x"], box["y"]
    await page.mouse.move(x + 30, y + 120)
    await page.mouse.down()
    for i in range(1, 12):
        await page.mouse.move(x + 30 + i * 25, y + (40 if i % 2 else 120), steps=4)
    await page.mouse.up()
    assert await page.evaluate(INKED), "the strokes did not land on the signature pad"


async def signer_status(page: Page, participant_id: str) -> str | None:
    return await page.locator(f'#signers li[data-participant-id="{participant_id}"]'
                              ).get_attribute("data-status")


async def wait_status(page: Page, participant_id: str, status: str) -> None:
    await page.locator(f'#signers li[data-participant-id="{participant_id}"]'
                       f'[data-status="{status}"]').wait_for(timeout=STATE_TIMEOUT_MS)


async def test_each_party_signs_in_their_own_browser_and_the_court_signs_last(
    client, admin, clock, pages
):
    hearing = await schedule(client, admin, clock, auto_admit=True,
                             roles=("judge", "defendant", "lawyer"))
    r = await client.post(f"{API}/hearings/{hearing.id}/participants", headers=admin,
                          json={"name": "刘书记", "role": "clerk", "location": "courtroom"})
    clerk = await r.json()
    transcripts = client.server.app[HUB].transcripts
    for role, start, text in (("judge", 2.0, "现在开庭。"), ("defendant", 6.0, "我叫张三三。")):
        await transcripts.add(uuid.UUID(hearing.id), SpokenLine(
            uuid.UUID(hearing.ids[role]), start, start + 3, text, "zh"))
    for action in ("open", "start", "close"):
        r = await client.post(f"{API}/hearings/{hearing.id}/{action}", headers=admin)
        assert r.status == 200, await r.text()

    lawyer = await open_signing(pages, client, hearing.tokens["lawyer"], "lawyer")
    await lawyer.locator("#lines li").nth(1).wait_for(timeout=STATE_TIMEOUT_MS)
    assert "现在开庭。" in await lawyer.locator("#lines").inner_text()
    # The lawyer asks for the defendant's name to be corrected.
    line = lawyer.locator("#lines li").nth(1)
    await line.locator('[data-action="ask"]').click()
    await line.locator("textarea").fill("我叫张三。")
    await line.locator('input[name="reason"]').fill("名字多了一个字")
    await line.locator('button[type="submit"]').click()
    await lawyer.locator('#corrections li[data-status="pending"]').wait_for(
        timeout=STATE_TIMEOUT_MS)

    # The clerk accepts it; the line reads as corrected everywhere.
    clerk_page = await open_signing(pages, client, clerk["token"], "clerk")
    await clerk_page.locator("#corrections li").first.wait_for(timeout=STATE_TIMEOUT_MS)
    await clerk_page.locator('#corrections [data-action="accept"]').click()
    await clerk_page.locator('#corrections li[data-status="accepted"]').wait_for(
        timeout=STATE_TIMEOUT_MS)
    assert "我叫张三。" in await clerk_page.locator("#lines").inner_text()
    # The clerk cannot sign before the parties.
    assert await clerk_page.locator("#sign-wait").is_visible()

    # The lawyer reads the corrected version, draws a signature and signs it.
    await lawyer.reload()
    await lawyer.locator("#lines li").first.wait_for(timeout=STATE_TIMEOUT_MS)
    assert "我叫张三。" in await lawyer.locator("#lines").inner_text()
    assert await lawyer.locator("#sign-submit").is_disabled()  # nothing drawn yet
    await draw_signature(lawyer)
    await lawyer.locator("#sign-submit").click()
    await wait_status(lawyer, hearing.ids["lawyer"], "signed")
    assert await lawyer.locator("#my-signature").is_hidden()

    await save_screenshot(lawyer, "signing")

    # The defendant refuses to sign, with a reason, on a prison terminal's kiosk: no language
    # switch, and once done the screen goes back to the terminal by itself.
    defendant = await pages.open(
        str(client.make_url(f"/sign/{hearing.id}")) + f"?kiosk=1#{hearing.tokens['defendant']}",
        "defendant", timezone_id="Asia/Shanghai", locale="zh-CN")
    await defendant.locator("#app").wait_for(timeout=STATE_TIMEOUT_MS)
    assert await defendant.locator("#lang-switch").is_hidden()
    assert await defendant.locator("#sign-kiosk").is_visible()
    defendant.once("dialog", lambda d: asyncio.ensure_future(d.accept("不认可笔录内容")))
    await defendant.locator("#sign-refuse").click()
    await wait_status(defendant, hearing.ids["defendant"], "refused")
    assert await defendant.locator("#sign-back").inner_text() == "返回终端首页"
    await defendant.locator("#sign-back-count").filter(has_text="秒后自动返回").wait_for(
        timeout=STATE_TIMEOUT_MS)

    # The judge, then the clerk, sign last: the record is final.
    judge = await open_signing(pages, client, hearing.tokens["judge"], "judge")
    await draw_signature(judge)
    await judge.locator("#sign-submit").click()
    await wait_status(judge, hearing.ids["judge"], "signed")
    await clerk_page.reload()
    await clerk_page.locator("#lines li").first.wait_for(timeout=STATE_TIMEOUT_MS)
    await draw_signature(clerk_page)
    await clerk_page.locator("#sign-submit").click()
    await clerk_page.locator("#sign-final:not([hidden])").wait_for(timeout=STATE_TIMEOUT_MS)

    r = await client.get(f"{API}/hearings/{hearing.id}/signing", headers=admin)
    state = await r.json()
    assert state["final"] is True
    assert {s["role"]: s["status"] for s in state["signers"]} == {
        "defendant": "refused", "lawyer": "signed", "judge": "signed", "clerk": "signed"}
    assert [c["status"] for c in state["corrections"]] == ["accepted"]
    # The drawn signature is what the server keeps.
    r = await client.get(f"{API}/hearings/{hearing.id}/signing/{hearing.ids['lawyer']}"
                         "/signature", headers=admin)
    assert r.status == 200 and (await r.read())[:8] == b"\x89PNG\r\n\x1a\n"
    # The court's document: the signature block with both drawn signatures and the refusal,
    # the time of each signature in Beijing time.
    r = await client.get(f"{API}/hearings/{hearing.id}/transcript/export/docx", headers=admin)
    document = docx.Document(io.BytesIO(await r.read()))
    paragraphs = [p.text for p in document.paragraphs if p.text]
    block = paragraphs[paragraphs.index("签名") + 1:]
    signed_at = {s["role"]: datetime.fromisoformat(s["at"]).astimezone(BEIJING)
                 for s in state["signers"]}
    assert block == [
        "被告人张三：拒绝签名（不认可笔录内容）",
        f"律师李明（签名）{signed_at['lawyer']:%Y年%-m月%-d日 %H:%M}",
        f"审判员王建国（签名）{signed_at['judge']:%Y年%-m月%-d日 %H:%M}",
        f"书记员刘书记（签名）{signed_at['clerk']:%Y年%-m月%-d日 %H:%M}"], block
    # One picture per signature (identical drawings may share one stored image).
    assert len(document.inline_shapes) == 3
    pictures = [part.blob for part in document.part.package.parts
                if part.content_type == "image/png"]
    assert pictures and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)
    assert "[00:00:06] 被告人 张三：我叫张三。" in paragraphs  # the accepted correction

    # Apart from the join link's own answer (403: the hearing is over; the page offers signing).
    errors = {name: [e for e in log if "status of 403" not in e]
              for name, log in pages.errors().items()}
    assert not any(errors.values()), errors


async def test_at_a_recess_the_judge_opens_the_record_so_far_for_signing(
    client, admin, clock, pages
):
    """Issue 18: at a recess the judge chooses, each party reads and signs the record so far
    from the hearing page; resuming ends that signing, and the closed hearing's full record
    is signed again."""
    hearing = await schedule(client, admin, clock, auto_admit=True,
                             roles=("judge", "defendant"))
    d_id = hearing.ids["defendant"]
    await client.server.app[HUB].transcripts.add(uuid.UUID(hearing.id), SpokenLine(
        uuid.UUID(d_id), 3.0, 6.0, "我没有异议。", "zh"))
    judge = await enter(pages, client, hearing, "judge")
    defendant = await enter(pages, client, hearing, "defendant")
    await command(judge, "open")
    await command(judge, "start")
    await wait_state(defendant, "live")
    # Only at a recess, and only the judge opens it.
    assert await judge.locator("#open-signing").is_disabled()
    assert await defendant.locator("#open-signing").is_hidden()
    await command(judge, "recess")
    await wait_state(defendant, "recess")
    assert await defendant.locator("#signing-open").is_hidden()
    await judge.locator("#open-signing").click()
    await defendant.locator("#signing-open").wait_for(timeout=STATE_TIMEOUT_MS)

    # The party's own tab: the record so far, marked as a recess's, signed with the mouse.
    async with defendant.context.expect_page() as opened:
        await defendant.locator("#signing-link").click()
    page = await opened.value
    await page.locator("#app").wait_for(timeout=STATE_TIMEOUT_MS)
    await page.locator("#sign-stage").wait_for(timeout=STATE_TIMEOUT_MS)
    assert "我没有异议。" in await page.locator("#lines").inner_text()
    await page.wait_for_function(
        "() => !document.getElementById('player').hidden"
        " || document.getElementById('player-empty').textContent !== ''",
        timeout=STATE_TIMEOUT_MS, polling=100)
    await draw_signature(page)
    await page.locator("#sign-submit").click()
    await wait_status(page, d_id, "signed")

    # Back in session: the recess's signing is over.
    await command(judge, "resume")
    await wait_state(defendant, "live")
    await defendant.locator("#signing-open").wait_for(state="hidden", timeout=STATE_TIMEOUT_MS)
    await command(judge, "close")
    await judge.locator('[data-confirm="close"]').click()
    await wait_state(defendant, "ended")
    # The closed hearing's record is a new version: signed again, not carried over.
    final = await open_signing(pages, client, hearing.tokens["defendant"], "sign-final")
    assert await final.locator("#sign-stage").is_hidden()
    assert await signer_status(final, d_id) != "signed"
    assert await final.locator("#my-signature").is_visible()

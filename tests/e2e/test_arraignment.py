"""One remote arraignment end to end in real Chromium, as the law runs it (issue 18): identity
checks on the judge's console, a witness called in and sent out, a party's network dropping and
coming back (logged as a network failure), a warning, the close, each participant signing in
their own browser with a signature drawn with the mouse, the judge and clerk last, and the
court's DOCX read back with python-docx: Beijing times, the signature pictures, the identity
checks and the attendance notes."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import docx
import pytest

from tests.e2e.conftest import pass_device_check
from tests.e2e.link import Link, link_to
from tests.e2e.test_hearing_room import API, command, enter, open_page, row, schedule
from tests.e2e.test_join import STATE_TIMEOUT_MS, join_url, wait_state
from tests.e2e.test_signing import BEIJING, draw_signature, open_signing, wait_status

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def post(client: Any, admin: dict[str, str], path: str, body: dict[str, Any]
               ) -> dict[str, Any]:
    r = await client.post(API + path, json=body, headers=admin)
    assert r.status == 201, await r.text()
    reply: dict[str, Any] = await r.json()
    return reply


@pytest.fixture
async def link(client: Any) -> AsyncIterator[Link]:
    async with link_to(client.server.port) as link:
        yield link


async def test_an_arraignment_from_identity_checks_to_the_signed_record(
    client, admin, clock, pages, link
):
    hearing = await schedule(client, admin, clock, auto_admit=True)
    clerk = await post(client, admin, f"/hearings/{hearing.id}/participants",
                       {"name": "刘书记", "role": "clerk", "location": "courtroom"})
    witness = await post(client, admin, f"/hearings/{hearing.id}/participants",
                         {"name": "陈证人", "role": "witness", "location": "remote"})
    d_id, l_id, w_id = hearing.ids["defendant"], hearing.ids["lawyer"], witness["id"]

    judge = await enter(pages, client, hearing, "judge")
    defendant = await enter(pages, client, hearing, "defendant")
    # The lawyer's browser reaches the server through a link the test can cut.
    lawyer = await open_page(pages, link.url(f"/join/{hearing.tokens['lawyer']}"), "lawyer")
    await pass_device_check(lawyer)
    await wait_state(lawyer, "live")

    # Identity checks before the session: each party holds an ID to the camera.
    for pid in (d_id, l_id):
        verify = row(judge, pid).locator('button[data-action="verify_identity"]')
        await judge.wait_for_function("b => !b.disabled", arg=await verify.element_handle(),
                                      timeout=STATE_TIMEOUT_MS)
        await verify.click()
        await row(judge, pid).locator('.tag.identity[data-identity="verified"]').wait_for(
            timeout=STATE_TIMEOUT_MS)
    await command(judge, "open")
    await command(judge, "start")
    await wait_state(lawyer, "live")

    # The witness waits outside, is called in, testifies, and is sent out again.
    witness_page = await open_page(pages, join_url(client, witness["token"]), "witness")
    await witness_page.locator("#device-check").get_by_role("button", name="进入").click(
        timeout=STATE_TIMEOUT_MS)
    await wait_state(witness_page, "lobby")
    await row(judge, w_id).locator('button[data-action="admit"]').click()
    await wait_state(witness_page, "live")
    await row(judge, w_id).locator('button[data-action="send_out"]').click()
    await wait_state(witness_page, "lobby")

    # The lawyer's network drops and comes back.
    await link.cut()
    await row(judge, l_id).get_by_text("未在线").wait_for(timeout=STATE_TIMEOUT_MS)
    await link.restore()
    await wait_state(lawyer, "live")
    await row(judge, l_id).get_by_text("未在线").wait_for(state="detached",
                                                        timeout=STATE_TIMEOUT_MS)

    # A warning to the defendant.
    await row(judge, d_id).locator('button[data-action="warn"]').click()
    await defendant.get_by_text("请遵守法庭纪律").wait_for(timeout=STATE_TIMEOUT_MS)

    # Close (asked to confirm): everyone's page ends.
    await command(judge, "close")
    await judge.locator('[data-confirm="close"]').click()
    for page in (judge, defendant, lawyer):
        await wait_state(page, "ended")

    # Each signs in their own browser; the witness refuses; the judge and clerk last.
    for token, pid, name in ((hearing.tokens["defendant"], d_id, "sign-defendant"),
                             (hearing.tokens["lawyer"], l_id, "sign-lawyer")):
        page = await open_signing(pages, client, token, name)
        await draw_signature(page)
        await page.locator("#sign-submit").click()
        await wait_status(page, pid, "signed")
    page = await open_signing(pages, client, witness["token"], "sign-witness")
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept("未看完笔录")))
    await page.locator("#sign-refuse").click()
    await wait_status(page, w_id, "refused")
    page = await open_signing(pages, client, hearing.tokens["judge"], "sign-judge")
    await draw_signature(page)
    await page.locator("#sign-submit").click()
    await wait_status(page, hearing.ids["judge"], "signed")
    page = await open_signing(pages, client, clerk["token"], "sign-clerk")
    await draw_signature(page)
    await page.locator("#sign-submit").click()
    await page.locator("#sign-final:not([hidden])").wait_for(timeout=STATE_TIMEOUT_MS)

    # The court's document.
    r = await client.get(f"{API}/hearings/{hearing.id}/transcript/export/docx", headers=admin)
    assert r.status == 200
    document = docx.Document(io.BytesIO(await r.read()))
    paragraphs = [p.text for p in document.paragraphs if p.text]
    table = {row_.cells[0].text: row_.cells[1].text for row_ in document.tables[0].rows}
    assert (table["审判人员"], table["书记员"], table["证人"]) == ("王建国", "刘书记", "陈证人")
    assert "（北京时间）" in table["时间"]
    r = await client.get(f"{API}/hearings/{hearing.id}/identity-checks", headers=admin)
    checks = (await r.json())["items"]
    checked = [datetime.fromisoformat(c["at"]).astimezone(BEIJING) for c in checks]
    assert [p for p in paragraphs if "身份核验通过" in p] == [
        f"{checked[0]:%H:%M} 被告人张三：身份核验通过",
        f"{checked[1]:%H:%M} 律师李明：身份核验通过"]
    notes = paragraphs[paragraphs.index("到庭及中断情况") + 1:paragraphs.index("签名")]
    assert any(n.endswith("律师李明离开庭审（网络中断）") for n in notes), notes
    assert any(n.endswith("律师李明重新加入") for n in notes), notes
    assert any("法庭警告被告人张三：" in n for n in notes), notes
    r = await client.get(f"{API}/hearings/{hearing.id}/attendance", headers=admin)
    report = {a["name"]: a for a in (await r.json())["items"]}
    # The cut is an absence for network loss (on a machine busy enough to miss the tests'
    # 1 s heartbeat's pong there may be another, of the same cause: never a walk-out).
    drops = report["李明"]["absences"]
    assert drops and all(d["cause"] == "network_lost" and not d["walk_out"] for d in drops), drops
    for drop in drops:
        left = datetime.fromisoformat(drop["left_at"]).astimezone(BEIJING)
        assert f"{left:%H:%M} 律师李明离开庭审（网络中断）" in notes, notes
    block = paragraphs[paragraphs.index("签名") + 1:]
    assert block[2] == "证人陈证人：拒绝签名（未看完笔录）", block
    assert [b.split("（签名）")[0] for b in block if "（签名）" in b] == [
        "被告人张三", "律师李明", "审判员王建国", "书记员刘书记"], block
    assert len(document.inline_shapes) == 4
    errors = {name: [e for e in log if "status of 403" not in e]
              for name, log in pages.errors().items()}
    assert not any(errors.values()), errors

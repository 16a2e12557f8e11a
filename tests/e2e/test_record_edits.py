"""The clerk's structural edits on the review page in real Chromium: change a line's speaker,
split one where the cursor is, delete one, each a new version; then two versions compared side
by side."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from courtrooms.transcripts import SpokenLine
from tests.e2e.conftest import open_staff_page, save_screenshot
from tests.e2e.test_review import WAIT_MS, page_ready
from tests.signaling.conftest import schedule
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_the_judge_edits_the_record_and_compares_two_versions(client, admin, clock, pages):
    hearing = await schedule(client, admin, clock)
    transcripts = client.server.app[HUB].transcripts
    said = [("judge", 1.0, "现在开庭。"), ("judge", 4.0, "我叫张三。我认罪。"),
            ("lawyer", 9.0, "辩护人没有异议。")]
    for role, start, text in said:
        await transcripts.add(uuid.UUID(hearing.id), SpokenLine(
            uuid.UUID(hearing.ids[role]), start, start + 3, text, "zh"))
    url = str(client.make_url(f"/review/{hearing.id}")) + f"#token={hearing.tokens['judge']}"
    page = await open_staff_page(pages, url, "judge")
    await page_ready(page, 3)

    async def adjust(index: int) -> None:
        await page.locator("#transcript li.line").nth(index).locator(
            '[data-action="structure"]').click()
        await page.locator(".structure-tools").wait_for(timeout=WAIT_MS)

    async def lines() -> list[str]:
        return await page.locator("#transcript li.line").evaluate_all(
            "ls => ls.map(l => l.querySelector('.speaker').textContent + '|' +"
            " l.querySelector('.line-text').textContent)")

    # The second line was said by the defendant, not the judge.
    await adjust(1)
    tools = page.locator(".structure-tools")
    await tools.locator('select[name="speaker"]').first.select_option(hearing.ids["defendant"])
    await tools.locator('[data-edit="speaker"]').click()
    await page.wait_for_function(
        "() => document.querySelectorAll('#transcript li.line .speaker')[1]?.textContent"
        " === 'Zhang San'", timeout=WAIT_MS)
    # Split it after its first sentence, at the cursor.
    await adjust(1)
    split = page.locator('.structure-tools input[name="split"]')
    await split.evaluate("i => i.setSelectionRange(5, 5)")
    await page.locator('.structure-tools [data-edit="split"]').click()
    await page.locator("#transcript li.line").nth(3).wait_for(timeout=WAIT_MS)
    assert await lines() == ["Judge Wang|现在开庭。", "Zhang San|我叫张三。", "Zhang San|我认罪。",
                             "Lawyer Li|辩护人没有异议。"]
    # Delete the lawyer's line (asked to confirm).
    await adjust(3)
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.locator('.structure-tools [data-edit="delete"]').click()
    await page.wait_for_function(
        "() => document.querySelectorAll('#transcript li.line').length === 3", timeout=WAIT_MS)

    # Versions 1 (live) and 4 side by side: what went and what came.
    await page.locator("#versions:not([hidden])").wait_for(timeout=WAIT_MS)
    await page.locator("#compare-a").select_option("1")
    await page.locator("#compare-b").select_option("4")
    await page.locator("#compare-run").click()
    await page.locator("#compare-table:not([hidden])").wait_for(timeout=WAIT_MS)
    await page.locator("#compare-table").scroll_into_view_if_needed()
    await save_screenshot(page, "record-versions")
    rows = await page.locator("#compare-table tbody tr").evaluate_all(
        "rs => rs.map(r => [r.dataset.change, ...[...r.cells].map(c => c.textContent)])")
    assert rows[0] == ["same", "Judge Wang 现在开庭。", "Judge Wang 现在开庭。"], rows
    assert sorted(rows[1:]) == [
        ["added", "", "Zhang San 我叫张三。"],
        ["added", "", "Zhang San 我认罪。"],
        ["removed", "Judge Wang 我叫张三。我认罪。", ""],
        ["removed", "Lawyer Li 辩护人没有异议。", ""],
    ], rows
    # Each version names its edit and who made it, in the court's time.
    options = await page.locator("#compare-b option").all_inner_texts()
    assert options[0] == "第 1 版：庭审实时记录"
    assert options[-1].startswith("第 4 版：删除（Judge Wang"), options
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript/versions", headers=admin)
    assert [v["edit"] for v in (await r.json())["items"]] == [None, "speaker", "split", "delete"]
    assert not any(pages.errors().values()), pages.errors()

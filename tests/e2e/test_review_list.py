"""The list of closed hearings to review (web/static/staff/review-list.js) in real Chromium:
closed hearings of the date range, where each was held (court and courtroom), found by case
number, each opening its review; hearings not closed are not listed."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import open_staff_page, staff_sign_in
from tests.e2e.test_hearing_room import API, schedule

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

WAIT_MS = 20_000


async def test_closed_hearings_are_listed_with_where_they_were_held(client, admin, clock, pages):
    closed = await schedule(client, admin, clock, auto_admit=True, roles=("judge",))
    for action in ("open", "start", "close"):
        r = await client.post(f"{API}/hearings/{closed.id}/{action}", headers=admin)
        assert r.status == 200, await r.text()
    still = await client.post(f"{API}/hearings", headers=admin, json={
        "case_number": "(2026)京0105刑初2048号", "title": "李四诈骗案", "kind": "trial",
        "scheduled_start": clock.now.isoformat(),
        "scheduled_end": clock.now.replace(hour=clock.now.hour + 1).isoformat()})
    assert still.status == 201, await still.text()

    page = await open_staff_page(pages, str(client.make_url("/review")), "clerk")
    await staff_sign_in(page, ADMIN_TOKEN)
    # The range reaches back to the hearings' day (the browser's today is not the registry's).
    await page.locator("#range-from").fill(clock.now.strftime("%Y-%m-%d"))
    await page.locator("#review-search [type=submit]").click()
    row = page.locator(f'#review-rows tr[data-hearing-id="{closed.id}"]')
    await row.wait_for(timeout=WAIT_MS)
    text = await row.inner_text()
    assert "(2026)京0105刑初1024号" in text and "北京市朝阳区人民法院 · 第三法庭" in text, text
    assert await page.locator("#review-rows tr").count() == 1  # not the one still scheduled
    assert await row.locator("a").get_attribute("href") == f"/review/{closed.id}"
    # Found by case number or title as the clerk types.
    await page.locator("#review-query").fill("盗窃")
    assert await page.locator("#review-rows tr").count() == 1
    await page.locator("#review-query").fill("诈骗")
    await page.locator("#review-empty").wait_for(timeout=WAIT_MS)
    assert await page.locator("#review-rows tr").count() == 0

"""Supervision in real Chromium: hearings live now on /live with who is present, refreshed as
real aiortc participants come; "watch" makes the supervisor, signed in with their account, an
observer in a new tab, named by the account."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from playwright.async_api import Page

from courtrooms.models import StaffRole
from courtrooms.schemas import StaffAccountIn
from tests.clients import HearingClient
from tests.e2e.conftest import open_staff_page, save_screenshot, staff_sign_in
from tests.signaling.conftest import schedule
from web.keys import STAFF_ACCOUNTS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# The page polls every 5 s: a change shows within two polls.
REFRESH_WAIT_MS = 12_000
SUPERVISOR_PASSWORD = "监督员的测试密码 2026"


async def transition(client: Any, admin: dict[str, str], hearing_id: str, action: str) -> None:
    r = await client.post(f"/api/v1/hearings/{hearing_id}/{action}", headers=admin)
    assert r.status == 200, await r.text()


async def cell(page: Page, hearing_id: str, name: str, text: str) -> None:
    """Wait until the hearing's row shows `text` in its `name` column."""
    await page.wait_for_function(
        """([id, name, text]) => {
          const td = document.querySelector(`#live-rows tr[data-hearing-id="${id}"] td.${name}`);
          return td && td.textContent.trim() === text;
        }""",
        arg=[hearing_id, name, text], timeout=REFRESH_WAIT_MS,
    )


async def test_a_live_hearing_shows_with_who_is_present_and_a_supervisor_watches(
    client, admin, clock, pages
):
    hearing = await schedule(client, admin, clock)
    page = await open_staff_page(pages, str(client.make_url("/live")), "supervisor")
    # A session cookie kept from before that no longer holds a session: the form comes back
    # and says so.
    await page.context.add_cookies([{"name": "tingshen_staff", "value": "stale-session",
                                     "url": str(client.make_url("/"))}])
    await page.reload()
    await page.locator("#signin-message").get_by_text("令牌无效").wait_for()
    assert await page.locator("#app").is_hidden()
    # A supervisor of the hearing's court, with their own account.
    court_id = (await (await client.get(f"/api/v1/hearings/{hearing.id}", headers=admin)
                       ).json())["court_id"]
    await client.server.app[STAFF_ACCOUNTS].add(
        StaffAccountIn(name="陈监督", login="chen.sup", roles=[StaffRole.SUPERVISOR],
                       court_id=uuid.UUID(court_id)), SUPERVISOR_PASSWORD, "test")
    await staff_sign_in(page, SUPERVISOR_PASSWORD, login="chen.sup")
    # Scheduled is not live.
    await page.locator("#live-empty").wait_for(state="visible")
    assert await page.locator("#live-rows tr").count() == 0

    joined: list[HearingClient] = []
    try:
        judge = HearingClient(hearing.base_url, "judge")
        joined.append(judge)
        await judge.join(hearing.tokens["judge"])
        await judge.wait_for(lambda: judge.hearing_state is not None)
        await transition(client, admin, hearing.id, "open")
        row = page.locator(f'#live-rows tr[data-hearing-id="{hearing.id}"]')
        await row.wait_for(timeout=REFRESH_WAIT_MS)
        # The judge is present of the three participants; nobody supervises yet.
        await cell(page, hearing.id, "present", "1 / 3")
        await cell(page, hearing.id, "observers", "0")
        text = await row.inner_text()
        assert "(2026)测01刑初1号" in text and "Test trial" in text and "Room 1" in text
        assert "候审中" in text  # open: the lobby is open

        lawyer = HearingClient(hearing.base_url, "lawyer")
        joined.append(lawyer)
        await lawyer.join(hearing.tokens["lawyer"])
        await transition(client, admin, hearing.id, "start")
        await cell(page, hearing.id, "present", "2 / 3")
        assert "庭审中" in await row.inner_text()
        await save_screenshot(page, "live")

        # Watch: the observer's link opens in a new tab, named by the supervisor's account
        # (no name to type, and none to change).
        assert await page.locator("#observer-rename").is_hidden()
        async with page.context.expect_page() as opened:
            await row.locator("[data-action=watch]").click()
        tab = await opened.value
        assert await page.locator("#observer-form").is_hidden()
        await tab.wait_for_url("**/join/**", timeout=REFRESH_WAIT_MS)
        r = await client.get(f"/api/v1/hearings/{hearing.id}/participants", headers=admin)
        observers = [p for p in (await r.json())["items"] if p["role"] == "observer"]
        assert [p["name"] for p in observers] == ["陈监督"]
        assert tab.url.startswith(str(client.make_url("/join/")))
        assert await page.locator("#observer-name").inner_text() == "陈监督"
        # The observer is counted as an observer, not as a participant present.
        await cell(page, hearing.id, "observers", "1")
        await cell(page, hearing.id, "present", "2 / 3")
        await tab.close()

        # Closed is no longer live.
        await transition(client, admin, hearing.id, "close")
        await page.locator("#live-empty").wait_for(state="visible", timeout=REFRESH_WAIT_MS)
    finally:
        for c in joined:
            await c.close()
        await asyncio.sleep(0)
    errors = [e for e in pages.errors()["supervisor"] if "status of 401" not in e]
    assert not errors, pages.errors()

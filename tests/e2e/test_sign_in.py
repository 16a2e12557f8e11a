"""Staff sign in with their accounts in real Chromium (issue 19): the sign-in form on a staff
page takes a login and password, says what went wrong, shows who is signed in; signing out
everywhere and disabling the account close the sessions of every browser."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page

from courtrooms.models import StaffRole
from courtrooms.schemas import StaffAccountIn
from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import Pages, open_staff_page, staff_sign_in
from web.endpoints import STAFF_COOKIE
from web.keys import STAFF_ACCOUNTS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "书记员的密码 2026"


async def signed_in_as(page: Page) -> str:
    await page.locator("#app").wait_for(state="visible")
    return (await page.locator("#signed-in-as").inner_text()).strip()


async def refused_with(page: Page, login: str, password: str, message: str) -> None:
    await page.locator("#signin-login").fill(login)
    await page.locator("#signin-password").fill(password)
    await page.locator("#signin-form button[type=submit]").click()
    await page.locator("#signin-message").get_by_text(message).wait_for()
    assert await page.locator("#app").is_hidden()


async def test_a_clerk_signs_in_with_their_account_and_signs_out_everywhere(
    client: TestClient, pages: Pages
) -> None:
    accounts = client.server.app[STAFF_ACCOUNTS]
    for name, login, role in (("赵书记员", "zhao.clerk", StaffRole.CLERK),
                              ("管理员", "root", StaffRole.ADMINISTRATOR)):
        await accounts.add(StaffAccountIn(name=name, login=login, roles=[role]), PASSWORD,
                           "clerk:test")
    url = str(client.make_url("/schedule"))
    page = await open_staff_page(pages, url, "clerk")
    await page.locator("#signin-login").wait_for(state="visible")
    # An administrator exists: the admin token no longer signs in; a wrong password is named.
    await refused_with(page, "", ADMIN_TOKEN, "已有管理员账号")
    await refused_with(page, "zhao.clerk", "not the password", "登录名或密码不正确")

    await staff_sign_in(page, PASSWORD, login="zhao.clerk")
    assert await signed_in_as(page) == "已登录：赵书记员"
    [cookie] = [c for c in await page.context.cookies() if c["name"] == STAFF_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert PASSWORD not in await page.content()
    # A reload keeps the session (the cookie), and says whose it is.
    await page.reload()
    assert await signed_in_as(page) == "已登录：赵书记员"

    # The same clerk in a second browser; signing out everywhere in the first ends both.
    other = await open_staff_page(pages, str(client.make_url("/live")), "clerk-elsewhere")
    await staff_sign_in(other, PASSWORD, login="zhao.clerk")
    await page.locator("#sign-out-everywhere").click()
    await page.locator("#signin-message").get_by_text("已在所有设备上退出登录").wait_for()
    await other.reload()
    await other.locator("#signin-form").wait_for(state="visible")
    assert await other.locator("#app").is_hidden()

    # Disabled while signed in: the next request of the open page is refused.
    await staff_sign_in(page, PASSWORD, login="zhao.clerk")
    await accounts.disable("zhao.clerk", "clerk:test")
    await page.reload()
    await page.locator("#signin-message").get_by_text("登录已失效").wait_for()
    assert await page.locator("#app").is_hidden()
    await refused_with(page, "zhao.clerk", PASSWORD, "登录名或密码不正确")
    assert not [e for errors in pages.errors().values() for e in errors
                if "401" not in e and "403" not in e]

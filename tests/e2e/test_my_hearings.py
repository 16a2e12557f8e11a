"""Judges and clerks from their accounts in real Chromium (issue 19 part 4): the clerk
schedules picking the judge from the court's accounts, a conflict for that judge found by the
account whatever name was typed; the judge signs in, finds the hearing under "my hearings" on
the court's clock, enters the courtroom without a link and is live there as its judge; another
judge is refused that hearing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page

from courtrooms.models import StaffAccount, StaffRole
from courtrooms.schemas import StaffAccountIn
from tests.e2e.conftest import (
    Pages,
    open_staff_page,
    pass_device_check,
    save_screenshot,
    staff_sign_in,
    wait_for_state,
)
from tests.e2e.test_schedule import (
    TZ,
    api,
    conflict_state,
    court,
    open_form,
    wait_conflict_state,
)
from web.keys import STAFF_ACCOUNTS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "法院工作人员的密码 2026"
WAIT_MS = 10_000
LIVE_TIMEOUT_MS = 40_000
# What another judge's page gets when it asks to enter a hearing not theirs.
ENTER = """async (hearing) => {
  const session = await (await fetch("/api/v1/session")).json();
  const reply = await fetch(`/api/v1/hearings/${hearing}/enter`, {
    method: "POST", headers: {"X-CSRF-Token": session.csrf_token}});
  return {status: reply.status, body: await reply.json()};
}"""


async def account(client: Any, name: str, login: str, role: StaffRole,
                  court_id: str) -> StaffAccount:
    return await client.server.app[STAFF_ACCOUNTS].add(
        StaffAccountIn(name=name, login=login, roles=[role], court_id=uuid.UUID(court_id)),
        PASSWORD, "test")


async def signed_in(pages: Pages, client: Any, path: str, name: str, login: str) -> Page:
    page = await open_staff_page(pages, str(client.make_url(path)), name)
    await staff_sign_in(page, PASSWORD, login=login)
    return page


async def test_the_judge_enters_their_hearing_from_their_account_and_the_clerk_picks_judges(
    client, admin, clock, pages
):
    world = await court(client, admin)
    room1, room2 = (r["id"] for r in world["rooms"])
    court_id = world["court"]["id"]
    judge = await account(client, "王审判员", "wang.judge", StaffRole.JUDGE, court_id)
    other = await account(client, "李审判员", "li.judge", StaffRole.JUDGE, court_id)
    clerk = await account(client, "赵书记员", "zhao.clerk", StaffRole.CLERK, court_id)
    # The judge's hearing, starting now (09:00 in Beijing): its judge is the account.
    start, end = clock.now, clock.now + timedelta(hours=2)
    hearing = await api(client, admin, "POST", "/hearings", {
        "case_number": "(2026)京0105刑初77号", "title": "孙某盗窃案", "kind": "trial",
        "courtroom_id": room1, "scheduled_start": start.isoformat(),
        "scheduled_end": end.isoformat(), "judge_account_id": str(judge.id)}, 201)
    await api(client, admin, "POST", f"/hearings/{hearing['id']}/participants",
              {"name": "孙某", "role": "defendant", "location": "remote"}, 201)

    # The clerk schedules another hearing over it, in the other courtroom.
    desk = await signed_in(pages, client, "/schedule", "clerk", "zhao.clerk")
    await open_form(desk, "(2026)京0105刑初78号", "周某诈骗案", room2,
                    (start + timedelta(minutes=30)).astimezone(TZ), (end).astimezone(TZ))
    rows = desk.locator("#form-people .person-row")
    judge_row, clerk_row = rows.nth(0), rows.nth(1)
    # The clerk is the one scheduling, by account; the judge is to be picked or typed.
    assert await clerk_row.locator("[name=account]").input_value() == str(clerk.id)
    assert await clerk_row.locator("[name=name]").is_hidden()
    # Typed as "王法官", the judge matches no one: names alone cannot tell.
    await judge_row.locator("[name=name]").fill("王法官")
    assert await conflict_state(desk) == "ok"
    # Picked as the account, the same judge is found busy, whatever name they were typed with.
    await judge_row.locator("[name=account]").select_option(str(judge.id))
    assert await judge_row.locator("[name=name]").is_hidden()
    await wait_conflict_state(desk, "conflict")
    clash = desk.locator('#form-conflicts li[data-resource="judge"]')
    assert hearing["id"] == await clash.get_attribute("data-hearing-id")
    assert "王审判员" in await clash.inner_text() and "孙某盗窃案" in await clash.inner_text()
    assert await desk.locator("#form-save").is_disabled()
    # Another judge of the court is free then; saved, the hearing is theirs, by account.
    await judge_row.locator("[name=account]").select_option(str(other.id))
    await wait_conflict_state(desk, "ok")
    await desk.locator("#form-save").click()
    await desk.locator("#invites").wait_for(timeout=WAIT_MS)
    seats = desk.locator('#invites [data-seat="account"]')
    assert await seats.count() == 2  # no link to send: they enter from their accounts
    listed = await api(client, admin, "GET", "/hearings")
    [made] = [h for h in listed["items"] if h["id"] != hearing["id"]]
    assert (made["judge_account_id"], made["clerk_account_id"]) == (str(other.id),
                                                                    str(clerk.id))
    people = (await api(client, admin, "GET", f"/hearings/{made['id']}"))["participants"]
    assert sorted((p["role"], p["name"], p["account_id"]) for p in people) == [
        ("clerk", "赵书记员", str(clerk.id)), ("judge", "李审判员", str(other.id))]

    # The judge signs in: their hearing is under "my hearings", on the court's clock.
    mine = await signed_in(pages, client, "/my", "judge", "wang.judge")
    row = mine.locator(f'#my-upcoming tr[data-hearing-id="{hearing["id"]}"]')
    await row.wait_for(timeout=WAIT_MS)
    text = await row.inner_text()
    assert "(2026)京0105刑初77号" in text and "审判员" in text and "09:00" in text, text
    assert await mine.locator("#my-upcoming tr").count() == 1
    assert await row.locator('[data-action="review"]').get_attribute("href") == \
        f"/review/{hearing['id']}"
    await save_screenshot(mine, "my-hearings")
    # "进入法庭": the courtroom opens in a new tab, as the judge, with no link given them.
    async with mine.context.expect_page() as opened:
        await row.locator('[data-action="enter"]').click()
    room = await opened.value
    await room.wait_for_url("**/join/**", timeout=WAIT_MS)
    await pass_device_check(room)
    await wait_for_state(room, "live", LIVE_TIMEOUT_MS)
    seat = await room.evaluate("() => document.body.dataset.participantId")
    assert await room.evaluate("() => document.body.dataset.role") == "judge"
    people = (await api(client, admin, "GET", f"/hearings/{hearing['id']}"))["participants"]
    assert [(p["id"], p["name"]) for p in people if p["account_id"] == str(judge.id)] == [
        (seat, "王审判员")]

    # "回放与笔录": the review of the hearing, opened with the judge's own session.
    await row.locator('[data-action="review"]').click()
    await mine.wait_for_url(f"**/review/{hearing['id']}", timeout=WAIT_MS)
    await mine.locator("#app").wait_for(state="visible", timeout=WAIT_MS)
    await mine.get_by_text("(2026)京0105刑初77号").first.wait_for(timeout=WAIT_MS)
    assert await mine.locator("#staff-nav").is_visible()
    assert not [line for line in pages.console["judge"] if line.startswith("http 4")], \
        pages.console["judge"]

    # Another judge, signing in on the clerk's calendar, lands on their own hearings: they
    # see only theirs, and are refused the first one.
    theirs = await signed_in(pages, client, "/schedule", "other-judge", "li.judge")
    await theirs.wait_for_url("**/my", timeout=WAIT_MS)
    await theirs.locator(f'#my-upcoming tr[data-hearing-id="{made["id"]}"]').wait_for(
        timeout=WAIT_MS)
    assert await theirs.locator("#my-upcoming tr").count() == 1
    refused = await theirs.evaluate(ENTER, hearing["id"])
    assert refused["status"] == 403, refused
    assert refused["body"]["error"]["code"] == "not_permitted"
    assert "only the hearing's judge may enter it" in refused["body"]["error"]["message"]
    errors = {name: [e for e in lines if "status of 403" not in e]
              for name, lines in pages.errors().items()}
    assert not any(errors.values()), errors

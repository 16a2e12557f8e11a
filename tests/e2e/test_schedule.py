"""The clerk's schedule in real Chromium against the real server: sign in, create a hearing
with its participants through the form, find it on the week calendar where it belongs, see
conflicts flagged before saving, reschedule it, reissue a link, and view by prison terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import (
    COURT_TIMEZONE,
    Pages,
    open_staff_page,
    save_screenshot,
    staff_sign_in,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

API = "/api/v1"
TZ = ZoneInfo(COURT_TIMEZONE)
CASE = "(2026)京0105刑初321号"
WAIT_MS = 10_000


async def api(client: Any, admin: dict[str, str], method: str, path: str,
              body: dict[str, Any] | None = None, status: int = 200) -> Any:
    r = await client.request(method, API + path, json=body, headers=admin)
    assert r.status == status, (path, r.status, await r.text())
    return await r.json() if r.status != 204 else None


async def court(client: Any, admin: dict[str, str]) -> dict[str, Any]:
    c = await api(client, admin, "POST", "/courts", {"name": "北京市朝阳区人民法院"}, 201)
    rooms = [await api(client, admin, "POST", "/courtrooms",
                       {"court_id": c["id"], "name": name}, 201)
             for name in ("第一法庭", "第二法庭")]
    terminal = await api(client, admin, "POST", "/prison-terminals",
                         {"name": "一号终端", "prison": "北京市第二监狱"}, 201)
    return {"court": c, "rooms": rooms, "terminal": terminal}


def this_week(day: int, hour: int, minute: int = 0) -> datetime:
    """`day` (0 = Monday) of the week the browser shows first, at a local time."""
    now = datetime.now(TZ)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
    return (monday + timedelta(days=day)).replace(hour=hour, minute=minute)


def local_input(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


async def open_form(page: Page, case: str, title: str, room: str, start: datetime,
                    end: datetime) -> None:
    await page.locator("#new-hearing").click()
    form = page.locator("#hearing-form")
    await form.locator("[name=case_number]").fill(case)
    await form.locator("[name=title]").fill(title)
    await form.locator("[name=courtroom]").select_option(room)
    await form.locator("[name=start]").fill(local_input(start))
    await form.locator("[name=end]").fill(local_input(end))


async def person(page: Page, index: int, name: str, role: str, location: str,
                 terminal: str | None = None) -> None:
    rows = page.locator("#form-people .person-row")
    if await rows.count() <= index:
        await page.locator("[data-action=add-person]").click()
    row = rows.nth(index)
    await row.locator("[name=name]").fill(name)
    await row.locator("[name=role]").select_option(role)
    await row.locator("[name=location]").select_option(location)
    if terminal:
        await row.locator("[name=terminal]").select_option(terminal)


async def conflict_state(page: Page) -> str:
    box = page.locator("#form-conflicts")
    await page.wait_for_function(
        "() => !document.querySelector('#form-conflicts').textContent.includes('正在检查')",
        timeout=WAIT_MS)
    return await box.get_attribute("data-state") or ""


async def wait_conflict_state(page: Page, state: str) -> None:
    await page.wait_for_function(
        "s => document.querySelector('#form-conflicts')?.dataset.state === s", arg=state,
        timeout=WAIT_MS)


async def block_geometry(page: Page, hearing_id: str, lane: str, day: str) -> dict[str, float]:
    """Where the hearing's block sits in its day's lane, as fractions of the 8–20 column."""
    block = page.locator(f'.lane[data-lane="{lane}"][data-day="{day}"] '
                         f'.hb[data-hearing-id="{hearing_id}"]')
    await block.wait_for(timeout=WAIT_MS)
    return await block.evaluate("""b => {
      const lane = b.parentElement.getBoundingClientRect(), box = b.getBoundingClientRect();
      return {top: (box.top - lane.top) / lane.height, height: box.height / lane.height,
              left: box.left - lane.left, right: lane.right - box.right};
    }""")


def real_errors(pages: Pages) -> dict[str, list[str]]:
    """Console errors, without the 401 of a wrong token typed on purpose."""
    return {name: [e for e in errors if "status of 401" not in e]
            for name, errors in pages.errors().items()}


async def test_clerk_creates_a_hearing_sees_it_on_the_calendar_and_conflicts_before_saving(
    client, admin, clock, pages
):
    world = await court(client, admin)
    room1, room2 = (r["id"] for r in world["rooms"])
    terminal = world["terminal"]["id"]
    page = await open_staff_page(pages, str(client.make_url("/schedule")), "clerk")

    # Signed out, the page asks for the token; a wrong one is refused with a clear message.
    await page.locator("#signin-form").wait_for()
    assert await page.locator("#app").is_hidden()
    await page.locator("#signin-password").fill("not-the-token")
    await page.locator("#signin-form button[type=submit]").click()
    await page.get_by_text("令牌不正确").wait_for(timeout=WAIT_MS)
    await staff_sign_in(page, ADMIN_TOKEN)
    # One lane per courtroom, per day of the week.
    await page.locator(f'.lane[data-lane="{room2}"]').nth(6).wait_for(timeout=WAIT_MS)
    assert await page.locator(".day-head").count() == 7
    assert await page.locator(".lane").count() == 14
    # The browser is in Los Angeles; the calendar, the form and every time are the court's.
    assert await page.locator("#zone-label").inner_text() == "北京时间"

    # A new hearing on Wednesday 10:00–11:30 local time, with its participants.
    start, end = this_week(2, 10), this_week(2, 11, 30)
    await open_form(page, CASE, "赵某盗窃案", room1, start, end)
    await page.locator("#hearing-form [name=kind]").select_option("arraignment")
    await person(page, 0, "王审判", "judge", "courtroom")
    await person(page, 1, "刘书记", "clerk", "courtroom")
    await person(page, 2, "赵某", "defendant", "prison", terminal)
    assert await conflict_state(page) == "ok"
    # The last digits of a party's ID number, when the court has them (asked for at each
    # join); the judge and clerk are not asked. Malformed ones are caught before anything
    # is saved.
    rows = page.locator("#form-people .person-row")
    for i in (0, 1):
        assert await rows.nth(i).locator("[name=id_number_last4]").is_hidden()
    await rows.nth(2).locator("[name=id_number_last4]").fill("12a4")
    await page.locator("#form-save").click()
    await page.locator("#form-error").get_by_text("身份证后四位应为").wait_for(timeout=WAIT_MS)
    assert await rows.nth(2).locator("[name=id_number_last4]").get_attribute(
        "aria-invalid") == "true"
    assert (await api(client, admin, "GET", "/hearings"))["total"] == 0
    await rows.nth(2).locator("[name=id_number_last4]").fill("123x")
    # While unsaved, the calendar already shows where it would go.
    draft = page.locator(f'.lane[data-lane="{room1}"][data-day="{start:%Y-%m-%d}"] .hb.draft')
    await draft.wait_for(timeout=WAIT_MS)
    await page.locator("#form-save").click()

    invites = page.locator("#invites li.invite")
    await invites.nth(2).wait_for(timeout=WAIT_MS)
    listed = await api(client, admin, "GET", "/hearings")
    [hearing] = listed["items"]
    assert hearing["case_number"] == CASE and hearing["kind"] == "arraignment"
    assert hearing["courtroom_id"] == room1 and hearing["terminal_ids"] == [terminal]
    assert datetime.fromisoformat(hearing["scheduled_start"]) == start.astimezone(UTC)
    assert datetime.fromisoformat(hearing["scheduled_end"]) == end.astimezone(UTC)
    detail = await api(client, admin, "GET", f"/hearings/{hearing['id']}")
    assert sorted((p["name"], p["role"], p["terminal_id"]) for p in detail["participants"]) == [
        ("刘书记", "clerk", None), ("王审判", "judge", None), ("赵某", "defendant", terminal)]
    assert {p["name"]: p["id_digits_on_file"] for p in detail["participants"]} == {
        "刘书记": False, "王审判": False, "赵某": True}
    assert "123x" not in json.dumps(detail).lower()
    # Each invitation: the participant's join link (it opens for them once the hearing's
    # window opens), copy and a mailto.
    # (The registry's clock, the staff session's too, moves there and back: a clock jumping
    # days ahead would end the clerk's session as idle.)
    scheduling_at = clock.now
    clock.now = start.astimezone(UTC) - timedelta(minutes=10)
    for i in range(3):
        row = invites.nth(i)
        link = await row.locator("input.link-field").input_value()
        r = await client.get(f"{API}/join/{link.rsplit('/join/', 1)[1]}")
        assert r.status == 200, await r.text()
        grant = await r.json()
        assert grant["hearing"]["id"] == hearing["id"]
        assert grant["participant"]["name"] in await row.locator(".who").inner_text()
        mail = urlsplit(await row.locator("a[data-action=mail]").get_attribute("href") or "")
        assert mail.scheme == "mailto"
        query = parse_qs(mail.query)
        assert CASE in query["subject"][0] and link in unquote(query["body"][0])
    clock.now = scheduling_at
    await page.locator("#invites [data-action=copy]").first.click()
    await page.locator("#page-status").get_by_text("复制").wait_for(timeout=WAIT_MS)

    # On the calendar: Wednesday, first courtroom, 10:00 to 11:30 of the 8:00–20:00 column.
    await page.locator("#panel button.primary", has_text="完成").click()
    where = await block_geometry(page, hearing["id"], room1, f"{start:%Y-%m-%d}")
    assert abs(where["top"] - 2 / 12) < 0.01 and abs(where["height"] - 1.5 / 12) < 0.01, where
    block = page.locator(f'.hb[data-hearing-id="{hearing["id"]}"]')
    assert await block.count() == 1
    text = await block.inner_text()
    assert "10:00" in text and "刑初321号" in text and "赵某盗窃案" in text and "远程提讯" in text
    assert CASE in (await block.get_attribute("title") or "")

    # An overlapping hearing in the same courtroom: flagged while typing, before any save.
    await open_form(page, "(2026)京0105民初55号", "钱某借款纠纷", room1,
                    this_week(2, 11), this_week(2, 12))
    await wait_conflict_state(page, "conflict")
    assert await page.locator("#form-save").is_disabled()
    conflicts = page.locator("#form-conflicts li")
    assert await conflicts.count() == 1
    assert CASE in await conflicts.inner_text()
    assert await page.locator("#hearing-form [name=courtroom]").get_attribute(
        "aria-invalid") == "true"
    lane = page.locator(f'.lane[data-lane="{room1}"][data-day="{start:%Y-%m-%d}"]')
    await lane.locator(".hb.draft.conflict").wait_for()
    assert "conflict" in (await block.get_attribute("class") or "").split()
    await save_screenshot(page, "schedule")
    # Another courtroom frees it; back in the first, the conflict returns. Submitting anyway
    # (Enter) saves nothing.
    await page.locator("#hearing-form [name=courtroom]").select_option(room2)
    await wait_conflict_state(page, "ok")
    assert await page.locator("#form-save").is_enabled()
    await page.locator("#hearing-form [name=courtroom]").select_option(room1)
    await wait_conflict_state(page, "conflict")
    await page.locator("#hearing-form [name=title]").press("Enter")
    await page.wait_for_timeout(300)
    assert (await api(client, admin, "GET", "/hearings"))["total"] == 1

    # In the other courtroom but with the same prison terminal: the terminal is double-booked.
    await page.locator("#hearing-form [name=courtroom]").select_option(room2)
    await wait_conflict_state(page, "ok")
    await person(page, 2, "孙某", "defendant", "prison", terminal)
    await page.locator("#form-conflicts li[data-resource=prison_terminal]").wait_for()
    assert await page.locator("#form-conflicts li").count() == 1
    terminal_select = page.locator("#form-people .person-row").nth(2).locator("[name=terminal]")
    assert await terminal_select.get_attribute("aria-invalid") == "true"
    # And the same judge, spelled with a space, is double-booked too.
    await page.locator("#form-people .person-row").nth(2).locator("[data-action=remove]").click()
    await wait_conflict_state(page, "ok")
    await person(page, 0, "王 审判", "judge", "courtroom")
    await page.locator("#form-conflicts li[data-resource=judge]").wait_for()
    assert await page.locator("#form-conflicts li").count() == 1
    assert await page.locator("#form-save").is_disabled()
    await page.locator("#panel .close").click()

    # The prison terminal view: one lane per terminal; the hearing on its terminal's lane.
    await page.locator("#view-terminals").click()
    assert await page.locator(".lane").count() == 7
    where = await block_geometry(page, hearing["id"], terminal, f"{start:%Y-%m-%d}")
    assert abs(where["top"] - 2 / 12) < 0.01, where
    head = page.locator(f'.lane-head[data-lane="{terminal}"]').first
    assert await head.inner_text() == "一号终端"
    assert not any(real_errors(pages).values()), pages.errors()


async def test_clerk_reschedules_with_the_conflict_check_and_reissues_a_link(
    client, admin, pages
):
    world = await court(client, admin)
    room1 = world["rooms"][0]["id"]
    first = await api(client, admin, "POST", "/hearings", {
        "case_number": CASE, "title": "赵某盗窃案", "kind": "trial", "courtroom_id": room1,
        "scheduled_start": this_week(3, 9).isoformat(),
        "scheduled_end": this_week(3, 10).isoformat()}, 201)
    judge = await api(client, admin, "POST", f"/hearings/{first['id']}/participants",
                      {"name": "王审判", "role": "judge", "location": "courtroom"}, 201)
    other = await api(client, admin, "POST", "/hearings", {
        "case_number": "(2026)京0105民初9号", "title": "李某合同纠纷", "kind": "mediation",
        "courtroom_id": room1, "scheduled_start": this_week(3, 15).isoformat(),
        "scheduled_end": this_week(3, 16).isoformat()}, 201)
    page = await open_staff_page(pages, str(client.make_url("/schedule")), "clerk")
    await staff_sign_in(page, ADMIN_TOKEN)

    await page.locator(f'.hb[data-hearing-id="{first["id"]}"]').click()
    details = page.locator("#panel")
    await details.locator("#details-facts").get_by_text(CASE).wait_for(timeout=WAIT_MS)
    # Shown on the court's clock (09:00 in Beijing), not the browser's.
    assert "09:00–10:00" in await details.locator("#details-facts").inner_text()
    assert await page.locator("#form-save").is_disabled()  # nothing changed yet
    # Into the other hearing's afternoon: flagged, not saved.
    form = page.locator("#hearing-form")
    await form.locator("[name=start]").fill(local_input(this_week(3, 15, 30)))
    await form.locator("[name=end]").fill(local_input(this_week(3, 16, 30)))
    await wait_conflict_state(page, "conflict")
    assert "(2026)京0105民初9号" in await page.locator("#form-conflicts").inner_text()
    assert await page.locator("#form-save").is_disabled()
    await page.locator(f'.hb.conflict[data-hearing-id="{other["id"]}"]').wait_for()
    # To 13:00–14:00: free, saved with PATCH, and the block moves.
    await form.locator("[name=start]").fill(local_input(this_week(3, 13)))
    await form.locator("[name=end]").fill(local_input(this_week(3, 14)))
    await wait_conflict_state(page, "ok")
    await page.locator("#form-save").click()
    await page.locator("#page-status").get_by_text("已保存").wait_for(timeout=WAIT_MS)
    moved = await api(client, admin, "GET", f"/hearings/{first['id']}")
    assert datetime.fromisoformat(moved["scheduled_start"]) == this_week(3, 13).astimezone(UTC)
    where = await block_geometry(page, first["id"], room1, f"{this_week(3, 13):%Y-%m-%d}")
    assert abs(where["top"] - 5 / 12) < 0.01, where

    # The judge's link was issued elsewhere: reissue it here, the old one stops working.
    row = page.locator(f'#participants li[data-participant-id="{judge["id"]}"]')
    assert await row.locator("input.link-field").count() == 0
    await row.locator("[data-action=reissue]").click()
    await page.locator("dialog[open] [data-action=confirm]").click()
    link = page.locator(f'#participants li[data-participant-id="{judge["id"]}"] input.link-field')
    await link.wait_for(timeout=WAIT_MS)
    token = (await link.input_value()).rsplit("/join/", 1)[1]
    assert token != judge["token"]
    r = await client.get(f"{API}/join/{judge['token']}")
    assert r.status == 403 and "revoked" in (await r.json())["error"]["message"]
    assert not any(pages.errors().values()), pages.errors()


async def test_an_interpreter_is_linked_to_the_party_they_interpret_for(client, admin, pages):
    """Issue 18: an interpreter names whom they interpret for, in a new hearing's form (a row
    above the party's: the party is invited first) and when added to a hearing later."""
    world = await court(client, admin)
    room1 = world["rooms"][0]["id"]
    page = await open_staff_page(pages, str(client.make_url("/schedule")), "clerk")
    await staff_sign_in(page, ADMIN_TOKEN)
    await open_form(page, CASE, "Smith 走私案", room1, this_week(4, 9), this_week(4, 10))
    await person(page, 0, "王审判", "judge", "courtroom")
    await person(page, 1, "周翻译", "interpreter", "courtroom")
    await person(page, 2, "John Smith", "defendant", "remote")
    rows = page.locator("#form-people .person-row")
    assert await rows.nth(0).locator("[name=interprets_for]").is_hidden()
    # Only parties and witnesses are offered, by the names typed above.
    picker = rows.nth(1).locator("[name=interprets_for]")
    await picker.focus()
    offered = await picker.locator("option").all_inner_texts()
    assert [o for o in offered if "John Smith" in o] and not [o for o in offered if "王审判" in o]
    await picker.select_option(label=next(o for o in offered if "John Smith" in o))
    await wait_conflict_state(page, "ok")
    await page.locator("#form-save").click()
    await page.locator("#invites li.invite").nth(2).wait_for(timeout=WAIT_MS)
    [hearing] = (await api(client, admin, "GET", "/hearings"))["items"]
    people = {p["name"]: p for p in
              (await api(client, admin, "GET", f"/hearings/{hearing['id']}"))["participants"]}
    assert people["周翻译"]["interprets_for_id"] == people["John Smith"]["id"]
    assert people["王审判"]["interprets_for_id"] is None

    # Later, a witness and their interpreter, from the hearing's details.
    await api(client, admin, "POST", f"/hearings/{hearing['id']}/participants",
              {"name": "Ana Lopez", "role": "witness", "location": "remote"}, 201)
    await page.reload()
    await page.locator(f'.hb[data-hearing-id="{hearing["id"]}"]').click()
    add = page.locator("#add-person")
    await add.locator("[name=name]").fill("钱翻译")
    await add.locator("[name=role]").select_option("interpreter")
    picker = add.locator("[name=interprets_for]")
    await picker.focus()
    offered = await picker.locator("option").all_inner_texts()
    assert [o for o in offered if "Ana Lopez" in o] and [o for o in offered if "John Smith" in o]
    await picker.select_option(label=next(o for o in offered if "Ana Lopez" in o))
    await add.locator("button[type=submit]").click()
    await page.locator("#participants").get_by_text("为 Ana Lopez 翻译").wait_for(timeout=WAIT_MS)
    people = {p["name"]: p for p in
              (await api(client, admin, "GET", f"/hearings/{hearing['id']}"))["participants"]}
    assert people["钱翻译"]["interprets_for_id"] == people["Ana Lopez"]["id"]
    assert real_errors(pages) == {"clerk": []}

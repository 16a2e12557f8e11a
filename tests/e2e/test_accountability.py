"""Staff accountability in real Chromium (issue 19): two courts' staff sign in with their own
accounts and are refused what their role may not do (a clerk of another court, a judge on
someone else's hearing, a supervisor publishing media); another origin's form and script
cannot act with a clerk's session; and the hearing's audit names, by account, the people who
scheduled, ran, corrected, watched and sealed it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page

from courtrooms.models import StaffAccount, StaffRole
from courtrooms.schemas import StaffAccountIn
from courtrooms.transcripts import SpokenLine
from tests.e2e.conftest import Pages, open_staff_page, pass_device_check, staff_sign_in
from tests.e2e.test_hearing_room import command
from tests.e2e.test_join import STATE_TIMEOUT_MS, wait_state
from tests.e2e.test_schedule import TZ, api, court, open_form
from web.keys import HUB, STAFF_ACCOUNTS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "法院工作人员的密码 2026"
WAIT_MS = 20_000
CASE = "(2026)京0105刑初901号"
SAID = "被告人对起诉书指控的事实有无异议？"
CORRECTED = "被告人对起诉书指控的犯罪事实有无异议？"

# A staff page's own call with its session, as its scripts make them (CSRF header included).
CALL = """async ([method, path, body]) => {
  const session = await (await fetch("/api/v1/session")).json();
  const headers = {"X-CSRF-Token": session.csrf_token};
  if (body !== null) headers["Content-Type"] = "application/json";
  const reply = await fetch("/api/v1" + path, {
    method, headers, body: body === null ? undefined : JSON.stringify(body)});
  return {status: reply.status, body: await reply.json()};
}"""

# What an observer's page sends: tracks on its senders, and outbound RTP in its statistics.
PUBLISHED = """async () => {
  const pc = window.tingshen.pc;
  const stats = [...(await pc.getStats()).values()];
  return {tracks: pc.getSenders().filter(s => s.track).length,
          outbound: stats.filter(s => s.type === "outbound-rtp").length,
          inbound: stats.filter(s => s.type === "inbound-rtp" && s.packetsReceived > 0).length};
}"""

# A message sent on the page's own socket, and the error the server answers it with.
REFUSED_MESSAGE = """async (message) => {
  const ws = window.tingshen.ws;
  const answer = new Promise((resolve) => ws.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "error" && m.ref === message.ref) resolve(m);
  }));
  ws.send(JSON.stringify(message));
  return await answer;
}"""

# Another origin's page: a script posting with the visitor's cookies, then a form.
ATTACK = """<!doctype html><meta charset="utf-8"><title>中奖通知</title>
<form method="post" action="{target}" enctype="text/plain">
<input type="hidden" name='{{"reason":"' value='"}}'></form>
<script>
fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include",
                    headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}})
  .catch(() => null)
  .then(() => {{ document.title = "fetched"; document.forms[0].submit(); }});
</script>"""


async def account(client: Any, name: str, login: str, role: StaffRole,
                  court_id: str | None) -> StaffAccount:
    return await client.server.app[STAFF_ACCOUNTS].add(
        StaffAccountIn(name=name, login=login, roles=[role],
                       court_id=uuid.UUID(court_id) if court_id else None),
        PASSWORD, "test")


async def signed_in(pages: Pages, client: Any, path: str, name: str, login: str) -> Page:
    page = await open_staff_page(pages, str(client.make_url(path)), name)
    await staff_sign_in(page, PASSWORD, login=login)
    return page


async def call(page: Page, method: str, path: str, body: Any = None) -> dict[str, Any]:
    reply: dict[str, Any] = await page.evaluate(CALL, [method, path, body])
    return reply


def not_permitted(reply: dict[str, Any], says: str) -> None:
    assert reply["status"] == 403, reply
    assert reply["body"]["error"]["code"] == "not_permitted", reply
    assert says in reply["body"]["error"]["message"], reply


async def test_each_role_is_refused_what_it_may_not_do_and_the_audit_names_who_did_what(
    client, admin, clock, pages, aiohttp_server
):
    # Two courts; their staff, each with an account.
    world = await court(client, admin)
    court_a, room_a = world["court"]["id"], world["rooms"][0]["id"]
    court_b = (await api(client, admin, "POST", "/courts",
                         {"name": "北京市海淀区人民法院"}, 201))["id"]
    room_b = (await api(client, admin, "POST", "/courtrooms",
                        {"court_id": court_b, "name": "海淀第一法庭"}, 201))["id"]
    await account(client, "钱管理员", "qian.admin", StaffRole.ADMINISTRATOR, None)
    clerk_a = await account(client, "赵书记员", "zhao.clerk", StaffRole.CLERK, court_a)
    await account(client, "孙书记员", "sun.clerk", StaffRole.CLERK, court_b)
    judge = await account(client, "王审判员", "wang.judge", StaffRole.JUDGE, court_a)
    await account(client, "李审判员", "li.judge", StaffRole.JUDGE, court_a)
    supervisor = await account(client, "陈监督", "chen.sup", StaffRole.SUPERVISOR, court_a)

    # Court A's clerk schedules the hearing on the schedule page, for judge Wang's account.
    desk = await signed_in(pages, client, "/schedule", "clerk-a", "zhao.clerk")
    start, end = clock.now, clock.now + timedelta(hours=2)
    await open_form(desk, CASE, "周某诈骗案", room_a, start.astimezone(TZ), end.astimezone(TZ))
    await desk.locator("#form-people .person-row").nth(0).locator("[name=account]") \
        .select_option(str(judge.id))
    await desk.locator("#form-save").click()
    await desk.locator("#invites").wait_for(timeout=WAIT_MS)
    [hearing] = (await api(client, admin, "GET", "/hearings"))["items"]
    hid = hearing["id"]
    assert (hearing["judge_account_id"], hearing["clerk_account_id"]) == (str(judge.id),
                                                                          str(clerk_a.id))

    # Court B's clerk: not their court's hearing to see or change, nor their court to
    # schedule in; the hearing is as it was.
    other_desk = await signed_in(pages, client, "/schedule", "clerk-b", "sun.clerk")
    for method, path, body in (("GET", f"/hearings/{hid}", None),
                               ("PATCH", f"/hearings/{hid}", {"title": "改了"}),
                               ("POST", f"/hearings/{hid}/cancel", {}),
                               ("GET", f"/hearings/{hid}/transcript", None)):
        not_permitted(await call(other_desk, method, path, body), "not of this account's court")
    moved = await call(other_desk, "POST", "/hearings", {
        "case_number": "(2026)京0108刑初1号", "title": "越权排期", "kind": "trial",
        "courtroom_id": room_a, "scheduled_start": start.isoformat(),
        "scheduled_end": end.isoformat()})
    assert moved["status"] == 403 and moved["body"]["error"]["code"] == "not_permitted", moved
    listed = await call(other_desk, "GET", "/hearings")
    assert listed["status"] == 200 and listed["body"]["items"] == [], listed
    # Their own court's courtroom is theirs to schedule in.
    own = await call(other_desk, "POST", "/hearings", {
        "case_number": "(2026)京0108刑初2号", "title": "本院排期", "kind": "trial",
        "courtroom_id": room_b, "scheduled_start": start.isoformat(),
        "scheduled_end": end.isoformat()})
    assert own["status"] == 201, own

    # Another origin in court A's clerk's browser: a page on another port of the same host, so
    # the same site, whose requests carry the clerk's SameSite=Strict cookie. Its script and
    # its form post to cancel the hearing, without the session's CSRF token: refused as such
    # (not for want of a session), and the hearing stays scheduled.
    target = str(client.make_url(f"/api/v1/hearings/{hid}/cancel"))

    async def attack(request: web.Request) -> web.Response:
        return web.Response(text=ATTACK.format(target=target), content_type="text/html")

    elsewhere = web.Application()
    elsewhere.router.add_get("/", attack)
    evil = await aiohttp_server(elsewhere)
    assert evil.port != client.port
    lure = await desk.context.new_page()
    await lure.goto(str(evil.make_url("/")))
    await lure.wait_for_url(target, timeout=WAIT_MS)
    refused = await lure.evaluate("() => JSON.parse(document.body.innerText)")
    assert refused["error"]["code"] == "csrf", refused
    await lure.close()
    assert (await api(client, admin, "GET", f"/hearings/{hid}"))["state"] == "scheduled"

    # Judge Wang enters from "my hearings" and runs the hearing from the courtroom's console.
    mine = await signed_in(pages, client, "/my", "judge", "wang.judge")
    row = mine.locator(f'#my-upcoming tr[data-hearing-id="{hid}"]')
    await row.wait_for(timeout=WAIT_MS)
    async with mine.context.expect_page() as opened:
        await row.locator('[data-action="enter"]').click()
    room = await opened.value
    await room.wait_for_url("**/join/**", timeout=WAIT_MS)
    await pass_device_check(room)
    await wait_state(room, "live")
    seat = await room.evaluate("() => document.body.dataset.participantId")
    await command(room, "open")
    await command(room, "start")
    await room.wait_for_function("() => window.tingshen.hearingState === 'in_session'",
                                 timeout=STATE_TIMEOUT_MS)
    # A line the recognizer gave, heard slightly wrong.
    await client.server.app[HUB].transcripts.add(uuid.UUID(hid), SpokenLine(
        uuid.UUID(seat), 5.0, 9.0, SAID, "zh"))

    # The supervisor watches from /live: an observer publishing nothing, whose page is refused
    # what only a participant sends; the hearing goes on.
    live = await signed_in(pages, client, "/live", "supervisor", "chen.sup")
    live_row = live.locator(f'#live-rows tr[data-hearing-id="{hid}"]')
    await live_row.wait_for(timeout=WAIT_MS)
    async with live.context.expect_page() as opened:
        await live_row.locator("[data-action=watch]").click()
    watching = await opened.value
    await wait_state(watching, "live")
    await watching.wait_for_function(
        "() => window.tingshen.pc && window.tingshen.pc.connectionState === 'connected'",
        timeout=STATE_TIMEOUT_MS)
    await watching.wait_for_function(
        f"async () => ({PUBLISHED})().then(s => s.inbound > 0)", timeout=STATE_TIMEOUT_MS,
        polling=500)
    sent = await watching.evaluate(PUBLISHED)
    assert sent["tracks"] == 0 and sent["outbound"] == 0, sent
    for message in ({"type": "mute", "muted": False, "ref": "m1"},
                    {"type": "camera", "off": False, "ref": "m2"},
                    {"type": "command", "action": "close", "ref": "m3"}):
        answer = await watching.evaluate(REFUSED_MESSAGE, message)
        assert answer["code"] == "forbidden" and "observers only watch" in answer["message"], \
            answer
    assert await watching.evaluate("() => window.tingshen.ws.readyState") == 1
    assert (await api(client, admin, "GET", f"/hearings/{hid}"))["state"] == "in_session"
    assert await room.evaluate("() => window.tingshen.hearingState") == "in_session"

    await command(room, "close")
    await room.locator("#confirm-close [data-confirm]").click(timeout=STATE_TIMEOUT_MS)
    await room.wait_for_function("() => window.tingshen.hearingState === 'closed'",
                                 timeout=STATE_TIMEOUT_MS)

    # Another judge of the court: not their hearing to read or seal.
    other_judge = await signed_in(pages, client, "/my", "other-judge", "li.judge")
    for method, path in (("GET", f"/hearings/{hid}/transcript"),
                         ("POST", f"/hearings/{hid}/transcript/seal")):
        not_permitted(await call(other_judge, method, path), "only the hearing's judge")

    # Court A's clerk corrects the line on the review page.
    await desk.goto(str(client.make_url(f"/review/{hid}")))
    said = desk.locator("#transcript li.line").filter(has_text=SAID)
    await said.wait_for(timeout=WAIT_MS)
    line_id = await said.get_attribute("data-line-id")
    line = desk.locator(f'#transcript li.line[data-line-id="{line_id}"]')
    await line.locator("[data-action=edit]").click()
    await line.locator("textarea").fill(CORRECTED)
    await line.locator("button[type=submit]").click()
    await line.locator(".revision").wait_for(timeout=WAIT_MS)
    assert await line.locator(".line-text").inner_text() == CORRECTED
    # The clerk keeps the record but does not seal it: no seal button is offered.
    await desk.locator("#seal-box").wait_for(state="attached", timeout=WAIT_MS)
    assert await desk.locator("#seal").count() == 0

    # Judge Wang seals it from their review page.
    await mine.goto(str(client.make_url(f"/review/{hid}")))
    await mine.locator("#transcript li.line").filter(has_text=CORRECTED).wait_for(
        timeout=WAIT_MS)
    await mine.locator("#seal").click()
    await mine.locator("dialog[open] [data-action=confirm]").click()
    await mine.locator("#sealed").wait_for(timeout=WAIT_MS)
    assert "王审判员" in await mine.locator("#sealed").inner_text()

    # The administrator reads the hearing's audit: each act names its account.
    desk_admin = await signed_in(pages, client, "/tokens", "administrator", "qian.admin")
    audit = await call(desk_admin, "GET", f"/audit?hearing_id={hid}&limit=200")
    assert audit["status"] == 200, audit
    events = audit["body"]["items"]
    assert audit["body"]["total"] == len(events), audit["body"]["total"]
    done = {(e["action"], e["actor_name"]) for e in events}
    assert "hearing.cancel" not in {e["action"] for e in events}
    # The judge ran it from the seat they entered: the seat acted, for the account.
    ran = {e["actor"] for e in events
           if e["action"] in ("hearing.open", "hearing.start", "hearing.close")}
    assert ran == {f"participant:{seat}"}, ran
    observer = next(e["data"]["participant_id"] for e in events
                    if e["action"] == "participant.added" and e["data"]["role"] == "observer")
    for expected in (("hearing.created", "赵书记员"),
                     ("hearing.open", "王审判员"), ("hearing.start", "王审判员"),
                     ("hearing.close", "王审判员"),
                     ("transcript.corrected", "赵书记员"),
                     ("participant.added", "陈监督"),
                     ("transcript.sealed_by_judge", "王审判员")):
        assert expected in done, (expected, sorted(done, key=str))
    assert {e["actor"] for e in events if e["action"] == "participant.added"
            and e["data"]["participant_id"] == observer} == {f"account:{supervisor.id}"}
    # Nobody else did any of it.
    assert not any(e["actor_name"] in ("孙书记员", "李审判员") for e in events), events
    errors = {name: [e for e in lines if "status of 403" not in e]
              for name, lines in pages.errors().items()}
    assert not any(errors.values()), errors

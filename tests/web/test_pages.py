"""The pages people open: the landing page and the page behind each participant's join link."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

from aiohttp.test_utils import TestClient

from config import Settings
from tests.conftest import FakeClock
from tests.web.support import API, call, hearing_body
from web.app import create_app

TITLE = "张某 <盗窃> & \"抢劫\" 案"
CASE = "(2026)京0105刑初<7>号"
NAME = "O'Brien & 李<律师>"


async def schedule(client: TestClient, admin: dict[str, str]) -> tuple[str, str]:
    body = {**hearing_body(), "title": TITLE, "case_number": CASE}
    hearing = await call(client, "POST", API + "/hearings", json=body, headers=admin)
    assert hearing.status == 201, hearing.text
    invited = await call(client, "POST", f"{API}/hearings/{hearing.json['id']}/participants",
                         json={"name": NAME, "role": "lawyer", "location": "remote"},
                         headers=admin)
    assert invited.status == 201, invited.text
    return hearing.json["id"], invited.json["token"]


class Text(HTMLParser):
    """The text a reader sees, and every element's tag, as the browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def parsed(text: str) -> Text:
    page = Text()
    page.feed(text)
    return page


def assert_html(reply_headers: object, text: str) -> None:
    assert reply_headers["Content-Type"].startswith("text/html")  # type: ignore[index]
    assert text.lstrip().lower().startswith("<!doctype html>")


async def test_join_page_shows_the_hearing_and_the_participant(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    _hearing_id, token = await schedule(client, admin)
    clock.advance(timedelta(hours=8, minutes=30))  # the link opens half an hour before 10:00
    reply = await call(client, "GET", f"/join/{token}")
    assert reply.status == 200, reply.text
    assert_html(reply.headers, reply.text)
    # Everything the clerk typed is shown as text, never as markup.
    shown = "".join(parsed(reply.text).chunks)
    for value in (TITLE, CASE, NAME):
        assert value in shown, value
    for raw in ("<盗窃>", "<7>", "<律师>"):
        assert raw not in reply.text
    assert "2026-11-23T10:00" in reply.text


async def test_join_page_refuses_unknown_early_revoked_and_closed_links(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    hearing_id, token = await schedule(client, admin)

    unknown = await call(client, "GET", "/join/not-a-valid-token")
    assert unknown.status == 403
    assert_html(unknown.headers, unknown.text)
    assert "无法加入" in unknown.text and "无法加入" in unknown.text
    assert "盗窃" not in unknown.text

    early = await call(client, "GET", f"/join/{token}")
    assert early.status == 403 and "无法加入" in early.text
    # Says when the link opens, in the court's local time (09:30 UTC is 17:30 in Beijing).
    assert "本链接将于 2026-11-23 17:30 北京时间 开放" in early.text, early.text
    assert "盗窃" not in early.text and "O'Brien" not in "".join(parsed(early.text).chunks)

    clock.advance(timedelta(hours=9))
    assert (await call(client, "GET", f"/join/{token}")).status == 200
    participants = (await call(client, "GET", f"{API}/hearings/{hearing_id}/participants",
                               headers=admin)).json["items"]
    revoke = await call(client, "DELETE",
                        f"{API}/hearings/{hearing_id}/participants/{participants[0]['id']}/token",
                        headers=admin)
    assert revoke.status == 204
    revoked = await call(client, "GET", f"/join/{token}")
    assert revoked.status == 403 and "无法加入" in revoked.text and "revoked" in revoked.text

    fresh = await call(client, "POST",
                       f"{API}/hearings/{hearing_id}/participants/{participants[0]['id']}/token",
                       headers=admin)
    assert (await call(client, "GET", f"/join/{fresh.json['token']}")).status == 200
    for action in ("open", "start", "close"):
        assert (await call(client, "POST", f"{API}/hearings/{hearing_id}/{action}",
                           headers=admin)).status == 200
    closed = await call(client, "GET", f"/join/{fresh.json['token']}")
    assert closed.status == 403 and "庭审已结束" in closed.text and "closed" in closed.text
    assert 'data-state="ended"' in closed.text and 'data-state="error"' in revoked.text


async def test_a_token_full_of_markup_is_not_echoed_as_markup(client: TestClient) -> None:
    reply = await call(client, "GET", "/join/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert reply.status == 403
    assert "<script>alert(1)</script>" not in reply.text


HOSTILE = "<script>alert(1)</script>"


async def test_hostile_names_are_text_on_every_page_that_shows_them(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    """A hearing, case and participant named as markup: shown as text, never run or parsed."""
    hostile = {"title": f"{HOSTILE} 案", "case_number": f'"><img src=x>{HOSTILE}'}
    hearing = await call(client, "POST", API + "/hearings", json={**hearing_body(), **hostile},
                         headers=admin)
    assert hearing.status == 201, hearing.text
    hearing_id = hearing.json["id"]
    tokens = []
    for role in ("defendant", "observer"):
        invited = await call(client, "POST", f"{API}/hearings/{hearing_id}/participants",
                             json={"name": f"{HOSTILE}'&\"", "role": role,
                                   "location": "remote"}, headers=admin)
        assert invited.status == 201, invited.text
        tokens.append(invited.json["token"])
    clock.advance(timedelta(hours=8, minutes=30))
    pages = [f"/join/{token}{kiosk}" for token in tokens for kiosk in ("", "?kiosk=1")]
    pages += [f"/review/{hearing_id}", "/review/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
              f"/join/{HOSTILE}"]
    for url in pages:
        reply = await call(client, "GET", url)
        assert reply.status in (200, 403, 404), (url, reply.status)
        assert HOSTILE not in reply.text and "<img" not in reply.text, url
        page = parsed(reply.text)
        # Only the page's own module scripts: none came from a name.
        assert page.tags.count("script") == reply.text.count('<script type="module" src='), url
        assert "img" not in page.tags, url
    join = "".join(parsed((await call(client, "GET", pages[0])).text).chunks)
    for value in (hostile["title"], hostile["case_number"], f"{HOSTILE}'&\""):
        assert value in join, value
    unknown = "".join(parsed((await call(client, "GET", pages[-2])).text).chunks)
    assert HOSTILE in unknown  # the id as typed, as text


async def test_landing_page_and_stylesheet(client: TestClient) -> None:
    reply = await call(client, "GET", "/")
    assert reply.status == 200
    assert_html(reply.headers, reply.text)
    assert "Tingshen" in reply.text and "/api/v1/openapi.json" in reply.text
    css = await call(client, "GET", "/static/tingshen.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "/static/tingshen.css" in reply.text


# -- the hearing page's skeleton and what it loads ------------------------------------------

STATIC_IMPORT = re.compile(r'''^\s*import\s+(?:[^"';]*?\s+from\s+)?["'](/static/[^"']+)["']''',
                           re.MULTILINE)
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


def assert_no_inline_code(text: str) -> None:
    """Served with CSP default-src 'self': nothing inline would run or apply."""
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text), "inline <script>"
    assert not re.search(r"<[^>]+\sstyle\s*=", text), "inline style attribute"
    assert not INLINE_HANDLER.search(text), "inline event handler"
    assert "<style" not in text


async def test_join_page_is_a_skeleton_the_scripts_fill(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    hearing_id, token = await schedule(client, admin)
    clock.advance(timedelta(hours=8, minutes=30))
    reply = await call(client, "GET", f"/join/{token}")
    assert reply.status == 200, reply.text
    assert_no_inline_code(reply.text)
    assert "default-src 'self'" in reply.headers["Content-Security-Policy"]
    for needed in ('<script type="module" src="/static/join.js">',
                   'href="/static/hearing.css"', 'href="/static/devicecheck.css"',
                   'data-state="device-check"', 'data-role="lawyer"',
                   f'data-hearing-id="{hearing_id}"', 'id="device-check"', 'id="lobby"',
                   'id="room"', 'id="console"', 'id="transcript"', 'id="ended"'):
        assert needed in reply.text, needed
    # The hearing's time is there for the script to show in the reader's zone.
    assert 'data-start="2026-11-23T10:00:00+00:00"' in reply.text
    assert "data-kiosk" not in reply.text
    kiosk = await call(client, "GET", f"/join/{token}?kiosk=1")
    assert kiosk.status == 200 and 'data-kiosk="1"' in kiosk.text
    assert "<a " not in kiosk.text  # a kiosk page has nothing that navigates away


async def test_an_observer_page_skips_the_device_check(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    hearing_id, _token = await schedule(client, admin)
    observer = await call(client, "POST", f"{API}/hearings/{hearing_id}/participants",
                          json={"name": "监督员", "role": "observer", "location": "remote"},
                          headers=admin)
    assert observer.status == 201, observer.text
    clock.advance(timedelta(hours=8, minutes=30))
    reply = await call(client, "GET", f"/join/{observer.json['token']}")
    assert reply.status == 200
    assert 'data-state="lobby"' in reply.text and 'data-role="observer"' in reply.text
    assert "监督模式（仅观看）" in reply.text


async def test_refused_kiosk_pages_go_back_to_the_terminal(client: TestClient) -> None:
    plain = await call(client, "GET", "/join/not-a-valid-token")
    assert plain.status == 403 and "kiosk-return" not in plain.text
    kiosk = await call(client, "GET", "/join/not-a-valid-token?kiosk=1")
    assert kiosk.status == 403 and 'data-kiosk="1"' in kiosk.text
    assert '<script type="module" src="/static/hearing/kiosk-return.js">' in kiosk.text
    assert_no_inline_code(kiosk.text)
    script = await call(client, "GET", "/static/hearing/kiosk-return.js")
    assert script.status == 200 and 'location.replace("/terminal")' in script.text


async def test_every_module_the_hearing_page_imports_is_served(client: TestClient) -> None:
    """Plain ES modules, no build step: a wrong path breaks the page, so follow them all."""
    seen: set[str] = set()
    todo = ["/static/join.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        reply = await call(client, "GET", path)
        assert reply.status == 200, path
        assert "javascript" in reply.headers["Content-Type"], (path, reply.headers["Content-Type"])
        todo += STATIC_IMPORT.findall(reply.text)
    assert {"/static/devicecheck.js", "/static/i18n.js", "/static/labels.js",
            "/static/hearing/signaling.js", "/static/hearing/room.js",
            "/static/hearing/console.js", "/static/hearing/exhibits.js"} <= seen, seen
    css = await call(client, "GET", "/static/hearing.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    # The hearing room's rules live with the hearing page, not in every page's stylesheet.
    generic = await call(client, "GET", "/static/tingshen.css")
    for selector in (".tile", ".roster", ".captions", ".masthead"):
        assert selector not in generic.text and selector in css.text, selector


async def test_pages_and_exports_show_the_court_s_own_time_zone(
    aiohttp_client: Any, settings: Settings, admin: dict[str, str], clock: FakeClock
) -> None:
    """A court elsewhere sets its zone: the join page, the vocabulary the scripts format times
    with, and the exported record all read it."""
    london = settings.model_copy(update={"court_time_zone": "Europe/London"})
    client = await aiohttp_client(create_app(london, clock=clock))
    hearing_id, token = await schedule(client, admin)
    early = await call(client, "GET", f"/join/{token}")
    assert "本链接将于 2026-11-23 09:30 UTC+00:00 开放" in early.text, early.text
    vocabulary = await call(client, "GET", f"{API}/vocabulary")
    assert vocabulary.json["time_zone"] == "Europe/London"
    exported = await call(client, "GET", f"{API}/hearings/{hearing_id}/transcript/export/txt",
                          headers=admin)
    assert exported.status == 200, exported.text
    assert "2026年11月23日 10:00（UTC+00:00）" in exported.text, exported.text[:400]

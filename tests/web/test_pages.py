"""The pages people open: the landing page and the page behind each participant's join link."""

from __future__ import annotations

import html
from datetime import timedelta

from aiohttp.test_utils import TestClient

from tests.conftest import FakeClock
from tests.web.support import API, call, hearing_body

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
    # Everything the clerk typed is shown, escaped, never as markup.
    for value in (TITLE, CASE, NAME):
        assert html.escape(value) in reply.text, value
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
    assert html.escape(TITLE) not in unknown.text

    early = await call(client, "GET", f"/join/{token}")
    assert early.status == 403 and "无法加入" in early.text
    assert "09:30" in early.text  # says when the link opens
    assert html.escape(TITLE) not in early.text and html.escape(NAME) not in early.text

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


async def test_landing_page_and_stylesheet(client: TestClient) -> None:
    reply = await call(client, "GET", "/")
    assert reply.status == 200
    assert_html(reply.headers, reply.text)
    assert "Tingshen" in reply.text and "/api/v1/openapi.json" in reply.text
    css = await call(client, "GET", "/static/tingshen.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "/static/tingshen.css" in reply.text

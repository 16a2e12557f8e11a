"""The prison terminal kiosk page (/terminal), served by the real application."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from aiohttp.test_utils import TestClient

from tests.web.support import World, call

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if a.get("id")}

    def assets(self) -> list[str]:
        return [a.get("src") or a.get("href") or "" for tag, a in self.tags
                if tag == "script" or (tag == "link" and a.get("rel") == "stylesheet")]


async def test_terminal_page_is_one_kiosk_page_for_every_terminal(
    client: TestClient, world: World
) -> None:
    reply = await call(client, "GET", "/terminal")
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.headers["Cache-Control"] == "no-store"
    assert "default-src 'self'" in reply.headers["Content-Security-Policy"]
    page = Elements()
    page.feed(reply.text)
    # Everything the script fills in and the tests and technicians rely on.
    assert {"terminal-name", "prison", "clock-time", "setup", "setup-form", "device-key",
            "setup-error", "waiting", "countdown", "idle", "net-note", "reset-dialog",
            "hearing-title", "case-number", "scheduled-start", "participant-name",
            "lang-switch"} <= page.ids()
    assert "/static/terminal.js" in page.assets() and "/static/terminal.css" in page.assets()
    # A kiosk leads nowhere: no links at all.
    assert not [a for tag, a in page.tags if tag == "a"]
    # The key is typed in a field that is not submitted anywhere (no name, no action).
    key = next(a for tag, a in page.tags if a.get("id") == "device-key")
    assert "name" not in key and key.get("type") == "password"
    form = next(a for tag, a in page.tags if a.get("id") == "setup-form")
    assert "action" not in form
    # The page is the same for every terminal: it names no terminal and no hearing.
    for secret in (world.device_key, "终端一号", "北京市第一监狱", "张某盗窃案"):
        assert secret not in reply.text


async def test_terminal_assets_are_served(client: TestClient) -> None:
    reply = await call(client, "GET", "/terminal")
    page = Elements()
    page.feed(reply.text)
    assets = [a for a in page.assets() if a.startswith("/static/")]
    assert "/static/devicecheck.js" not in assets  # the join page loads it, not the kiosk
    for path in [*assets, "/static/devicecheck.js", "/static/devicecheck.css",
                 "/static/lang/en-terminal.js", "/static/lang/en-common.js"]:
        asset = await call(client, "GET", path)
        assert asset.status == 200, path
        kind = "text/css" if path.endswith(".css") else "javascript"
        assert kind in asset.headers["Content-Type"], (path, asset.headers["Content-Type"])

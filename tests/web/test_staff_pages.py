"""The staff pages (/schedule, /live, /review, /review/{id}): shells served under the CSP, their
scripts and styles, nothing about a hearing without a token, and a proper page for unknown ids."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import aiohttp_jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.web.support import World, call

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ROOT = Path(__file__).resolve().parents[2]
STAFF_JS = ROOT / "web" / "static" / "staff"
LANG = ROOT / "web" / "static" / "lang"
HAN = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
SCRIPT_OF = {"/my": "my.js", "/schedule": "schedule.js", "/live": "live.js",
             "/review": "review-list.js", "/tokens": "tokens.js"}


class Shell(HTMLParser):
    """Scripts, styles, inline code and markup the CSP would refuse, ids, the nav."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.styles: list[str] = []
        self.handlers: list[str] = []
        self.style_attrs: list[str] = []
        self.ids: dict[str, dict[str, str | None]] = {}
        self.current: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
            self._in_script = True
        if tag == "link" and a.get("rel") == "stylesheet":
            self.styles.append(a.get("href") or "")
        for name, _ in attrs:
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
            if name == "style":
                self.style_attrs.append(f"<{tag} style>")
        if "id" in a:
            self.ids[a["id"] or ""] = {"tag": tag, **a}
        if a.get("aria-current") == "page":
            self.current.append(a.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data.strip())


def parse(text: str) -> Shell:
    shell = Shell()
    shell.feed(text)
    return shell


def assert_locked_down(headers: object, shell: Shell) -> None:
    csp = headers["Content-Security-Policy"]  # type: ignore[index]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"  # type: ignore[index]
    assert headers["Referrer-Policy"] == "no-referrer"  # type: ignore[index]
    assert headers["Content-Type"].startswith("text/html")  # type: ignore[index]
    assert shell.inline == [], shell.inline
    assert shell.handlers == [] and shell.style_attrs == [], (shell.handlers, shell.style_attrs)
    for script in shell.scripts:
        assert script.get("type") == "module", script
        assert (script.get("src") or "").startswith("/static/"), script


@sqlite_only
async def test_staff_pages_are_shells_under_the_csp_with_the_nav(
    client: TestClient, world: World
) -> None:
    for path, script in SCRIPT_OF.items():
        reply = await call(client, "GET", path)
        assert reply.status == 200, (path, reply.text[:300])
        shell = parse(reply.text)
        assert_locked_down(reply.headers, shell)
        srcs = [s.get("src") for s in shell.scripts]
        assert srcs == ["/static/i18n.js", f"/static/staff/{script}"], srcs
        assert "/static/staff.css" in shell.styles
        # The shared nav marks where the reader is; the sign-in form is there, hidden.
        assert shell.current == [path], (path, shell.current)
        assert "hidden" not in shell.ids["staff-nav"]
        for ident in ("signin-form", "signin-login", "signin-password", "app", "page-status"):
            assert ident in shell.ids, (path, ident)
        assert shell.ids["signin-password"]["type"] == "password"
        assert "hidden" in shell.ids["app"], "the page waits for a sign-in before showing data"


@sqlite_only
async def test_each_page_has_the_elements_its_script_uses(client: TestClient, world: World) -> None:
    pages = {**SCRIPT_OF, f"/review/{world.hearing_id}": "review.js"}
    for path, script in pages.items():
        shell = parse((await call(client, "GET", path)).text)
        source = (STAFF_JS / script).read_text(encoding="utf-8")
        common = (STAFF_JS / "common.js").read_text(encoding="utf-8")
        used = set(re.findall(r'\$\("([\w-]+)"\)', source + common))
        # Ids the script creates itself (panels, forms it builds) are not in the shell.
        built = set(re.findall(r'id: "([\w-]+)"', source))
        missing = sorted(used - built - set(shell.ids))
        assert not missing, (path, missing)


@sqlite_only
async def test_scripts_styles_and_their_imports_are_served(client: TestClient) -> None:
    seen: set[str] = set()
    queue = [f"/static/staff/{p.name}" for p in sorted(STAFF_JS.glob("*.js"))]
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        reply = await call(client, "GET", url)
        assert reply.status == 200, url
        assert "javascript" in reply.headers["Content-Type"], (url, reply.headers["Content-Type"])
        for target in re.findall(r'^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"', reply.text,
                                 re.MULTILINE):
            assert target.startswith("/static/"), (url, target)  # nothing from elsewhere
            queue.append(target)
    assert "/static/labels.js" in seen and "/static/i18n.js" in seen
    css = await call(client, "GET", "/static/staff.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "http:" not in css.text and "https:" not in css.text and "@import" not in css.text


@sqlite_only
async def test_review_page_of_a_hearing_shows_nothing_of_it_without_a_token(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    hearing = (await call(client, "GET", f"/api/v1/hearings/{world.hearing_id}",
                          headers=admin)).json
    reply = await call(client, "GET", f"/review/{world.hearing_id}")
    assert reply.status == 200
    shell = parse(reply.text)
    assert_locked_down(reply.headers, shell)
    assert [s.get("src") for s in shell.scripts] == ["/static/i18n.js", "/static/staff/review.js"]
    # The judge's token comes in the fragment, which never reaches the server: the page is
    # the same for everyone and carries no hearing data, only the id the script asks about.
    assert shell.ids["app"].get("class", "").split()[0] == "staff"
    assert f'data-hearing-id="{world.hearing_id}"' in reply.text
    for secret in (hearing["title"], hearing["case_number"], world.judge_token, "王审判员"):
        assert secret not in reply.text and html.escape(secret) not in reply.text
    # Judges open it from their link: no staff nav for them (the script shows it to staff).
    assert "hidden" in shell.ids["staff-nav"]
    for ident in ("player", "transcript", "transcript-search", "seal-box", "export-docx",
                  "recordings", "exhibits"):
        assert ident in shell.ids, ident
    assert shell.ids["player"]["tag"] == "video"
    same = await call(client, "GET", f"/review/{world.hearing_id}",
                      headers={"Authorization": f"Bearer {world.judge_token}"})
    assert same.text == reply.text


@sqlite_only
@pytest.mark.parametrize(
    # (Fixed values: parallel test workers must collect the same ids.)
    "raw", ["0b7e1c8e-5d1a-4c43-9d55-3f8a2b6c1e90", "not-a-uuid",
            "%3Cscript%3Ealert(1)%3C%2Fscript%3E"]
)
async def test_an_unknown_hearing_gets_a_proper_page(client: TestClient, raw: str) -> None:
    reply = await call(client, "GET", f"/review/{raw}")
    assert reply.status == 404
    shell = parse(reply.text)
    assert_locked_down(reply.headers, shell)
    assert "未找到该庭审" in reply.text and 'href="/review"' in reply.text
    assert "not-found" in shell.ids
    assert "<script>alert(1)</script>" not in reply.text
    assert "/static/staff/review.js" not in reply.text  # nothing to load for no hearing


@sqlite_only
async def test_routes_exist_and_take_only_get(client: TestClient, world: World) -> None:
    app: web.Application = client.server.app
    templates = {r.get_info().get("path") or r.get_info().get("formatter")
                 for r in app.router.resources()}
    assert {"/schedule", "/live", "/review", "/review/{hearing_id}"} <= templates
    for path in ("/schedule", "/live", "/review", f"/review/{world.hearing_id}"):
        reply = await call(client, "POST", path)
        assert reply.status == 405, path


def dictionary() -> dict[str, str]:
    entries: dict[str, str] = {}
    for path in LANG.glob("en-*.js"):
        for zh, en in re.findall(r'^\s*"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)",?\s*$',
                                 path.read_text(encoding="utf-8"), re.MULTILINE):
            entries[json.loads(f'"{zh}"')] = json.loads(f'"{en}"')
    return entries


def test_every_chinese_literal_of_the_staff_scripts_has_english() -> None:
    # Strings reach t() through tx(), tables and variables too: every Chinese literal counts.
    known = dictionary()
    lacking = []
    for path in sorted(STAFF_JS.glob("*.js")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("//"):
                continue
            for literal in re.findall(r'"((?:[^"\\\n]|\\.)*)"', line):
                value = json.loads(f'"{literal}"')
                if HAN.search(value) and value not in known:
                    lacking.append(f"{path.name}:{number}: {value!r}")
    assert not lacking, "\n".join(lacking)
    assert known["签章封存笔录"] and known["按监所终端"]


@sqlite_only
async def test_static_staff_pages_carry_the_bar_the_templates_render(client: TestClient) -> None:
    # /schedule, /live and /review are static files: their bar is the one review pages render.
    env = aiohttp_jinja2.get_env(client.server.app)
    bar = env.from_string('{% from "_staff.html" import staff_bar %}{{ staff_bar(current) }}')
    for path in SCRIPT_OF:
        reply = await call(client, "GET", path)
        start = reply.text.index('<header class="staff-bar">')
        end = reply.text.index("</p>", reply.text.index('id="page-status"')) + len("</p>")
        assert reply.text[start:end] == bar.render(current=path), path


@sqlite_only
async def test_the_signing_page_has_what_its_script_uses_and_a_kiosk_mode(
    client: TestClient, world: World
) -> None:
    """The signing page: every element sign.js reads (the ID digits, the recess notice, the
    kiosk's way back), and at a prison terminal's kiosk no language switch and no link away."""
    path = f"/sign/{world.hearing_id}"
    shell = parse((await call(client, "GET", path)).text)
    source = (STAFF_JS.parent / "sign.js").read_text(encoding="utf-8")
    missing = sorted(set(re.findall(r'\$\("([\w-]+)"\)', source)) - set(shell.ids))
    assert not missing, missing
    assert "hidden" in shell.ids["sign-digits-row"] and "hidden" in shell.ids["sign-stage"]
    plain = (await call(client, "GET", path)).text
    kiosk = (await call(client, "GET", path + "?kiosk=1")).text
    assert 'data-kiosk="1"' in kiosk and "data-kiosk" not in plain
    assert "<a " not in kiosk

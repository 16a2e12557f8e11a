"""Chinese pages with an English switch: every Chinese string has its English, and pages carry
the switch (web/static/i18n.js) the way it works.

The sources are read as text (templates and static pages with an HTML parser, JavaScript with a
small literal scanner), and the real pages are fetched from the real server to catch strings
passed to `tr()` through a variable.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from courtrooms import labels
from tests.conftest import FakeClock
from tests.web.support import World

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
STATIC = WEB / "static"
LANG = STATIC / "lang"
# Han characters, and the full-width punctuation of Chinese text.
HAN = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# One entry a line: "中文": "English",
ENTRY = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,?\s*$')
# t("…") / t('…') / t(`…`), not foo.t( nor alt(
T_CALL = re.compile(
    r"""(?<![\w$.])t\(\s*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)"""
)
JS_STRING = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'""")
I18N_ATTRS = ("title", "placeholder", "aria-label")


def chinese(text: str) -> bool:
    return bool(HAN.search(text))


def js_string(literal: str) -> str | None:
    """The value of a JavaScript string literal; None for a template with substitutions."""
    quote, inner = literal[0], literal[1:-1]
    if quote == "`" and "${" in inner:
        return None
    # JSON reads the escapes these literals use, except \' and \`; a bare " needs one.
    inner = re.sub(r"\\([`'])", r"\1", inner)
    inner = re.sub(r'(?<!\\)((?:\\\\)*)"', r'\1\\"', inner)
    return str(json.loads(f'"{inner}"'))


REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^")


def strip_js_comments(text: str) -> str:
    """`text` with its comments blanked, newlines kept: a t("…") in a comment shows nothing."""
    out = list(text)
    i, n, last = 0, len(text), ""

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c, nxt = text[i], text[i + 1 : i + 2]
        if c == "/" and nxt in ("/", "*"):
            end = text.find("\n" if nxt == "/" else "*/", i + 2)
            end = n if end < 0 else end + (0 if nxt == "/" else 2)
            blank(i, end)
            i = end
            continue
        if c in "\"'`" or (c == "/" and (not last or last in REGEX_BEFORE)):
            # A string, template or regular expression literal: skip to its end.
            j, in_class = i + 1, False
            while j < n and (text[j] != c or in_class):
                if text[j] == "\\":
                    j += 1
                elif c == "/" and text[j] in "[]":
                    in_class = text[j] == "["
                elif c != "`" and text[j] == "\n":
                    break
                j += 1
            i, last = j + 1, c
            continue
        if not c.isspace():
            last = c
        i += 1
    return "".join(out)


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- the dictionaries --------------------------------------------------------------------------


def dictionary_files() -> list[Path]:
    return sorted(LANG.glob("en-*.js"))


def parse_dictionary(path: Path) -> tuple[list[tuple[int, str, str]], list[str]]:
    """Entries (line, Chinese, English) and the lines that are not one entry each."""
    entries: list[tuple[int, str, str]] = []
    problems: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "export default {")
        end = next(i for i in range(len(lines) - 1, -1, -1) if lines[i].strip() == "};")
    except StopIteration:
        return [], [f"{relative(path)}: not `export default {{ … }};`"]
    for number, line in enumerate(lines[start + 1 : end], start + 2):
        if not line.strip() or line.strip().startswith("//"):
            continue
        match = ENTRY.match(line)
        if match is None:
            problems.append(f"{relative(path)}:{number}: not one `\"中文\": \"English\",` entry: "
                            f"{line.strip()}")
            continue
        zh, en = (json.loads(f'"{group}"') for group in match.groups())
        entries.append((number, zh, en))
    return entries, problems


def english() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in dictionary_files():
        merged.update((zh, en) for _, zh, en in parse_dictionary(path)[0])
    return merged


def test_dictionaries_have_one_entry_a_line_and_no_duplicate_key() -> None:
    files = dictionary_files()
    assert files, f"no English dictionary in {relative(LANG)}"
    problems: list[str] = []
    for path in files:
        entries, bad = parse_dictionary(path)
        problems += bad
        seen: dict[str, int] = {}
        for number, zh, en in entries:
            where = f"{relative(path)}:{number}"
            if zh in seen:
                problems.append(f"{where}: duplicate key {zh!r} (first on line {seen[zh]})")
            seen.setdefault(zh, number)
            if not chinese(zh):
                problems.append(f"{where}: key {zh!r} is not Chinese")
            if not en.strip():
                problems.append(f"{where}: empty English for {zh!r}")
            if set(PLACEHOLDER.findall(zh)) != set(PLACEHOLDER.findall(en)):
                problems.append(f"{where}: placeholders differ: {zh!r} -> {en!r}")
    assert not problems, "\n".join(problems)


def test_dictionaries_agree_and_are_all_loaded() -> None:
    # en.js spreads the files into one object: a key in two files with two meanings loses one.
    first: dict[str, tuple[str, str]] = {}
    conflicts: list[str] = []
    for path in dictionary_files():
        for number, zh, en in parse_dictionary(path)[0]:
            where = f"{relative(path)}:{number}"
            if zh in first and first[zh][1] != en:
                conflicts.append(f"{zh!r}: {first[zh][0]} says {first[zh][1]!r}, "
                                 f"{where} says {en!r}")
            first.setdefault(zh, (where, en))
    assert not conflicts, "\n".join(conflicts)
    loader = (LANG / "en.js").read_text(encoding="utf-8")
    imported = set(re.findall(r'from\s+"/static/lang/(en-[\w-]+\.js)"', loader))
    assert imported == {p.name for p in dictionary_files()}, loader


# -- strings in the sources --------------------------------------------------------------------


# {{ tr("…") }} and {{ control("id", "…") }} in the templates.
TEMPLATE_TR = re.compile(r"""\b(?:tr\(|control\(\s*"[\w-]+"\s*,)\s*"((?:[^"\\\n]|\\.)*)\"""")


class MarkedText(HTMLParser):
    """Text inside `data-i18n` elements and the values of `data-i18n-<attr>` attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._depth: int | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for attr in I18N_ATTRS:
            if f"data-i18n-{attr}" in a:
                self.found.append(a.get(f"data-i18n-{attr}") or a.get(attr) or "")
        if "data-i18n" in a and self._depth is None:
            self._depth, self._text = 0, []
        elif self._depth is not None:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._depth is None:
            return
        if self._depth == 0:
            self.found.append("".join(self._text).strip())
            self._depth = None
        else:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth is not None:
            self._text.append(data)


def page_strings() -> dict[str, list[str]]:
    """Chinese the pages mark for translation: web/templates/ and web/static/pages/."""
    found: dict[str, list[str]] = {}
    files = sorted((WEB / "templates").rglob("*.html")) + sorted((STATIC / "pages").glob("*.html"))
    for path in files:
        text = path.read_text(encoding="utf-8")
        marked = MarkedText()
        marked.feed(text)
        strings = marked.found + [js_string(f'"{m}"') or "" for m in TEMPLATE_TR.findall(text)]
        for zh in strings:
            if chinese(zh) and "{{" not in zh:
                found.setdefault(zh, []).append(relative(path))
    return found


def label_strings() -> dict[str, list[str]]:
    """The court's words (courtrooms/labels.py, served as the vocabulary), shown by lookup."""
    found: dict[str, list[str]] = {}
    for name in ("ROLE_ZH", "STATE_ZH", "KIND_ZH", "LOCATION_ZH"):
        for zh in getattr(labels, name).values():
            found.setdefault(zh, []).append(f"courtrooms/labels.py:{name}")
    return found


def js_t_strings() -> dict[str, list[str]]:
    """Chinese literals passed to `t(...)` in web/static/**/*.js (not the dictionaries)."""
    found: dict[str, list[str]] = {}
    for path in sorted(STATIC.rglob("*.js")):
        if LANG in path.parents:
            continue
        text = strip_js_comments(path.read_text(encoding="utf-8"))
        for match in T_CALL.finditer(text):
            value = js_string(match.group(1))
            if value and chinese(value):
                line = text.count("\n", 0, match.start()) + 1
                found.setdefault(value, []).append(f"{relative(path)}:{line}")
    return found


def missing(strings: dict[str, list[str]]) -> list[str]:
    known = english()
    return [f"{zh!r} ({', '.join(where)})" for zh, where in sorted(strings.items())
            if zh not in known]


def test_scanners_find_strings() -> None:
    # A scanner that finds nothing would let every other test here pass.
    assert "进入" in js_t_strings()
    assert "设备密钥" in page_strings() and "静音" in page_strings()  # a page, a template
    assert "被告人" in label_strings()
    assert js_string("'它\\'s'") == "它's" and js_string('"a\\"b"') == 'a"b'
    assert js_string("`a ${b}`") is None
    code = 'a = 1 / 2; // t("注释")\n/* t("注释") */ b = /"/g; t("有效", {x: "//"});'
    assert T_CALL.findall(strip_js_comments(code)) == ['"有效"']


@pytest.mark.parametrize("source", ["pages", "javascript", "labels"])
def test_every_chinese_string_has_english(source: str) -> None:
    strings = {"pages": page_strings, "javascript": js_t_strings,
               "labels": label_strings}[source]()
    lacking = missing(strings)
    assert not lacking, (
        f"{len(lacking)} Chinese strings without English in web/static/lang/en-*.js:\n"
        + "\n".join(lacking)
    )


# -- the pages themselves ----------------------------------------------------------------------


class PageParser(HTMLParser):
    """What matters here in a served page: translatable text, scripts, the switch, styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.texts: list[str] = []
        self.attr_texts: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = False
        self.script_bodies: list[str] = []
        self.switches: list[dict[str, str | None]] = []
        self.english_elements: list[str] = []
        self.inline_handlers: list[str] = []
        self.style_attrs: list[str] = []
        self.html_lang: str | None = None
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_lang = a.get("lang")
        if tag == "script":
            self.scripts.append(a)
            self.inline_script = True
        if a.get("id") == "lang-switch":
            self.switches.append({"tag": tag, **a})
        elif (a.get("lang") or "").startswith("en"):
            self.english_elements.append(f"<{tag} {attrs}>")
        for name, _ in attrs:
            if name.startswith("on"):
                self.inline_handlers.append(f"<{tag} {name}>")
            if name == "style":
                self.style_attrs.append(f"<{tag} style>")
        for attr in I18N_ATTRS:
            if f"data-i18n-{attr}" in a:
                self.attr_texts.append(a.get(f"data-i18n-{attr}") or a.get(attr) or "")
        translatable = "data-i18n" in a
        self.stack.append((tag, translatable))
        if translatable:
            self._current = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.inline_script = False
        while self.stack:
            open_tag, translatable = self.stack.pop()
            if translatable and self._current is not None:
                self.texts.append("".join(self._current).strip())
                self._current = None
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.inline_script and data.strip():
            self.script_bodies.append(data.strip())
        if self._current is not None:
            self._current.append(data)


async def page_urls(client: TestClient, world: World) -> list[str]:
    """Every page route of the app, with ids from `world` (anything else for unknown ones)."""
    app: web.Application = client.server.app
    values = {"token": world.judge_token, "id": world.hearing_id,
              "hearing_id": world.hearing_id}
    urls = {"/join/not-a-token"}
    for resource in app.router.resources():
        info = resource.get_info()
        template = info.get("path") or info.get("formatter")
        if not template or template.startswith(("/api/", "/ws", "/static")):
            continue
        if not any(route.method in ("GET", "*") for route in resource):
            continue
        urls.add(re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: values.get(m.group(1), "x"),
                        template))
    return sorted(urls)


pages_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pages_only
async def test_pages_carry_the_switch_and_have_english_for_what_they_show(
    client: TestClient, world: World, clock: FakeClock
) -> None:
    clock.advance(timedelta(hours=8, minutes=30))  # the join links are open
    known = english()
    problems: list[str] = []
    checked: list[str] = []
    for url in await page_urls(client, world):
        async with client.get(url) as reply:
            if not reply.content_type == "text/html":
                continue
            text = await reply.text()
        checked.append(url)
        parsed = PageParser()
        parsed.feed(text)
        if parsed.html_lang != "zh-CN":
            problems.append(f"{url}: <html lang={parsed.html_lang!r}>, not zh-CN (Chinese first)")
        if len(parsed.switches) != 1:
            problems.append(f"{url}: {len(parsed.switches)} #lang-switch elements, not one")
        else:
            switch = parsed.switches[0]
            if switch["tag"] != "button" or switch.get("type") != "button":
                problems.append(f"{url}: #lang-switch is not a <button type=button>")
        srcs = [s.get("src") for s in parsed.scripts]
        if "/static/i18n.js" not in srcs:
            problems.append(f"{url}: /static/i18n.js is not loaded")
        if any(s.get("type") != "module" for s in parsed.scripts):
            problems.append(f"{url}: a script that is not a module: {parsed.scripts}")
        # The old way showed both languages at once (<small lang="en">): the switch does that.
        if parsed.english_elements:
            problems.append(f"{url}: English shown beside Chinese: {parsed.english_elements[:3]}")
        for zh in parsed.texts + parsed.attr_texts:
            if chinese(zh) and zh not in known:
                problems.append(f"{url}: no English for {zh!r}")
    assert "/terminal" in checked and "/" in checked, checked
    assert not problems, "\n".join(problems)


@pages_only
async def test_pages_are_served_under_the_content_security_policy(
    client: TestClient, world: World, clock: FakeClock
) -> None:
    clock.advance(timedelta(hours=8, minutes=30))
    problems: list[str] = []
    urls = await page_urls(client, world)
    assert "/terminal" in urls
    for url in urls:
        async with client.get(url) as reply:
            if reply.content_type != "text/html":
                continue
            csp = reply.headers.get("Content-Security-Policy", "")
            text = await reply.text()
            if "default-src 'self'" not in csp or "unsafe-inline" in csp:
                problems.append(f"{url}: Content-Security-Policy {csp!r}")
            if reply.headers.get("X-Content-Type-Options") != "nosniff":
                problems.append(f"{url}: no X-Content-Type-Options: nosniff")
        parsed = PageParser()
        parsed.feed(text)
        if parsed.script_bodies:
            problems.append(f"{url}: inline script {parsed.script_bodies[0][:80]!r}")
        if any(not s.get("src") for s in parsed.scripts):
            problems.append(f"{url}: a <script> without src")
        if parsed.inline_handlers:
            problems.append(f"{url}: inline event handlers {parsed.inline_handlers}")
        if parsed.style_attrs:
            problems.append(f"{url}: inline style attributes {parsed.style_attrs}")
    assert not problems, "\n".join(problems)

"""What every page shares (the frame, the language switch) and the routes of all pages."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"

# The join link carries a secret in its path: no caching, no Referer, nothing from elsewhere.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}


def tr(zh: str) -> str:
    """Chinese text that /static/i18n.js shows in English when the reader switches."""
    return f"<span data-i18n>{html.escape(zh)}</span>"


LANG_SWITCH = (
    '<button type="button" id="lang-switch" class="lang-switch" lang="en">English</button>'
)


def page(title: str, body: str, status: int = 200, *, body_attrs: str = "",
         scripts: tuple[str, ...] = (), styles: tuple[str, ...] = ()) -> web.Response:
    """A whole HTML page: Chinese by default, the language switch, and module scripts only."""
    tags = "".join(
        f'\n<script type="module" src="{src}"></script>'
        for src in ("/static/i18n.js", *scripts)
    )
    links = "".join(f'\n<link rel="stylesheet" href="{href}">' for href in styles)
    doc = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · 庭审 Tingshen</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/tingshen.css">{links}</head>
<body{body_attrs}>{LANG_SWITCH}{body}{tags}</body></html>"""
    return web.Response(text=doc, content_type="text/html", status=status, headers=PAGE_HEADERS)


async def index(_request: web.Request) -> web.Response:
    return page(
        "Tingshen",
        f"<main><h1>庭审 Tingshen</h1><p>{tr('互联网法庭与远程提讯服务器。')}</p>"
        '<p><a href="/api/v1/openapi.json">API (OpenAPI)</a></p></main>',
    )


def add_pages(app: web.Application) -> None:
    from web import hearing_page, staff_pages, terminal_page

    app.router.add_get("/", index)
    hearing_page.add_routes(app)
    terminal_page.add_routes(app)
    staff_pages.add_routes(app)
    app.router.add_static("/static", STATIC)

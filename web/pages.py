"""What every page shares (templates, headers, the court's time) and the routes of all pages.

Pages that show the server's data are Jinja2 templates under web/templates/, rendered with
autoescaping on: a value is never markup, whatever a clerk or participant typed; so are the
staff pages' shells, which share the staff bar (`_staff.html`). The landing page and the prison
kiosk are plain files under web/static/pages/, served as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from config.timezone import local
from web.keys import SETTINGS

WEB = Path(__file__).parent
STATIC = WEB / "static"
STATIC_PAGES = STATIC / "pages"
TEMPLATES = WEB / "templates"

# The join link carries a secret in its path: no caching, no Referer, nothing from elsewhere.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}


def court_time(moment: datetime, zone: ZoneInfo) -> str:
    """`moment` as the court reads it: 2026-11-23 18:00 in its zone (`court_time_zone`)."""
    return local(moment, zone).strftime("%Y-%m-%d %H:%M")


def render(request: web.Request, template: str, title: str, *, status: int = 200,
           body_attrs: dict[str, str | None] | None = None, scripts: tuple[str, ...] = (),
           styles: tuple[str, ...] = (), **context: Any) -> web.Response:
    """A page from `template` (which extends base.html) with the frame's scripts and styles."""
    return aiohttp_jinja2.render_template(
        template, request,
        {"title": title, "body_attrs": body_attrs or {}, "scripts": scripts, "styles": styles,
         **context},
        status=status,
    )


def static_page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler serving web/static/pages/`name` as it is."""
    path = STATIC_PAGES / name

    async def serve(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": "text/html; charset=utf-8"})

    return serve


async def _page_headers(_request: web.Request, response: web.StreamResponse) -> None:
    # Every HTML answer, rendered or static (under /static/pages/ too), carries the same rules.
    if response.content_type == "text/html":
        response.headers.update(PAGE_HEADERS)


# Pages that show no data and share nothing with the staff pages: the landing page and the
# prison kiosk.
STATIC_ROUTES = {
    "/": "index.html",
    "/terminal": "terminal.html",
}


def add_pages(app: web.Application) -> None:
    from web import hearing_page, staff_pages

    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        filters={"court_time": functools.partial(court_time, zone=app[SETTINGS].court_zone)},
        default_helpers=False,
    )
    app.on_response_prepare.append(_page_headers)
    for path, name in STATIC_ROUTES.items():
        app.router.add_get(path, static_page(name))
    hearing_page.add_routes(app)
    staff_pages.add_routes(app)
    app.router.add_static("/static", STATIC)

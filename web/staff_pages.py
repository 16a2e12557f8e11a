"""Pages for court staff: scheduling, hearings live now (supervision), and review; and the
page where participants read and sign a closed hearing's record.

Each page is a shell: the data comes from the REST API, called by the page's script with the
credentials the clerk signs in with (kept in sessionStorage, sent as a bearer). /my, /schedule,
/live, /review and /tokens show no data at all: the same shell for every reader. A
judge opens the review of their own hearing with their join token in the URL fragment, which never
reaches the server; so nothing about a hearing is rendered here, only whether its id exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from courtrooms.errors import NotFound
from web.keys import REGISTRY
from web.pages import render

STYLES = ("/static/staff.css",)
# The staff pages that show no data: path -> (template, title, script under /static/staff/).
SHELLS = {
    "/my": ("my.html", "我的庭审 My hearings", "my.js"),
    "/schedule": ("schedule.html", "日程 Schedule", "schedule.js"),
    "/live": ("live.html", "正在进行 Live", "live.js"),
    "/review": ("review_list.html", "庭审回看 Review", "review-list.js"),
    "/tokens": ("tokens.html", "接口令牌 API tokens", "tokens.js"),
}


def shell(template: str, title: str, script: str) -> Callable[[web.Request],
                                                              Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        return render(request, template, title, styles=STYLES,
                      scripts=(f"/static/staff/{script}",), body_attrs={"class": "staff-page"})

    return serve


async def _page(request: web.Request, template: str, title: str, scripts: tuple[str, ...],
                styles: tuple[str, ...], body_attrs: dict[str, str]) -> web.Response:
    """The page of the hearing in the path, or the page saying there is no such hearing."""
    raw = request.match_info["hearing_id"]
    try:
        hearing_id = uuid.UUID(raw)
        await request.app[REGISTRY].get_hearing(hearing_id)
    except (ValueError, NotFound):
        return render(
            request, "review_missing.html", "未找到 Not found", status=404, styles=STYLES,
            body_attrs={"class": "staff-page", "data-state": "not-found"}, raw_id=raw,
        )
    return render(request, template, title, styles=styles, scripts=scripts,
                  body_attrs={**body_attrs, "data-hearing-id": str(hearing_id)})


async def review(request: web.Request) -> web.Response:
    return await _page(request, "review.html", "庭审回看 Review",
                       ("/static/staff/review.js",), STYLES, {"class": "staff-page"})


async def sign(request: web.Request) -> web.Response:
    """A participant reads and signs the closed hearing's record, or at a recess the record so
    far (their token in the fragment, as the judge's on the review). `?kiosk=1`: a prison
    terminal's kiosk (large controls, no language switch, back to the hearing or terminal)."""
    kiosk = {"data-kiosk": "1"} if request.query.get("kiosk") == "1" else {}
    return await _page(request, "sign.html", "签署庭审笔录 Sign the record", ("/static/sign.js",),
                       ("/static/sign.css",), kiosk)


def add_routes(app: web.Application) -> None:
    for path, (template, title, script) in SHELLS.items():
        app.router.add_get(path, shell(template, title, script))
    app.router.add_get("/review/{hearing_id}", review)
    app.router.add_get("/sign/{hearing_id}", sign)

"""Pages people open: the landing page and the join page behind each participant's link."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from courtrooms.errors import AccessDenied
from web.api import REGISTRY

STATIC = Path(__file__).parent / "static"

ROLE_ZH = {
    "judge": "审判员", "clerk": "书记员", "prosecutor": "公诉人", "defendant": "被告人",
    "lawyer": "律师", "party": "当事人", "witness": "证人", "interpreter": "翻译人员",
    "observer": "旁听/监督",
}
STATE_ZH = {
    "scheduled": "已排期", "open": "候审中", "in_session": "庭审中", "recess": "休庭",
    "closed": "已闭庭", "cancelled": "已取消",
}
KIND_ZH = {
    "trial": "庭审", "arraignment": "远程提讯", "parole": "减刑假释庭审", "mediation": "调解",
    "creditors_meeting": "债权人会议", "petition": "视频接访",
}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    doc = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · 庭审 Tingshen</title>
<link rel="stylesheet" href="/static/tingshen.css"></head>
<body><main>{body}</main></body></html>"""
    return web.Response(text=doc, content_type="text/html", status=status)


async def index(_request: web.Request) -> web.Response:
    return _page(
        "Tingshen",
        "<h1>庭审 Tingshen</h1><p>互联网法庭与远程提讯服务器。"
        "Internet courtrooms and remote arraignment.</p>"
        '<p><a href="/api/v1/openapi.json">API (OpenAPI)</a></p>',
    )


async def join(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        grant = await request.app[REGISTRY].resolve_join_token(token)
    except AccessDenied as e:
        return _page(
            "无法加入 Cannot join",
            f'<h1>无法加入 Cannot join</h1><p class="error">{html.escape(e.message)}</p>',
            status=403,
        )
    h, p = grant.hearing, grant.participant
    esc = html.escape
    body = f"""<h1>{esc(h.title)}</h1>
<dl>
<dt>案号 Case</dt><dd>{esc(h.case_number)}</dd>
<dt>类型 Kind</dt><dd>{esc(KIND_ZH[h.kind.value])} ({esc(h.kind.value)})</dd>
<dt>开庭时间 Scheduled</dt><dd><time datetime="{h.scheduled_start.isoformat()}">
{h.scheduled_start.isoformat(timespec="minutes")}</time> –
<time datetime="{h.scheduled_end.isoformat()}">{h.scheduled_end.isoformat(timespec="minutes")}</time></dd>
<dt>状态 State</dt><dd id="state">{esc(STATE_ZH[h.state.value])} ({esc(h.state.value)})</dd>
<dt>您的身份 You</dt><dd>{esc(p.name)} · {esc(ROLE_ZH[p.role.value])} ({esc(p.role.value)})</dd>
</dl>"""
    return _page(h.title, body)


def add_pages(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/join/{token}", join)
    app.router.add_static("/static", STATIC)

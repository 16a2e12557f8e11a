"""Pages people open: the landing page and the live hearing page behind each participant's link."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from courtrooms.errors import AccessDenied, HearingFinished
from courtrooms.labels import KIND_ZH, ROLE_ZH, STATE_ZH
from web.api import REGISTRY

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


def _bilingual(zh: str, en: str) -> str:
    return f'{html.escape(zh)} <small lang="en">{html.escape(en)}</small>'


def _page(title: str, body: str, status: int = 200, *, body_attrs: str = "",
          scripts: tuple[str, ...] = ()) -> web.Response:
    tags = "".join(f'\n<script type="module" src="{src}"></script>' for src in scripts)
    doc = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · 庭审 Tingshen</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/tingshen.css"></head>
<body{body_attrs}>{body}{tags}</body></html>"""
    return web.Response(text=doc, content_type="text/html", status=status, headers=PAGE_HEADERS)


async def index(_request: web.Request) -> web.Response:
    return _page(
        "Tingshen",
        "<main><h1>庭审 Tingshen</h1><p>互联网法庭与远程提讯服务器。"
        "Internet courtrooms and remote arraignment.</p>"
        '<p><a href="/api/v1/openapi.json">API (OpenAPI)</a></p></main>',
    )


HEARING_BUTTONS = (
    ("open", "开庭准备", "Open"), ("start", "开庭", "Start"), ("recess", "休庭", "Recess"),
    ("resume", "继续开庭", "Resume"), ("close", "闭庭", "Close"),
)


async def join(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        grant = await request.app[REGISTRY].resolve_join_token(token)
    except HearingFinished as e:
        return _page(
            "庭审已结束 Hearing ended",
            f'<main><h1>{_bilingual("庭审已结束", "The hearing has ended")}</h1>'
            f'<p>{html.escape(e.message)}</p></main>',
            status=403,
            body_attrs=' data-state="ended"',
        )
    except AccessDenied as e:
        return _page(
            "无法加入 Cannot join",
            f'<main><h1>{_bilingual("无法加入", "Cannot join")}</h1>'
            f'<p class="error">{html.escape(e.message)}</p></main>',
            status=403,
            body_attrs=' data-state="error"',
        )
    h, p = grant.hearing, grant.participant
    esc = html.escape
    role, state, kind = p.role.value, h.state.value, h.kind.value
    start, end = h.scheduled_start, h.scheduled_end
    when = (
        f'<time datetime="{start.isoformat()}">{start.isoformat(timespec="minutes")}</time> – '
        f'<time datetime="{end.isoformat()}">{end.isoformat(timespec="minutes")}</time>'
    )
    role_label = f'{esc(ROLE_ZH[role])} <small lang="en">{esc(role)}</small>'
    facts = "".join(
        f'<dt>{_bilingual(zh, en)}</dt><dd id="{ident}">{value}</dd>'
        for zh, en, ident, value in (
            ("案号", "Case", "case-number", esc(h.case_number)),
            ("类型", "Kind", "kind", f'{esc(KIND_ZH[kind])} <small lang="en">{esc(kind)}</small>'),
            ("开庭时间", "Scheduled", "scheduled", when),
            ("状态", "State", "state",
             f'{esc(STATE_ZH[state])} <small lang="en">{esc(state)}</small>'),
            ("您的身份", "You", "you", f"{esc(p.name)} · {role_label}"),
        )
    )
    hearing_buttons = "".join(
        f'<button type="button" data-command="{action}">{_bilingual(zh, en)}</button>'
        for action, zh, en in HEARING_BUTTONS
    )
    controls = "".join(
        f'<button type="button" id="{ident}" aria-pressed="false">{_bilingual(zh, en)}</button>'
        for ident, zh, en in (
            ("btn-mute", "静音", "Mute"), ("btn-camera", "关闭摄像头", "Camera off"),
            ("btn-hand", "举手", "Raise hand"),
        )
    )
    body = f"""<header class="masthead">
<div class="case"><h1>{esc(h.title)}</h1><dl>{facts}</dl></div>
<p id="status" class="status" role="status" aria-live="polite"></p>
</header>
<main class="hearing">
<section id="lobby" class="lobby">
<h2>{_bilingual("等待法官准许进入", "Waiting for the judge to admit you")}</h2>
<h3>{_bilingual("在场人员", "Present")}</h3>
<ul id="present"></ul>
</section>
<section id="ended" class="ended"><h2>{_bilingual("庭审已结束", "The hearing has ended")}</h2>
<p id="ended-reason"></p></section>
<section id="stage" class="stage">
<div id="tiles" class="tiles">
<figure class="tile self"><video id="self-video" autoplay playsinline muted></video>
<figcaption><span class="name">{esc(p.name)}</span> <span class="role">{role_label}</span>
<span class="tag">{_bilingual("本人", "you")}</span></figcaption></figure>
</div>
<div id="captions" class="captions" aria-live="polite" lang="{esc(h.language)}"></div>
<div class="controls">{controls}</div>
</section>
<aside id="court-panel" class="court-panel" hidden>
<h2>{_bilingual("庭审控制", "Hearing")}</h2>
<div class="hearing-buttons">{hearing_buttons}</div>
<h2>{_bilingual("参与人", "Participants")}</h2>
<ul id="roster" class="roster"></ul>
</aside>
</main>"""
    attrs = (
        f' data-state="lobby" data-token="{esc(token)}" data-role="{esc(role)}"'
        f' data-participant-id="{esc(str(p.id))}" data-hearing-state="{esc(state)}"'
    )
    return _page(h.title, body, body_attrs=attrs, scripts=("/static/join.js",))


def add_pages(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/join/{token}", join)
    app.router.add_static("/static", STATIC)

"""The participant's page behind each join link: device check, lobby, the hearing room."""

from __future__ import annotations

import html

from aiohttp import web

from courtrooms.errors import AccessDenied, HearingFinished
from courtrooms.labels import KIND_ZH, ROLE_ZH, STATE_ZH
from web.api import REGISTRY
from web.pages import page, tr


HEARING_BUTTONS = (
    ("open", "开庭准备", "Open"), ("start", "开庭", "Start"), ("recess", "休庭", "Recess"),
    ("resume", "继续开庭", "Resume"), ("close", "闭庭", "Close"),
)


async def join(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        grant = await request.app[REGISTRY].resolve_join_token(token)
    except HearingFinished as e:
        return page(
            "庭审已结束 Hearing ended",
            f'<main><h1>{tr("庭审已结束")}</h1>'
            f'<p>{html.escape(e.message)}</p></main>',
            status=403,
            body_attrs=' data-state="ended"',
        )
    except AccessDenied as e:
        return page(
            "无法加入 Cannot join",
            f'<main><h1>{tr("无法加入")}</h1>'
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
    role_label = tr(ROLE_ZH[role])
    facts = "".join(
        f'<dt>{tr(zh)}</dt><dd id="{ident}">{value}</dd>'
        for zh, en, ident, value in (
            ("案号", "Case", "case-number", esc(h.case_number)),
            ("类型", "Kind", "kind", tr(KIND_ZH[kind])),
            ("开庭时间", "Scheduled", "scheduled", when),
            ("状态", "State", "state",
             tr(STATE_ZH[state])),
            ("您的身份", "You", "you", f"{esc(p.name)} · {role_label}"),
        )
    )
    hearing_buttons = "".join(
        f'<button type="button" data-command="{action}">{tr(zh)}</button>'
        for action, zh, en in HEARING_BUTTONS
    )
    controls = "".join(
        f'<button type="button" id="{ident}" aria-pressed="false">{tr(zh)}</button>'
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
<h2>{tr("等待法官准许进入")}</h2>
<h3>{tr("在场人员")}</h3>
<ul id="present"></ul>
</section>
<section id="ended" class="ended"><h2>{tr("庭审已结束")}</h2>
<p id="ended-reason"></p></section>
<section id="stage" class="stage">
<div id="tiles" class="tiles">
<figure class="tile self"><video id="self-video" autoplay playsinline muted></video>
<figcaption><span class="name">{esc(p.name)}</span> <span class="role">{role_label}</span>
<span class="tag">{tr("本人")}</span></figcaption></figure>
</div>
<div id="captions" class="captions" aria-live="polite" lang="{esc(h.language)}"></div>
<div class="controls">{controls}</div>
</section>
<aside id="court-panel" class="court-panel" hidden>
<h2>{tr("庭审控制")}</h2>
<div class="hearing-buttons">{hearing_buttons}</div>
<h2>{tr("参与人")}</h2>
<ul id="roster" class="roster"></ul>
</aside>
</main>"""
    attrs = (
        f' data-state="lobby" data-token="{esc(token)}" data-role="{esc(role)}"'
        f' data-participant-id="{esc(str(p.id))}" data-hearing-state="{esc(state)}"'
    )
    return page(h.title, body, body_attrs=attrs, scripts=("/static/join.js",))



def add_routes(app: web.Application) -> None:
    app.router.add_get("/join/{token}", join)

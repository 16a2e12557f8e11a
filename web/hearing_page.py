"""The participant's page behind each join link: device check, lobby, the hearing room, the end.

The HTML is the page's skeleton in Chinese (`tr()` marks what the language switch translates);
/static/join.js and the modules under /static/hearing/ fill it from the signaling protocol.
`?kiosk=1` (a prison terminal's kiosk navigates here) makes the controls large and sends the
kiosk back to `/terminal` when the hearing ends.
"""

from __future__ import annotations

import html

from aiohttp import web

from courtrooms.errors import AccessDenied, HearingFinished
from courtrooms.labels import KIND_ZH, ROLE_ZH, STATE_ZH
from web.api import REGISTRY
from web.pages import page, tr

STYLES = ("/static/devicecheck.css", "/static/hearing.css")
KIOSK_RETURN = "/static/hearing/kiosk-return.js"

HEARING_BUTTONS = (
    ("open", "开庭准备"), ("start", "开庭"), ("recess", "休庭"), ("resume", "继续开庭"),
    ("close", "闭庭"),
)


def _kiosk(request: web.Request) -> bool:
    return request.query.get("kiosk") == "1"


def _refused(request: web.Request, heading: str, message: str, state: str) -> web.Response:
    kiosk = _kiosk(request)
    body = (
        f'<main class="refused"><h1>{tr(heading)}</h1>'
        f'<p class="{"error" if state == "error" else "reason"}">{html.escape(message)}</p>'
        + ('<p id="kiosk-return" class="kiosk-return" role="status"></p>' if kiosk else "")
        + "</main>"
    )
    return page(
        heading, body, status=403, styles=("/static/hearing.css",),
        body_attrs=f' data-state="{state}"' + (' data-kiosk="1"' if kiosk else ""),
        scripts=(KIOSK_RETURN,) if kiosk else (),
    )


def _button(ident: str, zh: str, *, pressed: bool = True, hidden: bool = False) -> str:
    attrs = f'type="button" id="{ident}"'
    if pressed:
        attrs += ' aria-pressed="false"'
    if hidden:
        attrs += " hidden"
    return f'<button {attrs} class="control">{tr(zh)}</button>'


async def join(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        grant = await request.app[REGISTRY].resolve_join_token(token)
    except HearingFinished as e:
        return _refused(request, "庭审已结束", e.message, "ended")
    except AccessDenied as e:
        return _refused(request, "无法加入", e.message, "error")
    h, p = grant.hearing, grant.participant
    esc = html.escape
    role, state, kind = p.role.value, h.state.value, h.kind.value
    kiosk = _kiosk(request)
    start, end = h.scheduled_start, h.scheduled_end
    # Shown in the reader's time zone and language by the script; ISO until then.
    when = (
        f'<span class="when" data-start="{start.isoformat()}" data-end="{end.isoformat()}">'
        f'<time datetime="{start.isoformat()}">{start.isoformat(timespec="minutes")}</time> – '
        f'<time datetime="{end.isoformat()}">{end.isoformat(timespec="minutes")}</time></span>'
    )
    role_label = tr(ROLE_ZH[role])
    facts = "".join(
        f"<dt>{tr(zh)}</dt><dd>{value}</dd>"
        for zh, value in (
            ("案号", esc(h.case_number)),
            ("类型", tr(KIND_ZH[kind])),
            ("开庭时间", when),
            ("您的身份", f"{esc(p.name)} · {role_label}"),
        )
    )
    hearing_buttons = "".join(
        f'<button type="button" data-command="{action}">{tr(zh)}</button>'
        for action, zh in HEARING_BUTTONS
    )
    controls = "".join((
        _button("btn-mute", "静音"),
        _button("btn-camera", "关闭摄像头"),
        _button("btn-hand", "举手"),
        _button("btn-screen", "共享屏幕", hidden=True),
        _button("btn-exhibit", "出示证据", pressed=False, hidden=True),
        _button("btn-consult", "申请私下会见", hidden=True),
    ))
    body = f"""<div id="reconnecting" class="reconnecting" role="alert" hidden>
<span class="spinner" aria-hidden="true"></span><span id="reconnecting-text"></span></div>
<header class="masthead">
<div class="emblem" aria-hidden="true">庭</div>
<div class="case">
<h1 id="hearing-title">{esc(h.title)}</h1>
<p class="facts"><span id="case-number">{esc(h.case_number)}</span>
<span id="kind">{tr(KIND_ZH[kind])}</span>
<span id="scheduled">{when}</span></p>
</div>
<div class="session">
<span id="state" class="state" data-state="{esc(state)}">{tr(STATE_ZH[state])}</span>
<span id="recording" class="recording" hidden><i class="dot" aria-hidden="true"></i><span
 id="recording-label"></span></span>
</div>
<div class="you"><span id="you">{esc(p.name)} · {role_label}</span>
<span id="observer-badge" class="observer-badge" hidden>{tr("监督模式（仅观看）")}</span></div>
</header>
<main class="hearing">
<section id="device-check" class="device-check" aria-label="设备检查"
 data-i18n-aria-label></section>
<section id="lobby" class="lobby">
<div class="lobby-card">
<p class="kicker">{tr("候审室")}</p>
<h2 class="lobby-title">{esc(h.title)}</h2>
<dl class="facts">{facts}</dl>
<div class="waiting" role="status"><span class="pulse" aria-hidden="true"><i></i><i></i><i></i>
</span><span id="lobby-wait">{tr("等待法官准许进入")}</span></div>
<p class="hint">{tr("法官准许后将自动进入庭审，请勿关闭本页面。")}</p>
<h3>{tr("已在庭人员")}</h3>
<ul id="present" class="present"></ul>
<p id="present-empty" class="empty">{tr("暂无其他人员在线")}</p>
</div>
<figure id="lobby-preview" class="lobby-preview">
<video id="lobby-video" autoplay playsinline muted></video>
<div class="placeholder" aria-hidden="true"><span class="avatar">{esc(p.name[:1])}</span></div>
<figcaption>{tr("本人画面")}</figcaption></figure>
</section>
<section id="room" class="room">
<div id="consult-banner" class="consult-banner" hidden>
<div><strong>{tr("私下会见中 — 法庭听不到也不录制")}</strong>
<span id="consult-with"></span></div>
<button type="button" id="btn-consult-return" class="primary">{tr("返回庭审")}</button>
</div>
<div id="stage" class="stage">
<div id="main-stage" class="main-stage" hidden></div>
<div id="tiles" class="tiles">
<figure id="self-tile" class="tile self" data-participant-id="{esc(str(p.id))}">
<video id="self-video" autoplay playsinline muted></video>
<div class="placeholder" aria-hidden="true"><span class="avatar"></span></div>
<figcaption></figcaption></figure>
</div>
<button type="button" id="audio-blocked" class="audio-blocked" hidden>
{tr("点击此处开启声音")}</button>
<p class="recess-note">{tr("休庭中 — 录制已暂停")}</p>
<div id="captions" class="captions" aria-live="polite" lang="{esc(h.language)}"></div>
</div>
<div id="controls" class="controls">{controls}
<p id="consult-pending" class="consult-pending" role="status" hidden></p>
</div>
</section>
<aside id="transcript-panel" class="transcript-panel" aria-labelledby="transcript-heading">
<h2 id="transcript-heading">{tr("庭审笔录")} <span class="live-note">{tr("实时识别")}</span></h2>
<p id="transcript-empty" class="empty">{tr("开庭后，发言将在此逐句记入笔录。")}</p>
<ol id="transcript" class="transcript" lang="{esc(h.language)}"></ol>
<button type="button" id="transcript-latest" class="latest" hidden>{tr("查看最新")}</button>
</aside>
<aside id="console" class="console" hidden aria-labelledby="console-heading">
<section class="console-section">
<h2 id="console-heading">{tr("庭审控制")}</h2>
<div class="hearing-buttons">{hearing_buttons}</div>
<div id="confirm-close" class="confirm" role="alertdialog" hidden>
<p>{tr("确认闭庭？闭庭后庭审不能继续，录像和笔录将封存。")}</p>
<div class="actions">
<button type="button" class="danger" data-confirm="close">{tr("确认闭庭")}</button>
<button type="button" data-cancel>{tr("取消")}</button></div>
</div>
<p id="lag" class="lag" hidden></p>
</section>
<section id="console-consult" class="console-section" hidden>
<h2>{tr("私下会见")}</h2>
<ul id="consult-requests" class="items"></ul>
<ul id="consult-active" class="items"></ul>
</section>
<section id="console-hands" class="console-section" hidden>
<h2>{tr("举手发言")} <span id="hands-count" class="count"></span></h2>
<ol id="hands" class="hands"></ol>
</section>
<section class="console-section">
<h2>{tr("参与人")} <span id="roster-count" class="count"></span></h2>
<ul id="roster" class="roster"></ul>
</section>
<section id="console-observers" class="console-section" hidden>
<h2>{tr("监督/旁听")}</h2>
<ul id="observers" class="roster"></ul>
</section>
</aside>
<section id="ended" class="ended">
<h2 id="ended-title">{tr("庭审已结束")}</h2>
<p id="ended-reason"></p>
<p id="kiosk-return" class="kiosk-return" role="status" hidden></p>
</section>
</main>
<p id="status" class="status" role="status" aria-live="polite" hidden></p>
<dialog id="exhibit-dialog" class="dialog" aria-labelledby="exhibit-heading">
<form id="exhibit-form" method="dialog">
<h2 id="exhibit-heading">{tr("出示证据")}</h2>
<p class="hint">{tr("PDF、PNG 或 JPEG 文件。上传后向全体参与人出示，并登记其 SHA-256 校验值。")}</p>
<label class="field"><span>{tr("文件")}</span>
<input type="file" id="exhibit-file" accept="application/pdf,image/png,image/jpeg" required></label>
<label class="field"><span>{tr("标题（可选）")}</span>
<input type="text" id="exhibit-title" maxlength="200" placeholder="如：证据一 借款合同"
 data-i18n-placeholder></label>
<progress id="exhibit-progress" max="1" hidden></progress>
<p id="exhibit-error" class="error" role="alert" hidden></p>
<div class="actions">
<button type="submit" id="exhibit-upload" class="primary">{tr("上传并出示")}</button>
<button type="button" id="exhibit-cancel">{tr("关闭")}</button></div>
</form>
<h3>{tr("本案已提交的证据")}</h3>
<ul id="exhibit-list" class="exhibit-list"></ul>
</dialog>
<dialog id="consult-dialog" class="dialog" aria-labelledby="consult-heading">
<h2 id="consult-heading">{tr("申请私下会见")}</h2>
<p class="hint">{tr("法庭准许后，你们的谈话不会被法庭听到，也不会录制或记入笔录。")}</p>
<ul id="consult-candidates" class="candidates"></ul>
<p id="consult-none" class="empty" hidden>{tr("对方目前不在庭。")}</p>
<div class="actions"><button type="button" id="consult-cancel">{tr("取消")}</button></div>
</dialog>"""
    attrs = (
        f' data-state="{"lobby" if role == "observer" else "device-check"}"'
        f' data-token="{esc(token)}" data-role="{esc(role)}"'
        f' data-participant-id="{esc(str(p.id))}" data-hearing-id="{esc(str(h.id))}"'
        f' data-hearing-state="{esc(state)}"' + (' data-kiosk="1"' if kiosk else "")
    )
    return page(h.title, body, body_attrs=attrs, scripts=("/static/join.js",), styles=STYLES)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/join/{token}", join)

"""Pages for court staff: scheduling, hearings live now (supervision), and review.

Each page is a shell: the data comes from the REST API, called by the page's script with the
admin token the clerk signs in with (kept in sessionStorage, sent as a bearer). A judge opens
the review of their own hearing with their join token in the URL fragment, which never reaches
the server; so nothing about a hearing is rendered here, only whether its id exists.
"""

from __future__ import annotations

import html
import uuid

from aiohttp import web

from courtrooms.errors import NotFound
from web.api import REGISTRY
from web.pages import page, tr

STYLES = ("/static/staff.css",)
NAV = (("/schedule", "日程"), ("/live", "正在进行"), ("/review", "庭审回看"))
CURRENT = ' aria-current="page"'
SIGNIN_HINT = "请输入本服务器的管理令牌。令牌仅保存在本浏览器标签页中，关闭后需重新登录。"


def _bar(current: str, *, nav_hidden: bool = False) -> str:
    links = "".join(
        f'<a href="{href}"{CURRENT if href == current else ""}>{tr(zh)}</a>' for href, zh in NAV
    )
    hidden = " hidden" if nav_hidden else ""
    return f"""<header class="staff-bar">
<a class="brand" href="/schedule" lang="zh-CN">庭审 <span class="brand-en">Tingshen</span></a>
<nav id="staff-nav" class="staff-nav" aria-label="工作台" data-i18n-aria-label{hidden}>{links}</nav>
<span class="bar-fill"></span>
<span id="signed-in-as" class="signed-in-as"></span>
<button type="button" id="sign-out" class="quiet" hidden>{tr("退出登录")}</button>
</header>
<section id="signin" class="signin" hidden>
<form id="signin-form" class="signin-card" autocomplete="off">
<h1>{tr("法院工作人员登录")}</h1>
<p class="hint">{tr(SIGNIN_HINT)}</p>
<input type="text" name="username" value="tingshen-admin" autocomplete="username" hidden>
<label for="signin-token">{tr("管理令牌")}</label>
<input type="password" id="signin-token" name="token" required spellcheck="false"
 autocomplete="current-password">
<p id="signin-message" class="form-error" role="alert"></p>
<button type="submit" class="primary">{tr("登录")}</button>
</form>
</section>
<p id="page-status" class="page-status" role="status" aria-live="polite"></p>"""


def _staff_page(title: str, current: str, main: str, script: str, *, status: int = 200,
                nav_hidden: bool = False, attrs: str = "", main_class: str = "") -> web.Response:
    return page(
        title,
        f'{_bar(current, nav_hidden=nav_hidden)}\n'
        f'<main id="app" class="staff{main_class}" hidden>{main}</main>',
        status=status,
        body_attrs=f' class="staff-page"{attrs}',
        scripts=(f"/static/staff/{script}",),
        styles=STYLES,
    )


def _week_toolbar() -> str:
    return f"""<div class="toolbar">
<div class="group">
<button type="button" id="week-prev" aria-label="上一周" data-i18n-aria-label>‹</button>
<button type="button" id="week-today">{tr("本周")}</button>
<button type="button" id="week-next" aria-label="下一周" data-i18n-aria-label>›</button>
<h1 id="week-label" class="week-label"></h1>
</div>
<div class="group">
<div class="segmented" role="group" aria-label="视图" data-i18n-aria-label>
<button type="button" id="view-rooms" data-view="rooms" aria-pressed="true">{tr("按法庭")}</button>
<button type="button" id="view-terminals" data-view="terminals"
 aria-pressed="false">{tr("按监所终端")}</button>
</div>
<label class="inline"><span>{tr("筛选")}</span>
<select id="resource-filter"></select></label>
<button type="button" id="new-hearing" class="primary">{tr("新建庭审")}</button>
</div>
</div>"""


async def schedule(_request: web.Request) -> web.Response:
    main = f"""{_week_toolbar()}
<div class="schedule-layout">
<section class="calendar-wrap" aria-label="日程" data-i18n-aria-label>
<div id="calendar" class="calendar"></div>
<ul class="legend" aria-label="图例" data-i18n-aria-label>
<li class="state-scheduled">{tr("已排期")}</li><li class="state-open">{tr("候审中")}</li>
<li class="state-in_session">{tr("庭审中")}</li><li class="state-recess">{tr("休庭")}</li>
<li class="state-closed">{tr("已闭庭")}</li><li class="state-cancelled">{tr("已取消")}</li>
<li class="draft">{tr("正在编辑")}</li><li class="conflict">{tr("时间冲突")}</li>
</ul>
</section>
<aside id="panel" class="side-panel" hidden></aside>
</div>"""
    return _staff_page("日程 Schedule", "/schedule", main, "schedule.js")


async def live(_request: web.Request) -> web.Response:
    main = f"""<div class="toolbar">
<div class="group"><h1>{tr("正在进行的庭审")}</h1>
<span id="live-updated" class="muted"></span></div>
<div class="group"><span class="muted">{tr("监督人")}</span>
<strong id="observer-name" class="observer-name"></strong>
<button type="button" id="observer-rename" class="quiet">{tr("更改姓名")}</button></div>
</div>
<form id="observer-form" class="inline-form" hidden>
<label for="observer-input">{tr("请输入您的姓名（以监督身份进入庭审时显示给法官和书记员）")}</label>
<input id="observer-input" required maxlength="200" autocomplete="name">
<button type="submit" class="primary">{tr("确定")}</button>
<button type="button" id="observer-cancel" class="quiet">{tr("取消")}</button>
</form>
<table class="grid-table" id="live-table">
<thead><tr><th>{tr("案号")}</th><th>{tr("名称")}</th><th>{tr("类型")}</th><th>{tr("法庭")}</th>
<th>{tr("状态")}</th><th>{tr("开庭时间")}</th><th class="num">{tr("到庭/参与人")}</th>
<th class="num">{tr("监督人员")}</th><th></th></tr></thead>
<tbody id="live-rows"></tbody>
</table>
<p id="live-empty" class="empty" hidden>{tr("目前没有正在进行的庭审。")}</p>"""
    return _staff_page("正在进行 Live", "/live", main, "live.js")


async def review_list(_request: web.Request) -> web.Response:
    main = f"""<div class="toolbar">
<div class="group"><h1>{tr("庭审回看")}</h1></div>
<form id="review-search" class="group" role="search">
<label class="inline"><span>{tr("从")}</span><input type="date" id="range-from" required></label>
<label class="inline"><span>{tr("至")}</span><input type="date" id="range-to" required></label>
<input type="search" id="review-query" placeholder="案号或名称" data-i18n-placeholder
 aria-label="案号或名称" data-i18n-aria-label>
<button type="submit">{tr("查询")}</button>
</form>
</div>
<table class="grid-table" id="review-table">
<thead><tr><th>{tr("案号")}</th><th>{tr("名称")}</th><th>{tr("类型")}</th><th>{tr("法庭")}</th>
<th>{tr("开庭时间")}</th><th>{tr("闭庭时间")}</th><th></th></tr></thead>
<tbody id="review-rows"></tbody>
</table>
<p id="review-empty" class="empty" hidden>{tr("所选期间内没有已闭庭的庭审。")}</p>"""
    return _staff_page("庭审回看 Review", "/review", main, "review-list.js")


async def review(request: web.Request) -> web.Response:
    raw = request.match_info["hearing_id"]
    try:
        hearing_id = uuid.UUID(raw)
        await request.app[REGISTRY].get_hearing(hearing_id)
    except (ValueError, NotFound):
        return page(
            "未找到 Not found",
            f'{_bar("/review")}<main class="staff notice" id="not-found">'
            f'<h1>{tr("未找到该庭审")}</h1>'
            f'<p>{tr("链接中的庭审编号不存在，可能已被删除或链接有误。")}</p>'
            f'<p class="muted"><code>{html.escape(raw)}</code></p>'
            f'<p><a href="/review">{tr("返回庭审回看列表")}</a></p></main>',
            status=404,
            body_attrs=' class="staff-page" data-state="not-found"',
            styles=STYLES,
        )
    main = f"""<header class="review-head">
<h1 id="hearing-title">{tr("庭审回看")}</h1>
<dl id="hearing-facts" class="facts"></dl>
</header>
<div class="review-layout">
<section class="player-col" aria-label="录像" data-i18n-aria-label>
<div class="player-frame"><video id="player" controls preload="metadata" playsinline></video>
<p id="player-empty" class="player-empty" hidden></p></div>
<p id="player-now" class="player-now muted"></p>
<div id="composite-progress" class="composite-progress" hidden>
<span>{tr("合成录像生成中")}</span><progress id="composite-bar" max="1" value="0"></progress>
<span id="composite-pct"></span></div>
<h2>{tr("录像文件")}</h2>
<ol id="recordings" class="recordings"></ol>
<h2>{tr("证据材料")}</h2>
<ul id="exhibits" class="exhibits"></ul>
</section>
<section class="transcript-col" aria-label="庭审笔录" data-i18n-aria-label>
<div class="record-head"><h2>{tr("庭审笔录")}</h2>
<div class="exports"><span class="muted">{tr("导出")}</span>
<a id="export-vtt" download>WebVTT</a><a id="export-srt" download>SRT</a>
<a id="export-txt" download>{tr("文本")}</a><a id="export-docx" download>Word</a></div></div>
<div id="seal-box" class="seal-box"></div>
<div class="transcript-tools">
<input type="search" id="transcript-search" placeholder="搜索笔录" data-i18n-placeholder
 aria-label="搜索笔录" data-i18n-aria-label>
<span id="search-count" class="muted search-count"></span>
<button type="button" id="search-prev" aria-label="上一个" data-i18n-aria-label>↑</button>
<button type="button" id="search-next" aria-label="下一个" data-i18n-aria-label>↓</button>
<label class="inline"><input type="checkbox" id="search-filter"> {tr("仅显示匹配行")}</label>
</div>
<ol id="transcript" class="transcript"></ol>
<p id="transcript-empty" class="empty" hidden>{tr("笔录中没有内容。")}</p>
</section>
</div>"""
    return _staff_page("庭审回看 Review", "/review", main, "review.js", nav_hidden=True,
                       attrs=f' data-hearing-id="{hearing_id}"', main_class=" review-main")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/schedule", schedule)
    app.router.add_get("/live", live)
    app.router.add_get("/review", review_list)
    app.router.add_get("/review/{hearing_id}", review)

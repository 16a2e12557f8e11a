"""The prison terminal kiosk (`/terminal`): a fixed device, authenticated by its device key.

The page is the same for every terminal; /static/terminal.js keeps the key in the browser,
asks `GET /api/v1/terminal/assignment` for the next hearing and opens its join page when the
join window opens.
"""

from __future__ import annotations

from aiohttp import web

from web.pages import page, tr


async def terminal(_request: web.Request) -> web.Response:
    body = f"""<div class="kiosk-frame">
<header class="kiosk-bar">
<div class="kiosk-who">
<h1 id="terminal-name" class="terminal-name">{tr("监所远程视频终端")}</h1>
<p id="prison" class="prison"></p>
</div>
<div class="kiosk-clock"><time id="clock-time" class="clock-time"></time>
<span id="clock-date" class="clock-date"></span></div>
</header>
<main class="kiosk-main">
<section id="setup" class="kiosk-card setup" hidden>
<h2>{tr("终端设置")}</h2>
<p class="hint">{tr("请技术人员输入本终端的设备密钥。密钥只需输入一次，保存在本机。")}</p>
<form id="setup-form" autocomplete="off" novalidate>
<label for="device-key">{tr("设备密钥")}</label>
<input id="device-key" type="password" autocomplete="off" spellcheck="false"
 autocapitalize="off" maxlength="200">
<label class="show-key"><input type="checkbox" id="show-key"> {tr("显示密钥")}</label>
<p id="setup-error" class="setup-error" role="alert" hidden></p>
<button type="submit" id="setup-submit" class="primary">{tr("确认")}</button>
</form>
</section>
<section id="loading" class="kiosk-card quiet">
<p class="calm">{tr("正在连接服务器…")}</p>
</section>
<section id="waiting" class="kiosk-card waiting" hidden>
<p id="hearing-kind" class="hearing-kind"></p>
<h2 id="hearing-title" class="hearing-title"></h2>
<dl class="hearing-facts">
<dt>{tr("案号")}</dt><dd id="case-number"></dd>
<dt>{tr("开庭时间")}</dt><dd id="scheduled-start"></dd>
<dt>{tr("参加人")}</dt><dd id="participant-name"></dd>
</dl>
<div class="countdown-box">
<p id="countdown-label" class="countdown-label"></p>
<p id="countdown" class="countdown" aria-live="off"></p>
<p id="opens-at" class="opens-at"></p>
</div>
</section>
<section id="idle" class="kiosk-card quiet" hidden>
<p class="calm">{tr("当前没有安排的庭审")}</p>
<p class="hint">{tr("有庭审安排时，本屏幕会自动显示。")}</p>
</section>
<section id="opening" class="kiosk-card quiet" hidden>
<p class="calm">{tr("正在进入庭审…")}</p>
</section>
</main>
<p id="net-note" class="net-note" role="status" hidden></p>
</div>
<dialog id="reset-dialog" class="reset-dialog">
<form method="dialog">
<h2>{tr("清除设备密钥")}</h2>
<p>{tr("清除后，本终端需要技术人员重新输入设备密钥才能使用。")}</p>
<div class="dialog-buttons">
<button type="submit" value="cancel" id="reset-cancel">{tr("取消")}</button>
<button type="submit" value="reset" id="reset-confirm" class="danger">{tr("清除密钥")}</button>
</div>
</form>
</dialog>"""
    return page(
        "监所终端",
        body,
        body_attrs=' class="kiosk" data-state="loading"',
        scripts=("/static/terminal.js",),
        styles=("/static/terminal.css",),
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/terminal", terminal)

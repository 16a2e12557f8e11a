// Shared by the staff pages: signing in (a server-side session in an HttpOnly cookie; or, on the
// review page, a judge's join token from the URL fragment), calling the REST API, dates and times in the reader's
// language on the court's clock (court-time.js), and small DOM helpers.
import { formatCourt, fromLocalInput, toDateInput, toLocalInput } from "/static/court-time.js";
import { lang, t } from "/static/i18n.js";

export { fromLocalInput, toDateInput, toLocalInput };

export const API = "/api/v1";
export const $ = (id) => document.getElementById(id);

const STATUS_CLEAR_MS = 6000;

// -- DOM --------------------------------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child != null && child !== false) node.append(child);
  }
  return node;
}

// Chinese text that follows the language switch by itself (i18n.js swaps `data-i18n` nodes).
export function tx(zh, tag = "span", attrs = {}) {
  return el(tag, { ...attrs, "data-i18n": true, dataset: { ...(attrs.dataset || {}), zh } }, t(zh));
}

// An attribute (aria-label, placeholder, title) in Chinese that follows the language switch.
export function txAttr(attr, zh) {
  return { [attr]: t(zh), [`data-i18n-${attr}`]: zh };
}

let statusTimer = null;

// One line at the top of the page for what just happened or went wrong.
export function showStatus(text, kind = "info") {
  const line = $("page-status");
  if (!line) return;
  clearTimeout(statusTimer);
  line.textContent = text;
  line.dataset.kind = kind;
  line.hidden = !text;
  if (text && kind !== "error") statusTimer = setTimeout(() => showStatus(""), STATUS_CLEAR_MS);
}

export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

// -- the API ----------------------------------------------------------------------------------

// Who this page acts as: a staff session (its cookie is the server's; the page holds only the
// CSRF token it must send with changes), or a participant's join token (review only).
export const session = { kind: null, token: null, csrf: null, account: null };

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const CODE_ZH = {
  schedule_conflict: "时间冲突：法庭、审判员或监所终端在该时段已被占用。",
  not_editable: "该庭审当前的状态不允许此操作。",
  invalid_transition: "该庭审当前的状态不允许此操作。",
  record_sealed: "笔录已封存，不能再更正。",
  access_denied: "无权进行此操作。",
  // Not the server's: the page did not add an interpreter whose party could not be added.
  interpreted_missing: "其翻译对象未能添加，因此未添加该翻译；请先添加当事人，再添加翻译。",
  hearing_finished: "该庭审已结束。",
  not_found: "未找到所请求的内容。",
  invalid: "输入有误。",
  in_use: "该项仍被使用，不能删除。",
  unauthorized: "需要登录。",
  network: "无法连接服务器，请检查网络。",
};

// A message for the reader: the court's words first, the server's own words after.
export function errorText(e) {
  if (!(e instanceof ApiError)) return t("出现意外错误：{message}", { message: String(e) });
  const zh = CODE_ZH[e.code];
  if (!zh) return t("请求失败（{status}）：{message}", { status: e.status, message: e.message });
  return e.message && e.code !== "network"
    ? t("{message}（{detail}）", { message: t(zh), detail: e.message }) : t(zh);
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, v);
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

// `keepSession`: a 401 is this call's answer only (an endpoint this token may not use), not a
// sign that the token is no longer valid.
export async function api(path, { method = "GET", body, query, keepSession = false } = {}) {
  if (!session.kind) throw new ApiError(401, "unauthorized", "");
  const data = await call(path, { method, body, query });
  if (data instanceof ApiError) {
    if (data.status === 401 && !keepSession) signedOut(data);
    throw data;
  }
  return data;
}

// One request as this page's session; an ApiError is returned (not thrown) for a refusal.
async function call(path, { method = "GET", body, query } = {}) {
  const headers = { Accept: "application/json" };
  if (session.kind === "participant") headers.Authorization = `Bearer ${session.token}`;
  else if (session.csrf && method !== "GET") headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let reply;
  try {
    reply = await fetch(withQuery(API + path, query), {
      method, headers, cache: "no-store",
      // The staff session's cookie; a participant's page sends its token instead.
      credentials: session.kind === "participant" ? "omit" : "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "");
  }
  const text = await reply.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!reply.ok) {
    const err = (data && data.error) || {};
    return new ApiError(reply.status, err.code || "http_error", err.message || reply.statusText,
      err);
  }
  return data;
}

// Every item of a paged list (pages of 200, the API's largest).
export async function listAll(path, query = {}) {
  const items = [];
  for (let offset = 0; ; ) {
    const page = await api(path, { query: { ...query, limit: 200, offset } });
    items.push(...page.items);
    offset += page.items.length;
    if (!page.items.length || offset >= page.total) return items;
  }
}

// Every courtroom by id, each with its court's name (`court`): how the staff lists say where.
export async function roomsWithCourts() {
  const [courts, rooms] = await Promise.all([listAll("/courts"), listAll("/courtrooms")]);
  const courtName = new Map(courts.map((c) => [c.id, c.name]));
  return new Map(rooms.map((r) => [r.id, { ...r, court: courtName.get(r.court_id) || "" }]));
}

// A URL a <video>, an image or a download can open. They cannot send a header: staff pages
// have their session's cookie; a participant's page asks for a short-lived signed link (never
// a token in the URL). `path` is an API path under /api/v1/hearings/{id}/.
export async function openable(path) {
  if (session.kind !== "participant") return path;
  const hearing = path.split("/")[4];
  const link = await api(`/hearings/${hearing}/links`, { method: "POST", body: { path } });
  return link.url;
}

// A link to an API file (an export, an exhibit): staff open it with their session's cookie; a
// participant's click first gets a fresh signed link.
export function fileLink(anchor, path) {
  anchor.href = path;
  anchor.onclick = async (event) => {
    if (session.kind !== "participant") return;
    event.preventDefault();
    try {
      const go = el("a", {
        href: await openable(path), download: anchor.hasAttribute("download") ? "" : false,
        target: anchor.target || false, rel: "noopener noreferrer",
      });
      document.body.append(go);
      go.click();
      go.remove();
    } catch (e) {
      if (!e.handled) showStatus(errorText(e), "error");
    }
  };
  return anchor;
}

// -- signing in -------------------------------------------------------------------------------

let started = false;
let load = null;
let participantStorage = null; // where this tab keeps a join token from the fragment

function showApp(show) {
  $("app").hidden = !show;
  $("signin").hidden = show;
  $("sign-out").hidden = !show || session.kind !== "admin";
  $("sign-out-everywhere").hidden = !show || session.kind !== "admin" || !session.account;
  const who = $("signed-in-as");
  who.dataset.kind = show ? session.kind || "" : "";
  renderWho();
}

function renderWho() {
  const who = $("signed-in-as");
  if (!who) return;
  const account = who.dataset.kind === "admin" && session.account;
  who.textContent = account ? t("已登录：{name}", { name: account.name })
    : who.dataset.kind === "admin" ? t("已登录：法院管理员")
    : who.dataset.kind === "participant" ? t("通过庭审链接访问") : "";
}

function showSignIn(message = "") {
  showApp(false);
  const msg = $("signin-message");
  msg.textContent = message;
  msg.hidden = !message;
  $("signin-password").value = "";
  $("signin-login").focus();
}

function signedOut(error) {
  const participant = session.kind === "participant";
  session.kind = null;
  session.token = null;
  session.csrf = null;
  session.account = null;
  if (participant && participantStorage) {
    try { sessionStorage.removeItem(participantStorage); } catch { /* nothing kept */ }
  }
  showSignIn(participant
    ? t("此回看链接无效、已被撤销或无权查看。法院工作人员可使用账号登录。")
    : t("令牌无效或登录已失效，请重新登录。"));
  if (error) error.handled = true;
}

async function signIn(event) {
  event.preventDefault();
  // With a login: the account's password. Without: the admin token, which signs in only
  // while the server has no administrator account yet (its setup).
  const login = $("signin-login").value.trim();
  const password = $("signin-password").value;
  const msg = $("signin-message");
  if (!password.trim()) return;
  const button = event.submitter || $("signin-form").querySelector("button");
  button.disabled = true;
  msg.textContent = t("正在验证……");
  msg.hidden = false;
  session.kind = null;
  session.token = null;
  const body = login ? { login, password } : { token: password.trim() };
  const signed = await call("/session", { method: "POST", body }).catch((e) => e);
  button.disabled = false;
  if (signed instanceof ApiError) {
    msg.textContent = signed.status === 401
      ? (login ? t("登录名或密码不正确，请核对后重试。") : t("令牌不正确，请核对后重试。"))
      : signed.code === "token_sign_in_off" ? t("本服务器已有管理员账号：请填写登录名，使用您的账号登录。")
      : signed.status === 429 ? t("尝试次数过多，请一分钟后再试。") : errorText(signed);
    $("signin-password").select();
    return;
  }
  $("signin-password").value = "";
  session.kind = "admin";
  session.csrf = signed.csrf_token;
  session.account = signed.account;
  if (landsOnMyHearings(signed.account)) {
    location.assign("/my");
    return;
  }
  showApp(true);
  run();
}

// A judge's work starts from their own hearings: signed in on another list (the clerk's
// calendar, supervision, tokens), they land on "my hearings". Anyone with another role stays.
function landsOnMyHearings(account) {
  const roles = (account && account.roles) || [];
  return roles.length > 0 && roles.every((r) => r === "judge")
    && ["/schedule", "/live", "/tokens", "/review"].includes(location.pathname);
}

// The staff session this browser already has (its cookie), if any; else the refusal.
async function resumeSession() {
  const current = await call("/session").catch((e) => e);
  if (current instanceof ApiError) return current;
  if (!current.signed_in) return new ApiError(401, current.ended ? "session_expired" : "unauthorized", "");
  session.kind = "admin";
  session.csrf = current.csrf_token;
  session.account = current.account;
  return null;
}

function run() {
  Promise.resolve(load()).catch((e) => {
    if (!e.handled && !(e instanceof ApiError && e.status === 401)) showStatus(errorText(e), "error");
  });
}

function fragmentToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const token = hash.get("token");
  if (token) {
    // Keep it out of the address bar, history and anything copied from it.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return token;
}

// Start a staff page: `init` once, then `reload` whenever someone (again) signs in.
// With `participantKey`, a join token in the fragment (#token=...) is accepted and kept for
// this tab under that key (a reload keeps working).
export async function startStaffPage({ init = () => {}, reload, participantKey = null }) {
  load = reload;
  participantStorage = participantKey;
  if (!started) {
    started = true;
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", async () => {
      await call("/session", { method: "DELETE" }).catch(() => null);
      session.kind = null;
      session.csrf = null;
      session.account = null;
      showSignIn(t("已退出登录。"));
    });
    $("sign-out-everywhere").addEventListener("click", async () => {
      const out = await call("/session/everywhere", { method: "DELETE" }).catch((e) => e);
      if (out instanceof ApiError && out.status !== 401) {
        showStatus(errorText(out), "error");
        return;
      }
      session.kind = null;
      session.csrf = null;
      session.account = null;
      showSignIn(t("已在所有设备上退出登录。"));
    });
    window.addEventListener("langchange", renderWho);
    init();
  }
  let token = null;
  if (participantKey) {
    token = fragmentToken();
    try {
      if (token) sessionStorage.setItem(participantKey, token);
      else token = sessionStorage.getItem(participantKey);
    } catch { /* this page only */ }
  }
  if (token) {
    session.kind = "participant";
    session.token = token;
  } else if (!session.kind) {
    const refused = await resumeSession();
    if (refused) {
      // A cookie that no longer holds a session (signed out elsewhere, idle, expired): say so.
      showSignIn(refused.code === "session_expired" ? t("令牌无效或登录已失效，请重新登录。") : "");
      return;
    }
  }
  showApp(true);
  run();
}

// -- times ------------------------------------------------------------------------------------

export const locale = () => (lang === "en" ? "en-GB" : "zh-CN");

export const fmt = (value, options) => formatCourt(value, locale(), options);

const HM = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
export const fmtTime = (v) => fmt(v, HM);
export const fmtSeconds = (v) => fmt(v, { ...HM, second: "2-digit" });
export const fmtDateTime = (v) => fmt(v, { year: "numeric", month: "2-digit", day: "2-digit", ...HM });
export const fmtDate = (v) => fmt(v, { year: "numeric", month: "2-digit", day: "2-digit" });

// "10:00–12:00" on one day, the full dates otherwise.
export function fmtWindow(start, end) {
  const a = new Date(start), b = new Date(end);
  const sameDay = toDateInput(a) === toDateInput(b);
  return sameDay ? `${fmtDateTime(a)}–${fmtTime(b)}` : `${fmtDateTime(a)} – ${fmtDateTime(b)}`;
}

// Seconds on the hearing timeline as h:mm:ss (or m:ss).
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(sec)}` : `${two(m)}:${two(sec)}`;
}

// -- copying and sending links ----------------------------------------------------------------

// Copy to the clipboard; without clipboard access (plain HTTP), select the text for Ctrl+C.
export async function copyText(text, input = null) {
  try {
    await navigator.clipboard.writeText(text);
    return "copied";
  } catch { /* not a secure context, or refused */ }
  if (input) {
    input.focus();
    input.select();
    try {
      if (document.execCommand("copy")) return "copied";
    } catch { /* unsupported */ }
    return "selected";
  }
  return "failed";
}

export function copiedMessage(outcome) {
  return outcome === "copied" ? t("已复制到剪贴板。")
    : outcome === "selected" ? t("已选中链接，请按 Ctrl+C 复制。") : t("无法复制，请手动复制链接。");
}

export function mailto(subject, body) {
  const enc = (s) => encodeURIComponent(s.replace(/\r?\n/g, "\r\n"));
  return `mailto:?subject=${enc(subject)}&body=${enc(body)}`;
}

// A readonly link field with copy and mail buttons.
export function linkTools(link, subject, body) {
  const input = el("input", { class: "link-field", readonly: true, value: link, "aria-label": t("加入链接") });
  input.addEventListener("focus", () => input.select());
  const copy = el("button", { type: "button", class: "small", "data-action": "copy" }, t("复制"));
  copy.addEventListener("click", async () => showStatus(copiedMessage(await copyText(link, input))));
  const send = el("a", { class: "button small", href: mailto(subject, body), "data-action": "mail" }, t("发送"));
  return el("span", { class: "link-tools" }, input, copy, send);
}

// -- confirmation -----------------------------------------------------------------------------

// A modal question with a cancel and a confirm button; resolves true when confirmed.
export function confirmDialog({ title, paragraphs, confirm, danger = false }) {
  return new Promise((resolve) => {
    const ok = el("button", { type: "submit", value: "ok", class: danger ? "primary danger" : "primary", "data-action": "confirm" }, confirm);
    const cancel = el("button", { type: "submit", value: "cancel", "data-action": "cancel" }, t("取消"));
    const dialog = el("dialog", { class: "confirm" },
      el("form", { method: "dialog" },
        el("h2", {}, title),
        paragraphs.map((p) => el("p", {}, p)),
        el("div", { class: "dialog-buttons" }, cancel, ok)));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

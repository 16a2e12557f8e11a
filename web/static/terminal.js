// The prison terminal kiosk (/terminal): a fixed screen in a prison. A technician enters the
// terminal's device key once (kept in this browser); from then on the page shows the next
// hearing and a countdown, asks the server every 15 s, and opens the hearing's join page by
// itself as soon as the server hands out a join token (the join window is open).
import { formatCourt } from "/static/court-time.js";
import { t, lang } from "/static/i18n.js";
import { kindLabel, roleLabel } from "/static/labels.js";

const KEY_STORAGE = "tingshen.deviceKey";
const ASSIGNMENT_URL = "/api/v1/terminal/assignment";
const POLL_MS = 15000;
const BACKOFF_MIN_MS = 2000;
const BACKOFF_MAX_MS = 60000;
const LONG_PRESS_MS = 5000;
// Back from a join page that failed at once: do not bounce between the two pages.
const LAST_JOIN = "tingshen.terminal.joinedAt";
const JOIN_AGAIN_MS = 10000;
// The Date header counts whole seconds: smaller differences from this clock are noise.
const SKEW_MIN_MS = 2000;
const DAY_S = 86400;
// Device keys are URL-safe text; anything else (a full-width character, a space) is a typo.
const KEY_PATTERN = /^[\x21-\x7e]+$/;
const VIEWS = ["setup", "loading", "waiting", "idle", "opening"];
const BLOCKED_KEYS = new Set([
  "F1", "F3", "F5", "F6", "F7", "F10", "F11", "F12", "ContextMenu", "Help", "BrowserBack",
  "BrowserForward", "BrowserRefresh", "BrowserHome", "BrowserSearch", "BrowserFavorites",
  "BrowserStop", "GoBack", "GoHome",
]);
const EDITING_KEYS = new Set(["a", "c", "v", "x", "z", "y"]);

const $ = (id) => document.getElementById(id);
const body = document.body;

function readKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

function storeKey(key) {
  try {
    localStorage.setItem(KEY_STORAGE, key);
  } catch { /* kept for this visit only */ }
}

function forgetKey() {
  try {
    localStorage.removeItem(KEY_STORAGE);
  } catch { /* nothing was kept */ }
}

const S = {
  key: readKey(),
  view: "loading",
  data: null, // the last TerminalAssignment
  setupError: "", // empty | format | refused | revoked | network
  checking: false,
  offline: false,
  failures: 0,
  skewMs: 0, // server clock minus this clock
  pollTimer: null,
  inflight: null,
  zeroPolled: false, // asked once more when the countdown reached zero
};

const now = () => Date.now() + S.skewMs;

// -- talking to the server ---------------------------------------------------------------------

function noteServerTime(header, sent, received) {
  const server = Date.parse(header || "");
  if (Number.isNaN(server)) return;
  // The header is truncated to the second: its middle is the best guess.
  const skew = server + 500 - (sent + received) / 2;
  S.skewMs = Math.abs(skew) < SKEW_MIN_MS ? 0 : skew;
}

async function fetchAssignment(key) {
  const sent = Date.now();
  const reply = await fetch(ASSIGNMENT_URL, {
    headers: { Authorization: `Device ${key}` },
    cache: "no-store",
    credentials: "omit",
  });
  noteServerTime(reply.headers.get("Date"), sent, Date.now());
  if (reply.status === 401 || reply.status === 403) return { refused: true };
  if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
  return { data: await reply.json() };
}

// Show an assignment; true when leaving for the hearing.
function apply(data) {
  S.data = data;
  if (data.token) {
    S.view = "opening";
    render();
    openHearing(data.token);
    return true;
  }
  S.view = data.hearing ? "waiting" : "idle";
  if (remainingMs() > 0) S.zeroPolled = false;
  render();
  return false;
}

function openHearing(token) {
  let last = 0;
  try {
    last = Number(sessionStorage.getItem(LAST_JOIN)) || 0;
  } catch { /* no memory of the last join: go at once */ }
  const wait = Math.max(0, Math.min(JOIN_AGAIN_MS, last + JOIN_AGAIN_MS - Date.now()));
  setTimeout(() => {
    try {
      sessionStorage.setItem(LAST_JOIN, String(Date.now()));
    } catch { /* as above */ }
    location.replace(`/join/${encodeURIComponent(token)}?kiosk=1`);
  }, wait);
}

function schedule(ms) {
  clearTimeout(S.pollTimer);
  S.pollTimer = setTimeout(poll, ms);
}

function poll() {
  if (!S.inflight) S.inflight = pollOnce().finally(() => { S.inflight = null; });
  return S.inflight;
}

async function pollOnce() {
  clearTimeout(S.pollTimer);
  const key = S.key;
  if (!key) return;
  let result;
  try {
    result = await fetchAssignment(key);
  } catch (e) {
    if (S.key !== key) return;
    console.warn("terminal assignment", e);
    S.failures += 1;
    S.offline = true;
    render();
    schedule(Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (S.failures - 1)));
    return;
  }
  if (S.key !== key) return; // cleared by a technician meanwhile
  S.offline = false;
  S.failures = 0;
  if (result.refused) {
    // The key was replaced or the terminal removed: only a technician can help.
    forgetKey();
    S.key = "";
    S.data = null;
    S.view = "setup";
    S.setupError = "revoked";
    render();
    return;
  }
  if (!apply(result.data)) schedule(POLL_MS);
}

async function submitKey(event) {
  event.preventDefault();
  if (S.checking) return;
  const input = $("device-key");
  const key = input.value.trim();
  S.setupError = !key ? "empty" : KEY_PATTERN.test(key) ? "" : "format";
  if (S.setupError) {
    render();
    input.focus();
    return;
  }
  S.checking = true;
  render();
  let result;
  try {
    result = await fetchAssignment(key);
  } catch (e) {
    console.warn("terminal assignment", e);
    result = { offline: true };
  }
  S.checking = false;
  if (result.offline || result.refused) {
    S.setupError = result.refused ? "refused" : "network";
    render();
    input.focus();
    input.select();
    return;
  }
  storeKey(key);
  S.key = key;
  S.setupError = "";
  input.value = "";
  S.offline = false;
  if (!apply(result.data)) schedule(POLL_MS);
}

function resetKey() {
  forgetKey();
  clearTimeout(S.pollTimer);
  Object.assign(S, { key: "", data: null, view: "setup", setupError: "", offline: false,
    failures: 0 });
  render();
  $("device-key").focus();
}

// -- what the screen shows ---------------------------------------------------------------------

function locale() {
  return lang === "en" ? "en-GB" : "zh-CN";
}

function format(iso, options) {
  return formatCourt(iso, locale(), options);
}

const WHEN = { month: "long", day: "numeric", weekday: "long", hour: "2-digit",
  minute: "2-digit", hourCycle: "h23" };
const TIME = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
const DAY = { year: "numeric", month: "2-digit", day: "2-digit" };

function remainingMs() {
  const opens = S.data && S.data.opens_at ? Date.parse(S.data.opens_at) : NaN;
  return Number.isNaN(opens) ? 0 : opens - now();
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function countdownText(seconds) {
  const days = Math.floor(seconds / DAY_S);
  const rest = seconds % DAY_S;
  const hms = `${pad(Math.floor(rest / 3600))}:${pad(Math.floor(rest / 60) % 60)}:${pad(rest % 60)}`;
  return days ? t("{days} 天 {time}", { days, time: hms }) : hms;
}

function setupErrorText() {
  switch (S.setupError) {
    case "empty": return t("请输入设备密钥。");
    case "format": return t("设备密钥只含英文字母、数字和符号，请核对后重新输入。");
    case "refused": return t("设备密钥无效，请核对后重新输入。");
    case "revoked": return t("本终端的设备密钥已失效（可能已被更换），请技术人员重新输入。");
    case "network": return t("无法连接服务器，请检查网络后重试。");
    default: return "";
  }
}

function renderClock() {
  const at = new Date(now()).toISOString();
  const time = $("clock-time");
  time.textContent = format(at, { ...TIME, second: "2-digit" });
  time.setAttribute("datetime", at);
  $("clock-date").textContent = format(at, { year: "numeric", month: "long", day: "numeric",
    weekday: "long" });
}

function renderCountdown() {
  if (S.view !== "waiting") return;
  const seconds = Math.max(0, Math.ceil(remainingMs() / 1000));
  const box = $("countdown");
  box.dataset.seconds = String(seconds);
  box.hidden = seconds === 0;
  box.textContent = countdownText(seconds);
  $("countdown-label").textContent = seconds
    ? t("距离进入庭审还有") : t("即将进入庭审，请稍候…");
}

function renderHearing() {
  const h = S.data && S.data.hearing;
  if (!h) return;
  const p = S.data.participant;
  $("hearing-kind").textContent = kindLabel(h.kind);
  $("hearing-title").textContent = h.title;
  $("case-number").textContent = h.case_number;
  $("scheduled-start").textContent =
    `${format(h.scheduled_start, WHEN)} – ${format(h.scheduled_end, TIME)}`;
  $("participant-name").textContent = p
    ? t("{name}（{role}）", { name: p.name, role: roleLabel(p.role) }) : "";
  const opens = S.data.opens_at;
  const today = opens && format(opens, DAY) === format(now(), DAY);
  $("opens-at").textContent = opens
    ? t("庭审入口将于 {time} 开放", { time: format(opens, today ? TIME : WHEN) }) : "";
  renderCountdown();
}

// A closed hearing's record the detainee has still to sign: read and signed here, at the
// kiosk, with the terminal's own token (never asked for ID digits: the terminal is in prison).
function renderToSign() {
  const offers = (S.data && S.data.signing) || [];
  const shown = (S.view === "idle" || S.view === "waiting") && offers.length > 0;
  $("to-sign").hidden = !shown;
  if (!shown) return;
  $("to-sign-list").replaceChildren(...offers.map((offer) => {
    const li = document.createElement("li");
    const go = document.createElement("button");
    go.type = "button";
    go.className = "primary";
    go.dataset.hearingId = offer.hearing.id;
    go.textContent = t("阅读并签署：{case}（{name}）", { case: offer.hearing.case_number,
      name: offer.participant.name });
    go.addEventListener("click", () => location.replace(offer.sign_url));
    li.append(go);
    return li;
  }));
}

function render() {
  body.dataset.state = S.view;
  document.title = `${t("监所终端")} · 庭审 Tingshen`;
  for (const view of VIEWS) $(view).hidden = S.view !== view;
  renderToSign();
  const terminal = S.data && S.data.terminal;
  $("terminal-name").textContent = terminal ? terminal.name : t("监所远程视频终端");
  $("prison").textContent = terminal ? terminal.prison : "";
  const error = $("setup-error");
  error.textContent = setupErrorText();
  error.hidden = !S.setupError;
  const submit = $("setup-submit");
  submit.disabled = S.checking;
  submit.textContent = S.checking ? t("正在验证…") : t("确认");
  renderHearing();
  renderClock();
  const note = $("net-note");
  note.hidden = !S.offline;
  note.textContent = S.offline ? t("与服务器的连接中断，正在重新连接…") : "";
}

function tick() {
  renderClock();
  if (S.view === "waiting") {
    renderCountdown();
    // The window may be open now: ask at once rather than at the next poll.
    if (remainingMs() <= 0 && !S.zeroPolled && !S.offline && S.key) {
      S.zeroPolled = true;
      poll();
    }
  }
  setTimeout(tick, 1000 - (now() % 1000) + 5);
}

// -- a kiosk: nowhere else to go ---------------------------------------------------------------

function editing(event) {
  return event.target instanceof Element && event.target.closest("input, textarea, select");
}

function blockedKey(e) {
  if (BLOCKED_KEYS.has(e.key)) return true;
  const typing = editing(e);
  if (e.ctrlKey || e.metaKey) {
    // Copy and paste while typing the key; AltGr (Ctrl+Alt) types characters on some layouts.
    if (typing && !e.altKey && EDITING_KEYS.has(e.key.toLowerCase())) return false;
    return !(typing && e.ctrlKey && e.altKey && e.key.length === 1);
  }
  if (e.altKey) return !(typing && e.key.length === 1);
  return e.key === "Backspace" && !typing;
}

function lockDown() {
  const stop = (e) => e.preventDefault();
  window.addEventListener("keydown", (e) => {
    if (blockedKey(e)) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, { capture: true });
  window.addEventListener("contextmenu", stop, { capture: true });
  document.addEventListener("dragstart", stop, { capture: true });
  document.addEventListener("selectstart", (e) => { if (!editing(e)) e.preventDefault(); },
    { capture: true });
  // Mouse back and forward buttons, middle clicks.
  for (const type of ["mousedown", "mouseup"]) {
    window.addEventListener(type, (e) => { if (e.button > 2) e.preventDefault(); },
      { capture: true });
  }
  window.addEventListener("auxclick", stop, { capture: true });
  window.addEventListener("wheel", (e) => { if (e.ctrlKey) e.preventDefault(); },
    { capture: true, passive: false });
  document.addEventListener("click", (e) => {
    if (e.target instanceof Element && e.target.closest("a[href]")) e.preventDefault();
  }, { capture: true });
  // Back (a gesture, a key the list above misses) lands on this page again.
  history.pushState(null, "", location.href);
  window.addEventListener("popstate", () => history.pushState(null, "", location.href));
  // Full screen on the first touch, and again after anyone leaves it.
  const fullScreen = () => {
    const root = document.documentElement;
    if (document.fullscreenElement || !document.fullscreenEnabled || !root.requestFullscreen) {
      return;
    }
    root.requestFullscreen({ navigationUI: "hide" }).catch(() => { /* not allowed: go on */ });
  };
  window.addEventListener("pointerup", fullScreen, { capture: true });
}

function longPress(node, ms, fire) {
  let timer = null;
  const cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  node.addEventListener("pointerdown", () => {
    cancel();
    timer = setTimeout(() => {
      timer = null;
      fire();
    }, ms);
  });
  for (const type of ["pointerup", "pointerleave", "pointercancel"]) {
    node.addEventListener(type, cancel);
  }
}

// -- start -------------------------------------------------------------------------------------

lockDown();
$("setup-form").addEventListener("submit", submitKey);
$("show-key").addEventListener("change", (e) => {
  $("device-key").type = e.target.checked ? "text" : "password";
});
const dialog = $("reset-dialog");
longPress($("terminal-name"), LONG_PRESS_MS, () => {
  if (S.key && !dialog.open) dialog.showModal();
});
dialog.addEventListener("close", () => {
  if (dialog.returnValue === "reset") resetKey();
  dialog.returnValue = "";
});
window.addEventListener("langchange", render);

S.view = S.key ? "loading" : "setup";
render();
tick();
if (S.key) poll();
else $("device-key").focus();

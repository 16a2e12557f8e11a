// Supervision: the hearings live now, refreshed every 5 s, and "watch" as an observer (a
// receive-only participant of the hearing, named by the signed-in account; with the admin
// token, which names no one, by a name typed once per browser tab).
import { t } from "/static/i18n.js";
import { kindLabel, stateLabel } from "/static/labels.js";
import {
  $, api, el, errorText, fmtSeconds, fmtTime, fmtWindow, session, showStatus,
  startStaffPage, roomsWithCourts,
} from "/static/staff/common.js";

const REFRESH_MS = 5000;
const NAME_KEY = "tingshen.staff.observer-name";
const WATCH_KEY = "tingshen.staff.observing";

const S = { items: [], rooms: new Map(), timer: null, shown: "", pending: null, updated: null };

const count = (v) => (Array.isArray(v) ? v.length : Number(v) || 0);

function stored(key, fallback) {
  try { return JSON.parse(sessionStorage.getItem(key)) ?? fallback; } catch { return fallback; }
}

function store(key, value) {
  try { sessionStorage.setItem(key, JSON.stringify(value)); } catch { /* this page only */ }
}

const observerName = () => (session.account ? session.account.name : stored(NAME_KEY, ""));

async function loadRooms() {
  S.rooms = await roomsWithCourts();
}

async function poll() {
  try {
    const reply = await api("/hearings/live");
    S.items = reply.items || [];
    S.updated = new Date();
    const missing = S.items.some(({ hearing }) => hearing.courtroom_id && !S.rooms.has(hearing.courtroom_id));
    if (missing) await loadRooms();
    render();
  } catch (e) {
    if (e.status !== 401) showStatus(errorText(e), "error");
  }
}

async function reload() {
  await loadRooms();
  renderName();
  clearInterval(S.timer);
  S.shown = "";
  await poll();
  S.timer = setInterval(poll, REFRESH_MS);
}

function render(force = false) {
  $("live-updated").textContent = S.updated ? t("更新于 {time}", { time: fmtSeconds(S.updated) }) : "";
  const key = JSON.stringify(S.items);
  if (!force && key === S.shown) return;
  S.shown = key;
  const focused = document.activeElement && document.activeElement.closest("tr[data-hearing-id]");
  const refocus = focused ? focused.dataset.hearingId : null;
  const rows = S.items.map(({ hearing: h, present, participants, observers }) => {
    const room = S.rooms.get(h.courtroom_id);
    const watch = el("button", { type: "button", class: "small", "data-action": "watch" }, t("监督观看"));
    watch.addEventListener("click", () => startWatching(h));
    const when = [fmtWindow(h.scheduled_start, h.scheduled_end)];
    if (h.started_at) when.push(el("br"), el("span", { class: "muted" }, t("{time} 开庭", { time: fmtTime(h.started_at) })));
    return el("tr", { dataset: { hearingId: h.id, state: h.state } },
      el("td", { class: "case" }, h.case_number),
      el("td", {}, h.title),
      el("td", {}, kindLabel(h.kind)),
      el("td", {}, room ? `${room.court} · ${room.name}` : t("未指定法庭")),
      el("td", {}, el("span", { class: `badge state-${h.state}` }, stateLabel(h.state))),
      el("td", {}, when),
      el("td", { class: "num present" }, `${count(present)} / ${count(participants)}`),
      el("td", { class: "num observers" }, String(count(observers))),
      el("td", { class: "actions" }, watch));
  });
  $("live-rows").replaceChildren(...rows);
  $("live-empty").hidden = rows.length > 0;
  $("live-table").hidden = rows.length === 0;
  if (refocus) {
    const button = document.querySelector(`tr[data-hearing-id="${refocus}"] button`);
    if (button) button.focus();
  }
}

function renderName() {
  const name = observerName();
  $("observer-name").textContent = name || t("（未设置）");
  // An account watches under its own name.
  $("observer-rename").hidden = !!session.account;
}

function askName(hearing) {
  S.pending = hearing;
  const form = $("observer-form");
  form.hidden = false;
  $("observer-input").value = observerName();
  $("observer-input").focus();
}

// Open the observer's join link in a new tab. The tab is opened first, while the click still
// counts as the user's, and sent to the link once the server has issued it.
async function startWatching(h) {
  const name = observerName();
  if (!name) {
    askName(h);
    return;
  }
  const watching = stored(WATCH_KEY, {});
  const tab = window.open("", "_blank");
  if (tab) tab.opener = null;
  let url = watching[h.id];
  if (!url) {
    try {
      const got = await api(`/hearings/${h.id}/watch`, {
        method: "POST", body: session.account ? {} : { name },
      });
      // This browser reached the server here: open the link on this origin.
      url = new URL(`/join/${encodeURIComponent(got.token)}`, location.origin).href;
      watching[h.id] = url;
      store(WATCH_KEY, watching);
    } catch (e) {
      if (tab) tab.close();
      showStatus(errorText(e), "error");
      return;
    }
  }
  if (tab) {
    tab.location.href = url;
    showStatus(t("已在新标签页中以监督身份打开 {case}。", { case: h.case_number }));
  } else {
    const line = $("page-status");
    showStatus(t("浏览器阻止了新标签页，请点击此链接："), "error");
    line.append(" ", el("a", { href: url, target: "_blank", rel: "noopener" }, t("以监督身份进入")));
  }
  await poll();
}

function init() {
  $("observer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("observer-input").value.trim();
    if (!name) return;
    store(NAME_KEY, name);
    $("observer-form").hidden = true;
    renderName();
    const pending = S.pending;
    S.pending = null;
    if (pending) startWatching(pending);
  });
  $("observer-cancel").addEventListener("click", () => {
    $("observer-form").hidden = true;
    S.pending = null;
  });
  $("observer-rename").addEventListener("click", () => askName(null));
  window.addEventListener("langchange", () => {
    renderName();
    render(true);
  });
}

startStaffPage({ init, reload });

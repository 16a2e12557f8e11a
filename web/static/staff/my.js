// "My hearings": the signed-in judge's or clerk's own hearings, upcoming and of the last two
// weeks, on the court's clock; "进入法庭" takes the account's own seat in a new tab (no link
// to keep or forward), "回放与笔录" opens the review.
import { t } from "/static/i18n.js";
import { FINISHED_STATES, TIME_ZONE_LABEL, kindLabel, roleLabel, stateLabel } from "/static/labels.js";
import {
  $, api, el, errorText, fmtTime, fmtWindow, listAll, session, showStatus, startStaffPage, roomsWithCourts,
} from "/static/staff/common.js";

const REFRESH_MS = 30_000;
const BENCH = new Set(["judge", "clerk"]);

const S = { items: [], rooms: new Map(), timer: null };

async function loadRooms() {
  S.rooms = await roomsWithCourts();
}

async function poll() {
  try {
    S.items = await listAll("/my/hearings");
    render();
  } catch (e) {
    if (e.status !== 401) showStatus(errorText(e), "error");
  }
}

async function reload() {
  clearInterval(S.timer);
  const roles = (session.account && session.account.roles) || [];
  const bench = roles.some((r) => BENCH.has(r));
  $("my-not-bench").hidden = bench;
  $("my-upcoming-section").hidden = !bench;
  $("my-recent-section").hidden = !bench;
  $("my-zone").textContent = t(TIME_ZONE_LABEL);
  if (!bench) return;
  await loadRooms();
  await poll();
  S.timer = setInterval(poll, REFRESH_MS);
}

function row(h) {
  const room = S.rooms.get(h.courtroom_id);
  const finished = FINISHED_STATES.has(h.state);
  const actions = [];
  if (!finished) {
    const enter = el("button", { type: "button", class: "small primary", "data-action": "enter" }, t("进入法庭"));
    enter.addEventListener("click", () => enterRoom(h, enter));
    actions.push(enter);
  }
  if (h.state !== "cancelled") {
    actions.push(el("a", { class: "button small", href: `/review/${h.id}`, "data-action": "review" }, t("回放与笔录")));
  }
  const when = [fmtWindow(h.scheduled_start, h.scheduled_end)];
  if (h.started_at) when.push(el("br"), el("span", { class: "muted" }, t("{time} 开庭", { time: fmtTime(h.started_at) })));
  return el("tr", { dataset: { hearingId: h.id, state: h.state } },
    el("td", { class: "case" }, h.case_number),
    el("td", {}, h.title),
    el("td", {}, kindLabel(h.kind)),
    el("td", {}, room ? `${room.court} · ${room.name}` : t("未指定法庭")),
    el("td", { class: "as" }, h.roles.map(roleLabel).join(t("、"))),
    el("td", {}, el("span", { class: `badge state-${h.state}` }, stateLabel(h.state))),
    el("td", {}, when),
    el("td", { class: "actions" }, actions));
}

function render() {
  const upcoming = S.items.filter((h) => !FINISHED_STATES.has(h.state));
  // The most recent first.
  const recent = S.items.filter((h) => FINISHED_STATES.has(h.state)).reverse();
  for (const [name, list] of [["upcoming", upcoming], ["recent", recent]]) {
    $(`my-${name}`).replaceChildren(...list.map(row));
    $(`my-${name}-empty`).hidden = list.length > 0;
    $(`my-${name}-table`).hidden = list.length === 0;
  }
}

// The join for the account's own seat, opened in a new tab: opened first, while the click still
// counts as the user's, and sent to the join once the server has issued it.
async function enterRoom(h, button) {
  const tab = window.open("", "_blank");
  if (tab) tab.opener = null;
  button.disabled = true;
  let url;
  try {
    const got = await api(`/hearings/${h.id}/enter`, { method: "POST" });
    // This browser reached the server here: open the join on this origin.
    url = new URL(`/join/${encodeURIComponent(got.token)}`, location.origin).href;
  } catch (e) {
    if (tab) tab.close();
    showStatus(errorText(e), "error");
    return;
  } finally {
    button.disabled = false;
  }
  if (tab) {
    tab.location.href = url;
    showStatus(t("已在新标签页中进入 {case} 的法庭。", { case: h.case_number }));
  } else {
    const line = $("page-status");
    showStatus(t("浏览器阻止了新标签页，请点击此链接："), "error");
    line.append(" ", el("a", { href: url, target: "_blank", rel: "noopener" }, t("进入法庭")));
  }
}

function init() {
  window.addEventListener("langchange", () => {
    $("my-zone").textContent = t(TIME_ZONE_LABEL);
    render();
  });
}

startStaffPage({ init, reload });

// Closed hearings in a date range, searched by case number or title, each opening its review.
import { courtDay } from "/static/court-time.js";
import { t } from "/static/i18n.js";
import { kindLabel } from "/static/labels.js";
import {
  $, el, errorText, fmtDateTime, fromLocalInput, listAll, showStatus, startStaffPage, toDateInput, roomsWithCourts,
} from "/static/staff/common.js";

const DEFAULT_DAYS = 30;
const S = { hearings: [], rooms: new Map() };

function initialRange() {
  const params = new URLSearchParams(location.search);
  const today = new Date();
  const from = courtDay(today, -DEFAULT_DAYS);
  $("range-from").value = params.get("from") || toDateInput(from);
  $("range-to").value = params.get("to") || toDateInput(today);
  $("review-query").value = params.get("q") || "";
}

async function search() {
  const from = fromLocalInput($("range-from").value);
  const toDay = fromLocalInput($("range-to").value);
  if (!from || !toDay || toDay < from) {
    showStatus(t("请选择有效的日期范围。"), "error");
    return;
  }
  const to = courtDay(toDay, 1);
  const params = new URLSearchParams({ from: $("range-from").value, to: $("range-to").value });
  if ($("review-query").value.trim()) params.set("q", $("review-query").value.trim());
  history.replaceState(null, "", `${location.pathname}?${params}`);
  S.hearings = await listAll("/hearings", {
    state: "closed", from: from.toISOString(), to: to.toISOString(),
  });
  render();
}

function render() {
  const q = $("review-query").value.trim().toLowerCase();
  const shown = S.hearings
    .filter((h) => !q || h.case_number.toLowerCase().includes(q) || h.title.toLowerCase().includes(q))
    .sort((a, b) => new Date(b.scheduled_start) - new Date(a.scheduled_start));
  $("review-rows").replaceChildren(...shown.map((h) => {
    const room = S.rooms.get(h.courtroom_id);
    return el("tr", { dataset: { hearingId: h.id } },
      el("td", { class: "case" }, h.case_number),
      el("td", {}, h.title),
      el("td", {}, kindLabel(h.kind)),
      el("td", {}, room ? `${room.court} · ${room.name}` : t("未指定法庭")),
      el("td", {}, fmtDateTime(h.scheduled_start)),
      el("td", {}, h.closed_at ? fmtDateTime(h.closed_at) : ""),
      el("td", { class: "actions" }, el("a", { class: "button small", href: `/review/${h.id}` }, t("回看"))));
  }));
  $("review-empty").hidden = shown.length > 0;
  $("review-table").hidden = shown.length === 0;
}

async function reload() {
  S.rooms = await roomsWithCourts();
  await search();
}

function init() {
  initialRange();
  $("review-search").addEventListener("submit", (event) => {
    event.preventDefault();
    search().catch((e) => showStatus(errorText(e), "error"));
  });
  $("review-query").addEventListener("input", render);
  window.addEventListener("langchange", render);
}

startStaffPage({ init, reload });

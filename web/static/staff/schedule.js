// The clerk's week: hearings per courtroom or per prison terminal on a Mon–Sun, 8:00–20:00
// grid; details, links and rescheduling of a hearing; a new hearing with its participants.
// Schedule conflicts are checked with the server while the clerk types, before anything is saved.
import { atHour, courtDay, courtParts } from "/static/court-time.js";
import { t } from "/static/i18n.js";
import {
  TIME_ZONE, TIME_ZONE_LABEL, COURTROOM_ROLES, ID_DIGITS_ROLES, INTERPRETED_ROLES, EDITABLE_STATES, FINISHED_STATES, KIND_ZH, LOCATION_ZH, ROLE_ZH, kindLabel,
  locationLabel, roleLabel, stateLabel,
} from "/static/labels.js";
import {
  $, ApiError, api, confirmDialog, debounce, el, errorText, fmt, fmtTime, fmtWindow,
  fromLocalInput, linkTools, listAll, locale, session, showStatus, startStaffPage, toDateInput,
  toLocalInput, tx, txAttr,
} from "/static/staff/common.js";
import { DAY_FROM_H, DAY_TO_H, arrange, mondayOf, placement, shortCase } from "/static/staff/week.js";

const CHECK_DEBOUNCE_MS = 350;
const REFRESH_MS = 60_000;
const DEFAULT_LENGTH_MS = 2 * 3600 * 1000;
const LINKS_KEY = "tingshen.staff.links";
const UNASSIGNED = "none";
const LANGUAGES = [
  ["", "默认语言"], ["zh", "中文"], ["en", "英语"], ["bo", "藏语"], ["mn", "蒙古语"],
  ["ko", "朝鲜语"], ["ja", "日语"], ["ru", "俄语"],
];

const S = {
  weekStart: mondayOf(new Date()),
  view: "rooms",
  filter: "",
  courts: [],
  rooms: [],
  terminals: [],
  bench: [], // the judges' and clerks' accounts a hearing may be given
  hearings: [],
  panel: null, // {kind: "new"} | {kind: "details", id, hearing}
  draft: null, // the window being edited: {hearingId?, start, end, courtroomId, terminalIds}
  conflicts: [],
  checking: false,
  checkError: null,
  checkSeq: 0,
  loadSeq: 0, // a week's load answers only if nothing newer started (or was saved) since
  checkedKey: null, // the inputs of the last conflict check
  refreshTimer: null,
};

// -- dates ------------------------------------------------------------------------------------

const dayOf = (i) => courtDay(S.weekStart, i);
const weekEnd = () => dayOf(7);

function knownLinks() {
  try { return JSON.parse(sessionStorage.getItem(LINKS_KEY) || "{}"); } catch { return {}; }
}

function rememberLink(participantId, url) {
  const links = knownLinks();
  links[participantId] = url;
  try { sessionStorage.setItem(LINKS_KEY, JSON.stringify(links)); } catch { /* this view only */ }
}

// -- loading ----------------------------------------------------------------------------------

async function loadResources() {
  const [courts, rooms, terminals] = await Promise.all([
    listAll("/courts"), listAll("/courtrooms"), listAll("/prison-terminals"),
  ]);
  const courtName = new Map(courts.map((c) => [c.id, c.name]));
  S.courts = courts.sort((a, b) => a.name.localeCompare(b.name, "zh-CN"));
  S.rooms = rooms
    .map((r) => ({ ...r, court: courtName.get(r.court_id) || "" }))
    .sort((a, b) => a.court.localeCompare(b.court, "zh-CN") || a.created_at.localeCompare(b.created_at));
  S.terminals = terminals.sort((a, b) => a.prison.localeCompare(b.prison, "zh-CN")
    || a.created_at.localeCompare(b.created_at));
  // A court without accounts (or a credential that may not list them) types names instead.
  S.bench = await api("/accounts").then((r) => r.items).catch(() => []);
}

// The accounts a judge's or clerk's row may name: those with its role, of the chosen courtroom's
// court (or of no court).
function benchFor(role, courtroomId) {
  const room = S.rooms.find((r) => r.id === courtroomId);
  return S.bench.filter((a) => a.roles.includes(role)
    && (!room || !a.court_id || a.court_id === room.court_id));
}

async function loadWeek() {
  const query = { from: S.weekStart.toISOString(), to: weekEnd().toISOString() };
  const seq = ++S.loadSeq;
  const hearings = await listAll("/hearings", query);
  if (seq === S.loadSeq) S.hearings = hearings;
}

async function reload() {
  // A form opened before the courtrooms, terminals and people are known would offer none.
  $("new-hearing").disabled = true;
  await loadResources();
  $("new-hearing").disabled = false;
  renderFilter();
  await refresh();
  clearInterval(S.refreshTimer);
  S.refreshTimer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
}

async function refresh() {
  await loadWeek();
  renderCalendar();
}

// -- the calendar -----------------------------------------------------------------------------

function lanes() {
  if (S.view === "terminals") {
    return S.terminals
      .filter((term) => !S.filter || term.prison === S.filter)
      .map((term) => ({ id: term.id, label: term.name, sub: term.prison }));
  }
  const rooms = S.rooms.filter((r) => !S.filter || r.court_id === S.filter);
  const list = rooms.map((r) => ({ id: r.id, label: r.name, sub: r.court }));
  const unassigned = S.hearings.some((h) => !h.courtroom_id)
    || (S.draft && !S.draft.courtroomId) || !list.length;
  if (unassigned && !S.filter) list.push({ id: UNASSIGNED, label: t("未指定法庭"), sub: "" });
  return list;
}

function lanesOf(h) {
  if (S.view === "terminals") return h.terminal_ids;
  return [h.courtroom_id || UNASSIGNED];
}

function draftLanes() {
  if (!S.draft) return [];
  if (S.view === "terminals") return S.draft.terminalIds;
  return [S.draft.courtroomId || UNASSIGNED];
}

function hearingBlock(h, place, laneId, dayKey) {
  const conflictIds = new Set(S.conflicts.map((c) => c.hearing_id));
  const editing = S.draft && S.draft.hearingId === h.id;
  const selected = S.panel && S.panel.kind === "details" && S.panel.id === h.id;
  const classes = ["hb", `state-${h.state}`, `kind-${h.kind}`];
  if (conflictIds.has(h.id)) classes.push("conflict");
  if (editing) classes.push("editing");
  if (selected) classes.push("selected");
  if (place.outside) classes.push("outside", `outside-${place.outside}`);
  if (place.clippedTop) classes.push("clipped-top");
  if (place.clippedBottom) classes.push("clipped-bottom");
  const when = `${fmtTime(h.scheduled_start)}–${fmtTime(h.scheduled_end)}`;
  const time = el("span", { class: "hb-time" }, fmtTime(h.scheduled_start),
    el("span", { class: "hb-end" }, `–${fmtTime(h.scheduled_end)}`));
  const block = el("button", {
    type: "button", class: classes.join(" "),
    dataset: { hearingId: h.id, day: dayKey, lane: laneId, state: h.state },
    title: `${when} ${h.case_number} ${h.title} · ${kindLabel(h.kind)} · ${stateLabel(h.state)}`,
  },
  time,
  el("span", { class: "hb-case" }, shortCase(h.case_number)),
  el("span", { class: "hb-title" }, h.title),
  el("span", { class: "hb-kind" }, `${kindLabel(h.kind)} · ${stateLabel(h.state)}`));
  block.addEventListener("click", (e) => {
    e.stopPropagation();
    openDetails(h.id);
  });
  return block;
}

function draftBlock(place, laneId, dayKey) {
  const d = S.draft;
  const conflict = S.conflicts.length > 0;
  const when = `${fmtTime(d.start)}–${fmtTime(d.end)}`;
  return el("div", {
    class: `hb draft${conflict ? " conflict" : ""}${place.outside ? " outside" : ""}`,
    dataset: { day: dayKey, lane: laneId, draft: "" }, "aria-hidden": "true",
  },
  el("span", { class: "hb-time" }, when),
  el("span", { class: "hb-case" }, d.caseNumber ? shortCase(d.caseNumber) : t("新庭审")),
  conflict ? el("span", { class: "hb-kind" }, t("时间冲突")) : null);
}

function position(node, place, col = 0, cols = 1) {
  node.style.top = `${place.top}%`;
  if (place.height) node.style.height = `${place.height}%`;
  node.style.left = `calc(${(col / cols) * 100}% + 1px)`;
  node.style.width = `calc(${100 / cols}% - 2px)`;
}

function renderCalendar() {
  const cal = $("calendar");
  const ls = lanes();
  const n = Math.max(ls.length, 1);
  const today = toDateInput(new Date());
  const now = courtParts(new Date());
  $("week-label").textContent = new Intl.DateTimeFormat(locale(), {
    year: "numeric", month: "long", day: "numeric", timeZone: TIME_ZONE,
  }).formatRange(S.weekStart, dayOf(6));
  $("zone-label").textContent = t(TIME_ZONE_LABEL);
  cal.replaceChildren();
  cal.style.gridTemplateColumns = `3.25rem repeat(${7 * n}, minmax(3.4rem, 1fr))`;
  cal.dataset.view = S.view;
  cal.append(el("div", { class: "corner" }), el("div", { class: "corner lane-corner" }));
  const hours = el("div", { class: "hours" });
  for (let h = DAY_FROM_H; h < DAY_TO_H; h++) {
    hours.append(el("div", { class: "hour" }, `${String(h).padStart(2, "0")}:00`));
  }
  hours.style.gridRow = "3";
  cal.append(hours);
  if (!ls.length) {
    cal.append(el("p", { class: "empty cal-empty" }, S.view === "terminals"
      ? t("尚未登记监所终端。") : t("尚未登记法庭。")));
  }
  for (let i = 0; i < 7; i++) {
    const day = dayOf(i);
    const key = toDateInput(day);
    const head = el("div", { class: `day-head${key === today ? " today" : ""}`, dataset: { day: key } },
      fmt(day, { weekday: "short" }), " ", el("strong", {}, fmt(day, { month: "numeric", day: "numeric" })));
    head.style.gridColumn = `${2 + i * n} / span ${n}`;
    head.style.gridRow = "1";
    cal.append(head);
    ls.forEach((lane, j) => {
      const col = 2 + i * n + j;
      const label = el("div", { class: `lane-head${j === 0 ? " first" : ""}`, title: lane.sub ? `${lane.sub} · ${lane.label}` : lane.label,
        dataset: { day: key, lane: lane.id } }, lane.label);
      label.style.gridColumn = String(col);
      label.style.gridRow = "2";
      const column = el("div", { class: `lane${j === 0 ? " first" : ""}${key === today ? " today" : ""}`,
        dataset: { day: key, lane: lane.id } });
      column.style.gridColumn = String(col);
      column.style.gridRow = "3";
      column.addEventListener("click", (e) => newAt(e, column, day, lane.id));
      const items = [];
      for (const h of S.hearings) {
        if (!lanesOf(h).includes(lane.id)) continue;
        const start = new Date(h.scheduled_start), end = new Date(h.scheduled_end);
        const place = placement(start, end, day);
        if (place) items.push({ h, place, start: +start, end: +end });
      }
      if (S.draft && draftLanes().includes(lane.id)) {
        const place = placement(S.draft.start, S.draft.end, day);
        if (place) items.push({ draft: true, place, start: +S.draft.start, end: +S.draft.end });
      }
      for (const item of arrange(items)) {
        const node = item.draft ? draftBlock(item.place, lane.id, key)
          : hearingBlock(item.h, item.place, lane.id, key);
        position(node, item.place, item.col, item.cols);
        column.append(node);
      }
      if (key === today && now.hour >= DAY_FROM_H && now.hour < DAY_TO_H) {
        const line = el("div", { class: "now-line", "aria-hidden": "true" });
        line.style.top = `${((now.hour - DAY_FROM_H) * 60 + now.minute) / ((DAY_TO_H - DAY_FROM_H) * 60) * 100}%`;
        column.append(line);
      }
      cal.append(label, column);
    });
  }
}

function renderFilter() {
  const select = $("resource-filter");
  const options = S.view === "terminals"
    ? [["", t("全部监所")], ...[...new Set(S.terminals.map((x) => x.prison))].map((p) => [p, p])]
    : [["", t("全部法院")], ...S.courts.map((c) => [c.id, c.name])];
  if (!options.some(([v]) => v === S.filter)) S.filter = "";
  select.replaceChildren(...options.map(([v, label]) => el("option", { value: v }, label)));
  select.value = S.filter;
}

function setView(view) {
  S.view = view;
  S.filter = "";
  for (const b of document.querySelectorAll(".segmented [data-view]")) {
    b.setAttribute("aria-pressed", String(b.dataset.view === view));
  }
  renderFilter();
  renderCalendar();
}

async function goWeek(start) {
  S.weekStart = mondayOf(start);
  renderCalendar();
  await refresh();
}

// A click on an empty slot: a new hearing there (courtroom view), on the half hour.
function newAt(event, column, day, laneId) {
  if (S.panel && S.panel.kind === "new" && S.view !== "rooms") return;
  const box = column.getBoundingClientRect();
  const fraction = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 1);
  const minutes = Math.floor((fraction * (DAY_TO_H - DAY_FROM_H) * 60) / 30) * 30;
  const start = atHour(day, DAY_FROM_H, minutes);
  const room = S.view === "rooms" && laneId !== UNASSIGNED ? laneId : "";
  const terminal = S.view === "terminals" ? laneId : null;
  if (S.panel && S.panel.kind === "new") {
    const form = $("hearing-form");
    const length = windowOfForm().end - windowOfForm().start;
    form.elements.start.value = toLocalInput(start);
    form.elements.end.value = toLocalInput(new Date(+start + (length > 0 ? length : DEFAULT_LENGTH_MS)));
    if (S.view === "rooms") form.elements.courtroom.value = room;
    formChanged();
    return;
  }
  openNew({ start, room, terminal });
}

// -- the side panel ---------------------------------------------------------------------------

function closePanel() {
  S.panel = null;
  S.draft = null;
  S.conflicts = [];
  $("panel").hidden = true;
  $("panel").replaceChildren();
  renderCalendar();
}

function panelHead(title) {
  const close = el("button", { type: "button", class: "quiet close", ...txAttr("aria-label", "关闭") }, "×");
  close.addEventListener("click", closePanel);
  return el("div", { class: "panel-head" }, el("h2", {}, title), close);
}

function roomOptions(selected) {
  const select = el("select", { name: "courtroom" }, tx("不指定法庭", "option", { value: "" }));
  for (const court of S.courts) {
    const group = el("optgroup", { label: court.name });
    for (const r of S.rooms.filter((x) => x.court_id === court.id)) {
      group.append(el("option", { value: r.id }, r.name));
    }
    if (group.children.length) select.append(group);
  }
  select.value = selected || "";
  return select;
}

function terminalOptions(selected) {
  const select = el("select", { name: "terminal", ...txAttr("aria-label", "监所终端") },
    tx("选择监所终端", "option", { value: "" }));
  for (const term of S.terminals) {
    select.append(el("option", { value: term.id }, `${term.prison} · ${term.name}`));
  }
  select.value = selected || "";
  return select;
}

function optionsOf(map, name, selected) {
  const select = el("select", { name, ...txAttr("aria-label", name === "role" ? "身份" : "地点") });
  for (const [value, zh] of Object.entries(map)) select.append(tx(zh, "option", { value }));
  select.value = selected;
  return select;
}

function field(zh, control, wide = false) {
  return el("label", { class: `field${wide ? " wide" : ""}` }, tx(zh, "span", { class: "label" }), control);
}

// The last 4 characters of a resident ID number: digits, the last may be X.
const ID_DIGITS = /^[0-9]{3}[0-9Xx]$/;

let rowKeys = 0;

// Whom an interpreter's row may name: the parties and witnesses `parties()` lists ({ key, name,
// role }), kept selected while the list changes.
function interpretedOptions(parties) {
  const select = el("select", { name: "interprets_for", ...txAttr("aria-label", "为谁翻译") });
  const refresh = () => {
    const chosen = select.value;
    select.replaceChildren(tx("为谁翻译（可选）", "option", { value: "" }),
      ...parties().filter((p) => INTERPRETED_ROLES.has(p.role) && p.name).map((p) =>
        el("option", { value: p.key }, `${p.name}（${roleLabel(p.role)}）`)));
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
  };
  select.addEventListener("focus", refresh);
  select.addEventListener("pointerdown", refresh);
  return { select, refresh };
}

// A participant row of the form: name, role, location, terminal for the prison, for a party
// the last digits of their ID number when the court has them (asked for at each join; sent
// once, never shown again), and for an interpreter whom they interpret for (`parties`: who may
// be named, see `interpretedOptions`).
function personRow(person = {}, parties = () => []) {
  const role = optionsOf(ROLE_ZH, "role", person.role || "party");
  const location = optionsOf(LOCATION_ZH, "location", person.location || "remote");
  const terminal = terminalOptions(person.terminal_id);
  const name = el("input", { name: "name", maxlength: "200", value: person.name || "", ...txAttr("aria-label", "姓名"), ...txAttr("placeholder", "姓名") });
  const digits = el("input", { name: "id_number_last4", maxlength: "4", autocomplete: "off", spellcheck: "false", pattern: "[0-9]{3}[0-9Xx]", ...txAttr("aria-label", "身份证号码后四位（可选，加入时核对）"), ...txAttr("placeholder", "身份证后四位（可选）") });
  const interprets = interpretedOptions(parties);
  // A judge or clerk is picked from the court's accounts (named by the account), or typed.
  const account = el("select", { name: "account", ...txAttr("aria-label", "账号") });
  let picked = person.account_id || "";
  const accounts = () => {
    const chosen = picked;
    const form = $("hearing-form");
    const room = form && form.elements.courtroom ? form.elements.courtroom.value : null;
    const listed = ["judge", "clerk"].includes(role.value) ? benchFor(role.value, room) : [];
    account.replaceChildren(tx("按姓名填写", "option", { value: "" }),
      ...listed.map((a) => el("option", { value: a.id }, a.name)));
    account.value = listed.some((a) => a.id === chosen) ? chosen : "";
    account.hidden = account.disabled = !listed.length;
    name.hidden = name.disabled = !!account.value;
    if (account.value) name.value = listed.find((a) => a.id === account.value).name;
  };
  account.addEventListener("focus", accounts);
  account.addEventListener("change", () => {
    picked = account.value;
    if (!picked) name.value = "";
    accounts();
  });
  const remove = el("button", { type: "button", class: "quiet small", "data-action": "remove" }, tx("移除"));
  const row = el("div", { class: "person-row", dataset: { key: `row-${++rowKeys}` } },
    account, name, role, location, remove, digits, terminal, interprets.select);
  row.refreshAccounts = accounts;
  const sync = () => {
    terminal.hidden = terminal.disabled = location.value !== "prison";
    if (terminal.disabled) terminal.value = "";
    digits.hidden = digits.disabled = !ID_DIGITS_ROLES.has(role.value);
    if (digits.disabled) digits.value = "";
    interprets.select.hidden = interprets.select.disabled = role.value !== "interpreter";
    if (interprets.select.disabled) interprets.select.value = "";
    else interprets.refresh();
    accounts();
  };
  role.addEventListener("change", () => {
    if (COURTROOM_ROLES.has(role.value)) location.value = "courtroom";
    else if (role.value === "defendant" && S.terminals.length && location.value === "courtroom") location.value = "prison";
    sync();
  });
  location.addEventListener("change", sync);
  remove.addEventListener("click", () => {
    row.remove();
    formChanged();
  });
  sync();
  return row;
}

function peopleOfForm(container) {
  return [...container.querySelectorAll(".person-row")].map((row) => ({
    row,
    name: row.querySelector("[name=name]").value.trim(),
    role: row.querySelector("[name=role]").value,
    location: row.querySelector("[name=location]").value,
    terminal_id: row.querySelector("[name=terminal]").value || null,
    account_id: row.querySelector("[name=account]").value || null,
    id_number_last4: row.querySelector("[name=id_number_last4]").value.trim() || null,
    key: row.dataset.key,
    interprets_for: row.querySelector("[name=interprets_for]").value || null,
  }));
}

// The participant fields of a row as the API takes them (`interpretsForId`: the participant
// the row's interpreter interprets for, once they exist).
function personBody(p, interpretsForId = null) {
  // A judge or clerk given by account is named by it.
  const body = p.account_id ? { account_id: p.account_id, role: p.role, location: p.location }
    : { name: p.name, role: p.role, location: p.location };
  if (p.location === "prison" && p.terminal_id) body.terminal_id = p.terminal_id;
  if (p.id_number_last4) body.id_number_last4 = p.id_number_last4;
  if (p.role === "interpreter" && interpretsForId) body.interprets_for_id = interpretsForId;
  return body;
}

// The other rows of a new hearing's form, as an interpreter's row may name them.
const formParties = () => peopleOfForm($("form-people"))
  .map((p) => ({ key: p.key, name: p.name, role: p.role }));

// The first row whose ID number digits are not 4 characters (digits, the last may be X),
// marked and focused; null when all are well.
function badIdDigits(people) {
  let bad = null;
  for (const p of people) {
    const input = p.row.querySelector("[name=id_number_last4]");
    const wrong = !!p.id_number_last4 && !ID_DIGITS.test(p.id_number_last4);
    if (wrong) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    if (wrong && !bad) bad = p;
  }
  if (bad) bad.row.querySelector("[name=id_number_last4]").focus();
  return bad;
}

function windowOfForm() {
  const f = $("hearing-form").elements;
  return { start: fromLocalInput(f.start.value), end: fromLocalInput(f.end.value) };
}

// -- conflicts --------------------------------------------------------------------------------

// The body of POST /hearings/conflicts for the form (a new hearing or a reschedule). A new
// hearing's judges and prison terminals are not in the registry yet: the server checks them as
// adding them would (names matched its way), so this page never decides a conflict itself.
function conflictBody() {
  const f = $("hearing-form").elements;
  const { start, end } = windowOfForm();
  const editing = S.panel.kind === "details" ? S.panel.hearing : null;
  const body = {
    case_number: (editing ? editing.case_number : f.case_number.value.trim()) || "-",
    title: (editing ? editing.title : f.title.value.trim()) || "-",
    kind: editing ? editing.kind : f.kind.value,
    courtroom_id: f.courtroom.value || null,
    scheduled_start: start.toISOString(),
    scheduled_end: end.toISOString(),
  };
  if (editing) {
    body.hearing_id = editing.id;
  } else {
    const { judges, terminals, judgeAccount } = newPeople();
    body.judges = judges;
    body.terminal_ids = terminals;
    if (judgeAccount) body.judge_account_id = judgeAccount;
  }
  return body;
}

// The judges of a new hearing's form (typed, and the first given by account: the hearing's
// judge, found by the account whatever name it has elsewhere), its clerk's account and its
// prison terminals.
function newPeople() {
  const people = S.panel.kind === "new" ? peopleOfForm($("form-people")) : [];
  const accountOf = (role) => (people.find((p) => p.role === role && p.account_id) || {}).account_id || null;
  return {
    judges: people.filter((p) => p.role === "judge" && p.name && !p.account_id).map((p) => p.name),
    judgeAccount: accountOf("judge"),
    clerkAccount: accountOf("clerk"),
    terminals: people.filter((p) => p.location === "prison" && p.terminal_id).map((p) => p.terminal_id),
  };
}

function currentDraft() {
  const f = $("hearing-form");
  if (!f) return null;
  const { start, end } = windowOfForm();
  if (!start || !end || end <= start) return null;
  const editing = S.panel.kind === "details" ? S.panel.hearing : null;
  const people = editing ? editing.participants : peopleOfForm($("form-people"));
  return {
    hearingId: editing ? editing.id : null,
    caseNumber: editing ? editing.case_number : f.elements.case_number.value.trim(),
    start, end,
    courtroomId: f.elements.courtroom.value || null,
    terminalIds: people.map((p) => p.terminal_id).filter(Boolean),
  };
}

const checkConflicts = debounce(async () => {
  const seq = ++S.checkSeq;
  const draft = currentDraft();
  if (!draft) {
    S.checking = false;
    renderConflicts();
    return;
  }
  try {
    const reply = await api("/hearings/conflicts", { method: "POST", body: conflictBody() });
    if (seq !== S.checkSeq) return;
    S.conflicts = reply.conflicts || [];
    S.checkError = null;
  } catch (e) {
    if (seq !== S.checkSeq) return;
    S.conflicts = [];
    S.checkError = e;
  }
  S.checking = false;
  renderConflicts();
  renderCalendar();
}, CHECK_DEBOUNCE_MS);

// What a conflict depends on: the window, the courtroom, and a new hearing's judges and prison
// terminals. Typing a title (or leaving a field, which fires `change`) checks nothing again.
function checkKey(draft) {
  if (!draft) return "";
  const { judges, judgeAccount } = newPeople();
  return JSON.stringify([+draft.start, +draft.end, draft.courtroomId,
    [...draft.terminalIds].sort(), judges.sort(), judgeAccount]);
}

function formChanged() {
  const draft = currentDraft();
  const moved = draft && (!S.draft || +draft.start !== +S.draft.start);
  S.draft = draft;
  const key = checkKey(draft);
  if (!draft) {
    S.conflicts = [];
    S.checking = false;
    S.checkSeq++;
  } else if (key !== S.checkedKey) {
    S.checking = true;
    checkConflicts();
  }
  S.checkedKey = key;
  renderConflicts();
  if (moved && (draft.start < S.weekStart || draft.start >= weekEnd())) {
    goWeek(draft.start).catch((e) => showStatus(errorText(e), "error"));
  } else {
    renderCalendar();
  }
}

const RESOURCE_ZH = { courtroom: "法庭", judge: ROLE_ZH.judge, prison_terminal: "监所终端" };

function conflictText(c) {
  let what = "";
  if (c.resource === "courtroom") {
    const room = S.rooms.find((r) => r.id === c.courtroom_id);
    what = room ? room.name : t("该法庭");
  } else if (c.resource === "judge") {
    what = c.judge || "";
  } else if (c.resource === "prison_terminal") {
    const term = S.terminals.find((x) => x.id === c.terminal_id);
    what = term ? `${term.prison} · ${term.name}` : t("该监所终端");
  }
  return t("{resource}（{what}）已被 {case}「{title}」占用：{when}", {
    resource: t(RESOURCE_ZH[c.resource] || c.resource), what, case: c.case_number, title: c.title,
    when: fmtWindow(c.scheduled_start, c.scheduled_end),
  });
}

// Terminal selects of the form that name a terminal another row names too.
function sharedTerminals(form) {
  const selects = [...form.querySelectorAll(".person-row select[name=terminal]")].filter((x) => x.value);
  return selects.filter((x) => selects.some((y) => y !== x && y.value === x.value));
}

function renderConflicts() {
  const box = $("form-conflicts");
  if (!box) return;
  const form = $("hearing-form");
  const save = $("form-save");
  box.replaceChildren();
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const { start, end } = windowOfForm();
  let blocked = false;
  if (S.panel.kind === "details" && !formDiffers()) {
    blocked = true;
  } else if (!start || !end) {
    box.append(el("p", { class: "form-error" }, t("请填写开始和结束时间。")));
    blocked = true;
  } else if (end <= start) {
    box.append(el("p", { class: "form-error" }, t("结束时间必须晚于开始时间。")));
    form.elements.end.setAttribute("aria-invalid", "true");
    blocked = true;
  } else if (sharedTerminals(form).length) {
    box.append(el("p", { class: "form-error" }, t("同一监所终端不能分配给两位参与人。")));
    for (const sel of sharedTerminals(form)) sel.setAttribute("aria-invalid", "true");
    blocked = true;
  } else if (S.checking) {
    box.append(el("p", { class: "muted" }, t("正在检查时间冲突……")));
    blocked = true;
  } else if (S.conflicts.length) {
    box.dataset.state = "conflict";
    box.append(el("p", { class: "form-error" }, t("存在时间冲突，无法保存：")),
      el("ul", {}, S.conflicts.map((c) => el("li", { dataset: { resource: c.resource, hearingId: c.hearing_id } }, conflictText(c)))));
    form.elements.start.setAttribute("aria-invalid", "true");
    form.elements.end.setAttribute("aria-invalid", "true");
    for (const c of S.conflicts) {
      if (c.resource === "courtroom") form.elements.courtroom.setAttribute("aria-invalid", "true");
      if (c.resource === "prison_terminal") {
        for (const sel of form.querySelectorAll("select[name=terminal]")) {
          if (sel.value === c.terminal_id) sel.setAttribute("aria-invalid", "true");
        }
      }
      if (c.resource === "judge") {
        // Which spelling matched is the server's to say; every judge named here is suspect.
        for (const row of form.querySelectorAll(".person-row")) {
          const input = row.querySelector("input[name=name]");
          if (row.querySelector("[name=role]").value === "judge" && input.value.trim()) {
            input.setAttribute("aria-invalid", "true");
            row.querySelector("[name=account]").setAttribute("aria-invalid", "true");
          }
        }
      }
    }
    blocked = true;
  } else if (S.checkError) {
    box.append(el("p", { class: "form-warn" }, t("无法检查时间冲突：{error}", { error: errorText(S.checkError) })));
  } else {
    box.append(el("p", { class: "form-ok" }, t("该时段没有冲突。")));
  }
  box.dataset.state = S.conflicts.length ? "conflict" : blocked ? "blocked" : "ok";
  if (save) {
    save.disabled = blocked || (S.panel.kind === "details" && !formDiffers());
  }
}

// -- a new hearing ----------------------------------------------------------------------------

function defaultStart() {
  const now = new Date();
  if (now >= S.weekStart && now < weekEnd()) {
    const hour = courtParts(now).hour + 1;
    if (hour >= DAY_FROM_H && hour < DAY_TO_H - 1) return atHour(now, hour);
    return atHour(courtDay(now, 1), 9);
  }
  return atHour(S.weekStart, 9);
}

function openNew({ start = defaultStart(), room = "", terminal = null } = {}) {
  S.panel = { kind: "new" };
  S.checkedKey = null;
  showStatus("");
  S.conflicts = [];
  S.checkError = null;
  const end = new Date(+start + DEFAULT_LENGTH_MS);
  const kind = el("select", { name: "kind" });
  for (const [value, zh] of Object.entries(KIND_ZH)) kind.append(tx(zh, "option", { value }));
  const language = el("select", { name: "language" });
  for (const [value, zh] of LANGUAGES) language.append(tx(zh, "option", { value }));
  const people = el("div", { id: "form-people", class: "people" },
    personRow({ role: "judge", location: "courtroom" }, formParties),
    personRow({ role: "clerk", location: "courtroom",
      account_id: session.account ? session.account.id : null }, formParties),
    terminal ? personRow({ role: "defendant", location: "prison", terminal_id: terminal }, formParties) : null);
  const add = el("button", { type: "button", class: "small", "data-action": "add-person" }, tx("添加参与人"));
  add.addEventListener("click", () => {
    people.append(personRow({}, formParties));
    people.lastElementChild.querySelector("input").focus();
  });
  const cancel = el("button", { type: "button" }, tx("取消"));
  cancel.addEventListener("click", closePanel);
  const form = el("form", { id: "hearing-form", class: "hearing-form", novalidate: true },
    el("div", { class: "fields" },
      field("案号", el("input", { name: "case_number", required: true, maxlength: "100", autocomplete: "off" })),
      field("名称", el("input", { name: "title", required: true, maxlength: "300", autocomplete: "off" })),
      field("类型", kind),
      field("法庭", roomOptions(room)),
      field("开始", el("input", { type: "datetime-local", name: "start", required: true, value: toLocalInput(start) })),
      field("结束", el("input", { type: "datetime-local", name: "end", required: true, value: toLocalInput(end) })),
      field("语言", language),
      el("label", { class: "field check" }, el("input", { type: "checkbox", name: "auto_admit" }), tx("参与人自动准入（无需法官逐一准许）"))),
    el("fieldset", { class: "people-set" },
      el("legend", {}, tx("参与人")),
      el("div", { class: "people-head", "aria-hidden": "true" }, tx("姓名"), tx("身份"), tx("地点"), el("span")),
      people, add),
    el("div", { id: "form-conflicts", class: "conflicts", role: "status", "aria-live": "polite" }),
    el("p", { id: "form-error", class: "form-error", role: "alert" }),
    el("div", { class: "form-buttons" }, cancel,
      el("button", { type: "submit", id: "form-save", class: "primary" }, tx("保存"))));
  trackDuration(form);
  form.addEventListener("input", formChanged);
  form.addEventListener("change", formChanged);
  form.elements.courtroom.addEventListener("change", () => {
    for (const row of people.querySelectorAll(".person-row")) row.refreshAccounts();
  });
  form.addEventListener("submit", saveNew);
  const panel = $("panel");
  panel.replaceChildren(panelHead(tx("新建庭审")), form);
  panel.hidden = false;
  form.elements.case_number.focus();
  formChanged();
}

// Moving the start keeps the hearing's length.
function trackDuration(form) {
  let length = fromLocalInput(form.elements.end.value) - fromLocalInput(form.elements.start.value);
  form.elements.start.addEventListener("change", () => {
    const start = fromLocalInput(form.elements.start.value);
    if (start && length > 0) form.elements.end.value = toLocalInput(new Date(+start + length));
  });
  form.elements.end.addEventListener("change", () => {
    const { start, end } = windowOfForm();
    if (start && end) length = end - start;
  });
}

async function saveNew(event) {
  event.preventDefault();
  const form = event.target;
  const f = form.elements;
  const error = $("form-error");
  error.textContent = "";
  const missing = [["case_number", "请填写案号。"], ["title", "请填写名称。"]]
    .find(([name]) => !f[name].value.trim());
  if (missing) {
    error.textContent = t(missing[1]);
    f[missing[0]].setAttribute("aria-invalid", "true");
    f[missing[0]].focus();
    return;
  }
  const people = peopleOfForm($("form-people")).filter((p) => p.name);
  if (badIdDigits(people)) {
    error.textContent = t("身份证后四位应为 4 位：数字，末位可以是 X。");
    return;
  }
  const { start, end } = windowOfForm();
  if (S.conflicts.length || S.checking || !start || !end || end <= start) return;
  const body = {
    case_number: f.case_number.value.trim(), title: f.title.value.trim(), kind: f.kind.value,
    courtroom_id: f.courtroom.value || null, scheduled_start: start.toISOString(),
    scheduled_end: end.toISOString(), auto_admit: f.auto_admit.checked,
  };
  if (f.language.value) body.language = f.language.value;
  const { judgeAccount, clerkAccount } = newPeople();
  if (judgeAccount) body.judge_account_id = judgeAccount;
  if (clerkAccount) body.clerk_account_id = clerkAccount;
  $("form-save").disabled = true;
  let hearing;
  try {
    hearing = await api("/hearings", { method: "POST", body });
  } catch (e) {
    if (e.code === "schedule_conflict") {
      S.conflicts = e.details.conflicts || [];
      renderConflicts();
      renderCalendar();
    } else {
      error.textContent = errorText(e);
      $("form-save").disabled = false;
    }
    return;
  }
  // Interpreters last: the participant they interpret for must exist first.
  const invited = [];
  const created = {};  // row key -> participant id
  const order = [...people.filter((p) => p.role !== "interpreter"),
    ...people.filter((p) => p.role === "interpreter")];
  for (const p of order) {
    const person = personBody(p, p.interprets_for ? created[p.interprets_for] : null);
    try {
      if (p.interprets_for && !person.interprets_for_id) throw new ApiError(0, "interpreted_missing", "");
      const got = await api(`/hearings/${hearing.id}/participants`, { method: "POST", body: person });
      rememberLink(got.id, got.join_url);
      created[p.key] = got.id;
      invited.push({ person: got });
    } catch (e) {
      invited.push({ person, error: e });
    }
  }
  S.draft = null;
  S.conflicts = [];
  await refresh();
  showCreated(hearing, invited);
  showStatus(t("已创建庭审 {case}。", { case: hearing.case_number }));
}

function invitation(h, p, link) {
  const subject = t("庭审通知：{case}「{title}」", { case: h.case_number, title: h.title });
  const body = [
    t("{name}（{role}）：", { name: p.name, role: roleLabel(p.role) }),
    "",
    t("您被邀请参加{kind}「{title}」（案号 {case}），时间：{when}。", {
      kind: kindLabel(h.kind), title: h.title, case: h.case_number,
      when: fmtWindow(h.scheduled_start, h.scheduled_end),
    }),
    t("请于开庭前 30 分钟内打开以下链接进入。此链接仅限本人使用，请勿转发：", {}),
    link,
  ].join("\n");
  return [subject, body];
}

function invitationRow(h, p, link, error = null) {
  return el("li", { class: "invite", dataset: { participantId: p.id || "" } },
    el("div", { class: "who" }, el("strong", {}, p.name), " ", el("span", { class: "muted" }, `${roleLabel(p.role)} · ${locationLabel(p.location)}`)),
    error ? el("p", { class: "form-error" }, errorText(error))
      : p.account_id ? el("p", { class: "muted small-text", dataset: { seat: "account" } }, t("本人使用账号登录，从“我的庭审”进入，无需链接。"))
        : linkTools(link, ...invitation(h, p, link)));
}

function showCreated(hearing, invited) {
  S.panel = { kind: "created", id: hearing.id, hearing, invited };
  const done = el("button", { type: "button", class: "primary" }, tx("完成"));
  done.addEventListener("click", closePanel);
  const details = el("button", { type: "button" }, tx("查看详情"));
  details.addEventListener("click", () => openDetails(hearing.id));
  const failed = invited.filter((x) => x.error).length;
  $("panel").replaceChildren(
    panelHead(tx("已创建庭审")),
    el("div", { class: "created" },
      el("p", {}, el("strong", {}, hearing.case_number), " ", hearing.title),
      el("p", { class: "muted" }, fmtWindow(hearing.scheduled_start, hearing.scheduled_end)),
      el("h3", {}, t("邀请链接")),
      el("p", { class: "hint" }, t("链接只显示这一次（本标签页会暂时记住）。请复制或通过邮件发送给各参与人。")),
      failed ? el("p", { class: "form-error" }, t("有 {n} 位参与人未能添加，请在详情中重新添加。", { n: failed })) : null,
      el("ul", { class: "invites", id: "invites" }, invited.map(({ person, error }) =>
        invitationRow(hearing, person, person.join_url, error))),
      el("div", { class: "form-buttons" }, details, done)));
  renderCalendar();
}

// -- a hearing's details ----------------------------------------------------------------------

async function openDetails(id) {
  let hearing;
  try {
    hearing = await api(`/hearings/${id}`);
  } catch (e) {
    showStatus(errorText(e), "error");
    return;
  }
  S.panel = { kind: "details", id, hearing };
  S.checkedKey = null;
  S.draft = null;
  S.conflicts = [];
  S.checkError = null;
  renderDetails();
  renderCalendar();
}

function languageName(code) {
  const known = LANGUAGES.find(([value]) => value === code);
  return known ? `${t(known[1])} (${code})` : code;
}

function renderDetails() {
  const h = S.panel.hearing;
  const room = S.rooms.find((r) => r.id === h.courtroom_id);
  const facts = [
    ["案号", h.case_number], ["类型", kindLabel(h.kind)], ["状态", stateLabel(h.state)],
    ["法庭", room ? `${room.court} · ${room.name}` : t("未指定法庭")],
    ["时间", fmtWindow(h.scheduled_start, h.scheduled_end)],
    ["语言", languageName(h.language)], ["自动准入", h.auto_admit ? t("是") : t("否")],
  ];
  const panel = $("panel");
  const children = [
    panelHead(h.title),
    el("dl", { class: "facts", id: "details-facts" }, facts.flatMap(([k, v]) => [el("dt", {}, t(k)), el("dd", {}, v)])),
  ];
  if (EDITABLE_STATES.has(h.state)) children.push(rescheduleForm(h));
  children.push(el("h3", {}, t("参与人")), participantsList(h));
  if (!FINISHED_STATES.has(h.state)) children.push(addPersonForm(h));
  const actions = el("div", { class: "form-buttons" });
  if (h.state === "closed") actions.append(el("a", { class: "button", href: `/review/${h.id}` }, t("庭审回看")));
  if (EDITABLE_STATES.has(h.state)) {
    const cancel = el("button", { type: "button", class: "danger", "data-action": "cancel-hearing" }, t("取消庭审"));
    cancel.addEventListener("click", () => cancelHearing(h));
    actions.append(cancel);
  }
  if (actions.children.length) children.push(actions);
  panel.replaceChildren(...children);
  panel.hidden = false;
  if (EDITABLE_STATES.has(h.state)) renderConflicts();
}

function rescheduleForm(h) {
  const form = el("form", { id: "hearing-form", class: "hearing-form reschedule", novalidate: true },
    el("h3", {}, t("改期或调换法庭")),
    el("div", { class: "fields" },
      field("开始", el("input", { type: "datetime-local", name: "start", required: true, value: toLocalInput(h.scheduled_start) })),
      field("结束", el("input", { type: "datetime-local", name: "end", required: true, value: toLocalInput(h.scheduled_end) })),
      field("法庭", roomOptions(h.courtroom_id), true)),
    el("div", { id: "form-conflicts", class: "conflicts", role: "status", "aria-live": "polite" }),
    el("p", { id: "form-error", class: "form-error", role: "alert" }),
    el("div", { class: "form-buttons" },
      el("button", { type: "submit", id: "form-save", class: "primary" }, t("保存更改"))));
  trackDuration(form);
  const changed = () => {
    if (formDiffers()) formChanged();
    else {
      S.draft = null;
      S.conflicts = [];
      S.checking = false;
      S.checkedKey = null;
      S.checkSeq++;
      renderConflicts();
      renderCalendar();
    }
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", saveReschedule);
  return form;
}

function formDiffers() {
  if (!S.panel || S.panel.kind !== "details") return true;
  const h = S.panel.hearing;
  const { start, end } = windowOfForm();
  const room = $("hearing-form").elements.courtroom.value || null;
  return !start || !end || +start !== +new Date(h.scheduled_start)
    || +end !== +new Date(h.scheduled_end) || room !== (h.courtroom_id || null);
}

async function saveReschedule(event) {
  event.preventDefault();
  const h = S.panel.hearing;
  const { start, end } = windowOfForm();
  if (S.conflicts.length || S.checking || !start || !end || end <= start) return;
  const room = $("hearing-form").elements.courtroom.value || null;
  const body = {};
  if (+start !== +new Date(h.scheduled_start)) body.scheduled_start = start.toISOString();
  if (+end !== +new Date(h.scheduled_end)) body.scheduled_end = end.toISOString();
  if (room !== (h.courtroom_id || null)) body.courtroom_id = room;
  $("form-save").disabled = true;
  S.loadSeq++; // a load already on its way would bring the old window back
  try {
    S.panel.hearing = await api(`/hearings/${h.id}`, { method: "PATCH", body });
  } catch (e) {
    if (e.code === "schedule_conflict") {
      S.conflicts = e.details.conflicts || [];
      renderConflicts();
      renderCalendar();
    } else {
      $("form-error").textContent = errorText(e);
      $("form-save").disabled = false;
    }
    return;
  }
  S.draft = null;
  S.conflicts = [];
  // The block moves at once (not back to its old place while the week reloads).
  S.hearings = S.hearings.map((x) => (x.id === h.id ? S.panel.hearing : x));
  if (start < S.weekStart || start >= weekEnd()) S.weekStart = mondayOf(start);
  await refresh();
  renderDetails();
  showStatus(t("已保存：{when}", { when: fmtWindow(S.panel.hearing.scheduled_start, S.panel.hearing.scheduled_end) }));
}

function participantsList(h) {
  const links = knownLinks();
  const list = el("ul", { class: "invites", id: "participants" });
  if (!h.participants.length) list.append(el("li", { class: "muted" }, t("尚未添加参与人。")));
  for (const p of h.participants) {
    const term = S.terminals.find((x) => x.id === p.terminal_id);
    const where = term ? `${locationLabel(p.location)} · ${term.prison} ${term.name}` : locationLabel(p.location);
    const link = links[p.id];
    const reissue = el("button", { type: "button", class: "small quiet", "data-action": "reissue" }, t("重新签发链接"));
    reissue.addEventListener("click", () => reissueLink(h, p));
    reissue.disabled = FINISHED_STATES.has(h.state);
    const party = h.participants.find((x) => x.id === p.interprets_for_id);
    list.append(el("li", { class: "invite", dataset: { participantId: p.id } },
      el("div", { class: "who" }, el("strong", {}, p.name), " ", el("span", { class: "muted" }, `${roleLabel(p.role)} · ${where}`
        + (party ? ` · ${t("为 {name} 翻译", { name: party.name })}` : "")
        + (p.id_digits_on_file ? ` · ${t("加入时核对身份证后四位")}` : "")), reissue),
      p.account_id ? el("p", { class: "muted small-text", dataset: { seat: "account" } }, t("本人使用账号登录，从“我的庭审”进入，无需链接。"))
        : link ? linkTools(link, ...invitation(h, p, link))
          : el("p", { class: "muted small-text" }, t("链接仅在创建或重新签发时显示；如需发送，请重新签发。"))));
  }
  return list;
}

async function reissueLink(h, p) {
  const ok = await confirmDialog({
    title: t("重新签发链接"),
    paragraphs: [
      t("将为 {name}（{role}）签发新的加入链接。", { name: p.name, role: roleLabel(p.role) }),
      t("此人之前收到的所有链接将立即失效。"),
    ],
    confirm: t("签发新链接"),
  });
  if (!ok) return;
  try {
    const issued = await api(`/hearings/${h.id}/participants/${p.id}/token`, { method: "POST" });
    rememberLink(p.id, issued.join_url);
    showStatus(t("已为 {name} 签发新链接，旧链接已失效。", { name: p.name }));
    renderDetails();
  } catch (e) {
    showStatus(errorText(e), "error");
  }
}

function addPersonForm(h) {
  const parties = () => S.panel.hearing.participants
    .map((p) => ({ key: p.id, name: p.name, role: p.role }));
  const row = personRow({ role: "party" }, parties);
  row.querySelector("[data-action=remove]").remove();
  const add = el("button", { type: "submit", class: "small" }, t("添加"));
  const error = el("p", { class: "form-error", role: "alert" });
  const form = el("form", { class: "add-person", id: "add-person" }, el("h3", {}, t("添加参与人")), row, add, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [p] = peopleOfForm(form);
    if (!p.name) {
      error.textContent = t("请填写姓名。");
      return;
    }
    if (badIdDigits([p])) {
      error.textContent = t("身份证后四位应为 4 位：数字，末位可以是 X。");
      return;
    }
    const body = personBody(p, p.interprets_for);
    add.disabled = true;
    try {
      const got = await api(`/hearings/${h.id}/participants`, { method: "POST", body });
      rememberLink(got.id, got.join_url);
      S.panel.hearing = await api(`/hearings/${h.id}`);
      showStatus(t("已添加 {name}。", { name: got.name }));
      renderDetails();
      await refresh();
    } catch (e) {
      error.textContent = e.code === "schedule_conflict"
        ? (e.details.conflicts || []).map(conflictText).join(t("；")) : errorText(e);
      add.disabled = false;
    }
  });
  return form;
}

async function cancelHearing(h) {
  const ok = await confirmDialog({
    title: t("取消庭审"),
    paragraphs: [t("取消后，{case}「{title}」的所有加入链接都将失效，且不能恢复。", { case: h.case_number, title: h.title })],
    confirm: t("取消庭审"), danger: true,
  });
  if (!ok) return;
  try {
    S.panel.hearing = { ...(await api(`/hearings/${h.id}/cancel`, { method: "POST" })) };
    showStatus(t("已取消庭审 {case}。", { case: h.case_number }));
    await refresh();
    renderDetails();
  } catch (e) {
    showStatus(errorText(e), "error");
  }
}

// -- wiring -----------------------------------------------------------------------------------

function init() {
  $("week-prev").addEventListener("click", () => goWeek(dayOf(-7)).catch((e) => showStatus(errorText(e), "error")));
  $("week-next").addEventListener("click", () => goWeek(dayOf(7)).catch((e) => showStatus(errorText(e), "error")));
  $("week-today").addEventListener("click", () => goWeek(new Date()).catch((e) => showStatus(errorText(e), "error")));
  for (const b of document.querySelectorAll(".segmented [data-view]")) {
    b.addEventListener("click", () => setView(b.dataset.view));
  }
  $("resource-filter").addEventListener("change", (e) => {
    S.filter = e.target.value;
    renderCalendar();
  });
  $("new-hearing").addEventListener("click", () => openNew());
  window.addEventListener("langchange", () => {
    renderFilter();
    renderCalendar();
    // A form being filled in keeps what was typed: its labels switch by themselves.
    if (S.panel && S.panel.kind === "details" && !S.draft) renderDetails();
    else if (S.panel && S.panel.kind === "created") showCreated(S.panel.hearing, S.panel.invited);
    else if (S.panel) renderConflicts();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && S.panel && !document.querySelector("dialog[open]")) closePanel();
  });
}

startStaffPage({ init, reload });

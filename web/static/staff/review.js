// Review of a closed hearing: its recordings in a player with the trial record beside it.
//
// Transcript lines carry start and end in seconds on the hearing timeline (0 is the instant the
// hearing first went in session; recesses are gaps between recording segments). A recording
// file starts at its `offset` on that timeline — the composite at 0, a participant's file where
// its segment (or the participant's arrival) began — and runs for its `duration`. So a position
// p in the playing file is timeline time offset + p, and a line is reached in a file that covers
// its start by seeking to start − offset. A line outside the playing file (another segment) is
// played from a file that covers it: the composite, else the speaker's own file; one that
// starts in a recess gap plays from where recording resumed.
import { t } from "/static/i18n.js";
import { ROLE_ORDER, roleLabel } from "/static/labels.js";
import {
  $, API, api, clock, confirmDialog, el, errorText, fileLink, fmtDateTime, fmtSeconds, openable,
  session, showStatus, startStaffPage,
} from "/static/staff/common.js";
import { compare, loadVersions, structureTools } from "/static/staff/record-edits.js";

const COMPOSITE_POLL_MS = 2000;
// A line stays current a little past its end, so a short pause between sentences does not
// flicker; a seek lands at most this early.
const LINE_HOLD_S = 0.75;
const SEEK_SLACK_S = 0.25;
const COVER_SLACK_S = 0.05;

const hearingId = document.body.dataset.hearingId;
const video = $("player");

const S = {
  hearing: null, // admin only: the hearing with its participants
  room: "",
  listing: null,
  origin: null, // Date at timeline 0
  lines: [],
  version: 1,
  sealed: null,
  exhibits: null,
  exhibitsError: null,
  people: new Map(), // participant id -> {name, role}
  source: null, // the recording item in the player
  current: null, // id of the line being played
  query: "",
  matches: [], // line ids with a match, in order
  match: -1,
  editing: null,
  revisionsOpen: new Set(),
  compositeTimer: null,
  wish: 0, // the newest choice of file and position (older ones give way)
  loadingId: null, // the recording whose link is being fetched or whose metadata is loading
  canCorrect: true,
  played: false,
};

const base = `/hearings/${hearingId}`;

// -- loading ----------------------------------------------------------------------------------

async function reload() {
  video.dataset.recordingId = "";
  S.canCorrect = true;
  if (session.kind === "admin") {
    S.hearing = await api(base);
    S.room = "";
    if (S.hearing.courtroom_id) {
      try {
        const room = await api(`/courtrooms/${S.hearing.courtroom_id}`);
        const court = await api(`/courts/${room.court_id}`);
        S.room = `${court.name} · ${room.name}`;
      } catch { S.room = ""; }
    }
    for (const p of S.hearing.participants) S.people.set(p.id, { name: p.name, role: p.role });
  }
  $("staff-nav").hidden = session.kind !== "admin";
  await Promise.all([loadRecordings(), loadTranscript(), loadExhibits(), loadAttendance()]);
  await loadVersions(edits).catch((e) => showStatus(errorText(e), "error"));
  renderHead();
  renderRecordings();
  renderTranscript();
  renderExhibits();
  renderAttendance();
  if (!S.source) choose(defaultSource(), { play: false });
}

async function loadRecordings() {
  S.listing = await api(`${base}/recordings`);
  S.origin = S.listing.timeline_origin ? new Date(S.listing.timeline_origin) : null;
  for (const f of S.listing.items) {
    if (f.participant_id && !S.people.has(f.participant_id)) {
      S.people.set(f.participant_id, { name: f.participant_name || "", role: f.role });
    }
  }
  watchComposite(S.listing.composite);
}

async function loadTranscript() {
  const record = await api(`${base}/transcript`);
  S.version = record.version;
  S.sealed = record.sealed || null;
  S.lines = [...record.items].sort((a, b) => a.start - b.start);
  // Speech neither the live transcriber nor the recording could give: noted where it happened.
  S.untranscribed = (record.untranscribed || []).map((hole) => ({
    action: "transcript.untranscribed", at: hole.start, end: hole.end,
    participant_ids: [hole.participant_id],
  }));
  for (const hole of record.untranscribed || []) {
    if (!S.people.has(hole.participant_id)) {
      S.people.set(hole.participant_id, { name: hole.participant, role: hole.role });
    }
  }
  for (const line of S.lines) {
    if (!S.people.has(line.participant_id)) {
      S.people.set(line.participant_id, { name: line.participant, role: line.role });
    }
  }
}

async function loadExhibits() {
  try {
    S.exhibits = (await api(`${base}/exhibits`, { keepSession: true })).items;
    S.exhibitsError = null;
  } catch (e) {
    S.exhibits = null;
    S.exhibitsError = e;
  }
}

// -- the header: facts, exports, the seal -----------------------------------------------------

function renderHead() {
  const h = S.hearing;
  $("hearing-title").textContent = h ? h.title : t("庭审回看");
  document.title = `${h ? h.title : t("庭审回看")} · 庭审 Tingshen`;
  const facts = [];
  if (h) {
    facts.push(["案号", h.case_number], ["法庭", S.room || t("未指定法庭")]);
  }
  if (S.origin) facts.push(["开庭于", fmtDateTime(S.origin)]);
  if (h && h.closed_at) facts.push(["闭庭于", fmtDateTime(h.closed_at)]);
  facts.push(["笔录版本", String(S.version)]);
  if (S.listing) {
    facts.push(["录像清单摘要", el("code", { class: "hash", title: S.listing.manifest_sha256 },
      `${S.listing.manifest_sha256.slice(0, 16)}…`)]);
  }
  $("hearing-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, t(k)), el("dd", {}, v)]));
  for (const format of ["vtt", "srt", "txt", "docx"]) {
    fileLink($(`export-${format}`), `${API}${base}/transcript/export/${format}`);
  }
  renderSeal();
}

function renderSeal() {
  const box = $("seal-box");
  document.body.dataset.sealed = S.sealed ? "true" : "false";
  if (S.sealed) {
    const who = sealedBy(S.sealed.by, S.sealed.by_name);
    box.replaceChildren(el("div", { class: "sealed", id: "sealed" },
      el("strong", {}, t("笔录已签章封存")),
      el("span", {}, t("{at}，签章人：{by}", { at: fmtDateTime(S.sealed.at), by: who })),
      el("code", { class: "hash", id: "sealed-sha256" }, `SHA-256 ${S.sealed.sha256}`)));
    return;
  }
  if (!maySeal()) {
    box.replaceChildren();
    return;
  }
  const button = el("button", { type: "button", id: "seal", class: "primary" }, t("签章封存笔录"));
  button.addEventListener("click", seal);
  if (S.hearing && S.hearing.state !== "closed") {
    button.disabled = true;
    button.title = t("庭审闭庭后才能封存笔录。");
  }
  box.replaceChildren(button);
}

// Only the hearing's judge seals (the server refuses anyone else): a signed-in account that is
// not theirs is offered no button. Without an account (the setup's admin token, a judge's own
// join link) the server decides.
function maySeal() {
  const account = session.kind === "admin" ? session.account : null;
  if (!account) return true;
  return (account.roles || []).includes("judge") && !!S.hearing
    && account.id === S.hearing.judge_account_id;
}

// What the structural edits (record-edits.js) need of this page.
const edits = {
  api, base, S, who: (by, name) => sealedBy(by, name),
  reload: async () => {
    await loadTranscript();
    await loadVersions(edits);
    renderTranscript();
  },
};

// Who acted, as the server names them: an account by its name (resolved when read), the admin
// token as the court's administrator, a participant by their name and role.
function sealedBy(by, name) {
  if (!by) return "";
  if (name) return name;
  if (by === "admin") return t("法院管理员");
  if (by === "recognizer:settled") return t("语音识别（按录音校订）");
  const match = /^participant:(.+)$/.exec(by);
  const person = match && S.people.get(match[1]);
  return person ? `${person.name}（${roleLabel(person.role)}）` : by;
}

async function seal() {
  const ok = await confirmDialog({
    title: t("签章封存笔录"),
    paragraphs: [
      t("封存后，笔录即为定稿：任何人都不能再更正任何一行。"),
      t("封存的时间、签章人和笔录的 SHA-256 摘要将记入审计链，可随时核验。请确认笔录已核对无误。"),
    ],
    confirm: t("确认封存"), danger: true,
  });
  if (!ok) return;
  try {
    await api(`${base}/transcript/seal`, { method: "POST", keepSession: true });
    await loadTranscript();
    S.editing = null;
    renderSeal();
    renderTranscript();
    showStatus(t("笔录已封存。"));
  } catch (e) {
    showStatus(errorText(e), "error");
  }
}

// -- recordings and the player ----------------------------------------------------------------

const composite = () => (S.listing ? S.listing.items.find((f) => f.kind === "composite" && f.status === "complete") : null);
const participantFiles = () => (S.listing ? S.listing.items.filter((f) => f.kind === "participant" && f.duration > 0) : []);
const covers = (f, at) => at >= f.offset - COVER_SLACK_S && at < f.offset + f.duration;
const roleRank = (role) => { const i = ROLE_ORDER.indexOf(role); return i < 0 ? 99 : i; };

function defaultSource() {
  const files = participantFiles().sort((a, b) => (a.segment ?? 0) - (b.segment ?? 0) || roleRank(a.role) - roleRank(b.role));
  return composite() || files[0] || null;
}

// Where to play a line from: the file and the moment on the timeline. The line's start, in the
// playing file if it covers it, else the composite, else the speaker's own file, else anyone's.
// A line that starts in a recess (the recognizer's lead-in) plays from where recording resumed.
function placeOf(line) {
  const pick = (files) => files.find((f) => f.participant_id === line.participant_id)
    || files.sort((a, b) => roleRank(a.role) - roleRank(b.role))[0];
  if (S.source && covers(S.source, line.start)) return { file: S.source, at: line.start };
  const c = composite();
  if (c && covers(c, line.start)) return { file: c, at: line.start };
  const covering = participantFiles().filter((f) => covers(f, line.start));
  if (covering.length) return { file: pick(covering), at: line.start };
  const resumed = (f) => f.offset > line.start && f.offset < line.end;
  if (S.source && resumed(S.source)) return { file: S.source, at: S.source.offset };
  const later = participantFiles().filter(resumed);
  if (later.length) {
    const file = pick(later);
    return { file, at: file.offset };
  }
  return null;
}

function choose(item, { play = false, at = null, fresh = false } = {}) {
  if (!item) {
    video.removeAttribute("src");
    video.load();
    $("player-empty").hidden = false;
    $("player-empty").textContent = participantFiles().length || composite()
      ? t("此时段没有录像（可能处于休庭）。") : t("该庭审没有录像。");
    return Promise.resolve(false);
  }
  $("player-empty").hidden = true;
  S.source = item;
  renderRecordings();
  // The newest choice wins: a participant's file is opened through a signed link fetched
  // first, and a click meanwhile must neither seek the old file nor be undone by the load.
  const wish = ++S.wish;
  return new Promise((resolve) => {
    const go = () => {
      if (wish !== S.wish) {
        resolve(false);
        return;
      }
      if (video.dataset.recordingId !== item.id) { // an earlier file's metadata: wait for ours
        video.addEventListener("loadedmetadata", go, { once: true });
        return;
      }
      if (at !== null) video.currentTime = Math.max(0, at - item.offset);
      if (play) video.play().catch(() => {});
      resolve(true);
    };
    const loaded = video.dataset.recordingId === item.id && S.loadingId === null;
    if (loaded && !fresh && video.readyState >= 1) {
      go();
      return;
    }
    video.addEventListener("loadedmetadata", go, { once: true });
    video.addEventListener("error", () => resolve(false), { once: true });
    if (S.loadingId === item.id && !fresh) return; // already on its way
    S.loadingId = item.id;
    openable(item.url).then((url) => {
      if (S.loadingId !== item.id) return; // another file was chosen meanwhile
      video.dataset.recordingId = item.id;
      video.dataset.offset = String(item.offset);
      video.src = url;
      video.load();
    }, () => resolve(false));
  });
}

function fileLabel(f) {
  if (f.kind === "composite") return t("合成录像（全体参与人）");
  const who = S.people.get(f.participant_id) || { name: f.participant_name, role: f.role };
  return `${who.name || ""} · ${roleLabel(who.role)}`;
}

const STATUS_ZH = { interrupted: "已中断", recovered: "已修复", recording: "录制中" };

function fileButton(f) {
  const pressed = S.source && S.source.id === f.id;
  const button = el("button", {
    type: "button", class: "file", "aria-pressed": String(Boolean(pressed)),
    dataset: { recordingId: f.id, kind: f.kind, offset: String(f.offset) },
    title: `SHA-256 ${f.sha256}`,
  },
  el("span", { class: "file-name" }, fileLabel(f)),
  el("span", { class: "muted" }, `${clock(f.offset)}–${clock(f.offset + f.duration)}`),
  STATUS_ZH[f.status] ? el("span", { class: `badge file-${f.status}` }, t(STATUS_ZH[f.status])) : null);
  button.addEventListener("click", () => choose(f, { play: true }));
  return button;
}

function renderRecordings() {
  const list = $("recordings");
  const items = [];
  const c = composite();
  if (c) items.push(el("li", { class: "composite" }, fileButton(c)));
  const segments = S.listing ? S.listing.segments : [];
  const files = participantFiles();
  for (const seg of segments) {
    const mine = files.filter((f) => f.segment === seg.index)
      .sort((a, b) => roleRank(a.role) - roleRank(b.role));
    if (!mine.length) continue;
    const span = seg.end === null ? clock(seg.start) : `${clock(seg.start)}–${clock(seg.end)}`;
    items.push(el("li", { class: "segment", dataset: { segment: String(seg.index) } },
      el("span", { class: "segment-head" }, t("第 {n} 段", { n: seg.index + 1 }), " ", el("span", { class: "muted" }, span)),
      el("div", { class: "files" }, mine.map(fileButton))));
  }
  const orphans = files.filter((f) => !segments.some((s) => s.index === f.segment));
  if (orphans.length) items.push(el("li", { class: "segment" }, el("div", { class: "files" }, orphans.map(fileButton))));
  if (!items.length) items.push(el("li", { class: "muted" }, t("该庭审没有录像。")));
  list.replaceChildren(...items);
  renderCompositeState();
}

function renderCompositeState() {
  const state = S.listing ? S.listing.composite : null;
  const box = $("composite-progress");
  const rendering = state && state.state === "rendering";
  box.hidden = !rendering;
  if (rendering) {
    $("composite-bar").value = state.progress;
    $("composite-pct").textContent = `${Math.round(state.progress * 100)}%`;
  }
  let note = $("composite-note");
  if (note) note.remove();
  if (state && !rendering && !composite()) {
    note = el("p", { id: "composite-note", class: "muted" });
    if (state.state === "failed") note.append(t("合成录像生成失败：{error}", { error: state.error || "" }), " ");
    else note.append(t("尚无合成录像。"), " ");
    if (session.kind === "admin" && participantFiles().length) {
      const render = el("button", { type: "button", class: "small" }, t("生成合成录像"));
      render.addEventListener("click", async () => {
        try {
          S.listing.composite = await api(`${base}/composite`, { method: "POST" });
          watchComposite(S.listing.composite);
          renderCompositeState();
        } catch (e) { showStatus(errorText(e), "error"); }
      });
      note.append(render);
    }
    box.after(note);
  }
}

function watchComposite(state) {
  clearTimeout(S.compositeTimer);
  if (!state || state.state !== "rendering") return;
  S.compositeTimer = setTimeout(async () => {
    try {
      const now = await api(`${base}/composite`);
      S.listing.composite = now;
      if (now.state === "rendering") {
        renderCompositeState();
        watchComposite(now);
        return;
      }
      await loadRecordings();
      renderRecordings();
      // Nothing watched yet: the composite is the better first view.
      if (!S.played && composite()) choose(composite());
    } catch (e) {
      if (e.status !== 401) watchComposite(state);
    }
  }, COMPOSITE_POLL_MS);
}

// Where the player is on the hearing timeline.
const timelineNow = () => (S.source ? S.source.offset + video.currentTime : 0);

function onTime() {
  const at = timelineNow();
  let best = null;
  for (const line of S.lines) {
    if (line.start - SEEK_SLACK_S > at) break;
    if (at < line.end + LINE_HOLD_S) best = line;
  }
  setCurrent(best ? best.id : null, !video.paused);
  const wall = S.origin ? ` · ${fmtSeconds(new Date(S.origin.getTime() + at * 1000))}` : "";
  $("player-now").textContent = S.source
    ? t("时间轴 {at}{wall}", { at: clock(at), wall }) : "";
}

function setCurrent(id, scroll = false) {
  if (id === S.current) return;
  const old = S.current && lineNode(S.current);
  if (old) {
    old.classList.remove("current");
    old.removeAttribute("aria-current");
  }
  S.current = id;
  const node = id && lineNode(id);
  if (node) {
    node.classList.add("current");
    node.setAttribute("aria-current", "true");
    if (scroll) node.scrollIntoView({ block: "nearest" });
  }
}

async function playLine(line) {
  const place = placeOf(line);
  if (!place) {
    showStatus(t("这一行所在时段没有录像。"), "error");
    setCurrent(line.id);
    return;
  }
  S.played = true;
  await choose(place.file, { play: true, at: place.at });
  setCurrent(line.id);
}

// -- the trial record -------------------------------------------------------------------------

const lineNode = (id) => document.querySelector(`#transcript li[data-line-id="${id}"]`);

function marked(text) {
  if (!S.query) return [text];
  const parts = [];
  const lower = text.toLowerCase();
  let from = 0;
  for (let i = lower.indexOf(S.query); i >= 0; i = lower.indexOf(S.query, from)) {
    if (i > from) parts.push(text.slice(from, i));
    parts.push(el("mark", {}, text.slice(i, i + S.query.length)));
    from = i + S.query.length;
  }
  if (from < text.length) parts.push(text.slice(from));
  return parts;
}

function segmentOf(at) {
  const segs = S.listing ? S.listing.segments : [];
  let found = null;
  for (const s of segs) if (s.start <= at + COVER_SLACK_S) found = s;
  return found;
}

function lineItem(line) {
  const who = S.people.get(line.participant_id) || { name: line.participant, role: line.role };
  const at = S.origin ? fmtSeconds(new Date(S.origin.getTime() + line.start * 1000)) : clock(line.start);
  const classes = ["line"];
  if (line.id === S.current) classes.push("current");
  const hit = S.query && line.text.toLowerCase().includes(S.query);
  if (hit) classes.push("match");
  if (S.matches[S.match] === line.id) classes.push("current-match");
  const item = el("li", { class: classes.join(" "), dataset: { lineId: line.id, start: String(line.start), end: String(line.end) },
    "aria-current": line.id === S.current ? "true" : null });
  if (S.query && !hit && $("search-filter").checked) item.hidden = true;
  const play = el("button", { type: "button", class: "line-time", title: t("时间轴 {at}", { at: clock(line.start) }) }, at);
  const head = el("div", { class: "line-head" }, play,
    el("span", { class: "speaker" }, who.name), el("span", { class: "role" }, roleLabel(who.role)));
  // People's corrections are counted; settling (the recognizer decoding the recording again)
  // is no correction, and says so.
  const badges = [];
  if (line.corrections > 0) badges.push(["corrected", t("已更正 {n} 次", { n: line.corrections })]);
  if (line.settled) badges.push(["settled", t("已按录音校订")]);
  for (const [kind, label] of badges) {
    const rev = el("button", { type: "button", class: `badge ${kind}`, "data-action": "revisions",
      title: kind === "settled" ? t("语音识别在这句话说完后按录音重新识别，修订了实时识别的文字") : null,
      "aria-expanded": String(S.revisionsOpen.has(line.id)) }, label);
    rev.addEventListener("click", (e) => { e.stopPropagation(); toggleRevisions(line); });
    head.append(rev);
  }
  if (!S.sealed && S.canCorrect && S.editing !== line.id) {
    const edit = el("button", { type: "button", class: "quiet small edit", "data-action": "edit" }, t("更正"));
    edit.addEventListener("click", (e) => { e.stopPropagation(); startEdit(line); });
    // Delete, insert after, change the speaker, merge with the next, split.
    const adjust = el("button", { type: "button", class: "quiet small", "data-action": "structure",
      "aria-expanded": String(S.structure === line.id) }, t("调整"));
    adjust.addEventListener("click", (e) => {
      e.stopPropagation();
      S.structure = S.structure === line.id ? null : line.id;
      replaceLine(line);
    });
    head.append(edit, adjust);
  }
  item.append(head);
  if (S.structure === line.id && !S.sealed) {
    const next = S.lines[S.lines.findIndex((l) => l.id === line.id) + 1] || null;
    item.append(structureTools(line, next, edits));
  }
  if (S.editing === line.id) {
    item.append(editor(line));
  } else {
    const text = el("p", { class: "line-text" }, ...marked(line.text));
    item.append(text);
    item.addEventListener("click", (e) => {
      if (e.target.closest("button:not(.line-time), textarea, a, .revisions")) return;
      playLine(line);
    });
  }
  if (S.revisionsOpen.has(line.id)) item.append(el("ol", { class: "revisions", id: `revisions-${line.id}` }, t("正在加载……")));
  return item;
}

// What the court did that the recording shows as an absence (muted audio, a consultation),
// shown between the lines where it happened.
function eventItem(event) {
  const names = event.participant_ids.map((id) => (S.people.get(id) || { name: id }).name).join(t("、"));
  const at = S.origin ? fmtSeconds(new Date(S.origin.getTime() + event.at * 1000)) : clock(event.at);
  const text = {
    "participant.muted": t("{at} 法庭将{names}静音（不录音、不记入笔录）", { at, names }),
    "participant.unmuted": t("{at} 法庭解除{names}的静音", { at, names }),
    "consultation.started": t("{at} {names}开始私下会见（法庭不可听取、不录音）", { at, names }),
    "consultation.ended": t("{at} {names}结束私下会见", { at, names }),
    "transcript.untranscribed": event.end == null
      ? t("{at} 起{names}的发言未能转写，以庭审录音为准", { at, names })
      : t("{at}–{end} {names}的发言未能转写，以庭审录音为准", { at, names, end: S.origin
        ? fmtSeconds(new Date(S.origin.getTime() + event.end * 1000)) : clock(event.end) }),
  }[event.action];
  return text ? el("li", { class: "recess court-event" }, text) : null;
}

function renderTranscript() {
  const list = $("transcript");
  const items = [];
  let segment = null;
  const events = [...(S.listing ? S.listing.events || [] : []), ...(S.untranscribed || [])]
    .sort((a, b) => a.at - b.at);
  const flushEvents = (until) => {
    while (events.length && events[0].at <= until) {
      const item = eventItem(events.shift());
      if (item) items.push(item);
    }
  };
  for (const line of S.lines) {
    flushEvents(line.start);
    const seg = segmentOf(line.start);
    if (segment && seg && seg.index !== segment.index && segment.end !== null) {
      const recess = S.origin
        ? `${fmtSeconds(new Date(S.origin.getTime() + segment.end * 1000))}–${fmtSeconds(new Date(S.origin.getTime() + seg.start * 1000))}`
        : `${clock(segment.end)}–${clock(seg.start)}`;
      items.push(el("li", { class: "recess" }, t("休庭 {span}", { span: recess })));
    }
    if (seg) segment = seg;
    items.push(lineItem(line));
  }
  flushEvents(Infinity);
  list.replaceChildren(...items);
  $("transcript-empty").hidden = S.lines.length > 0;
  for (const id of S.revisionsOpen) loadRevisions(id);
  renderSearchCount();
  const ta = list.querySelector("textarea");
  if (ta && document.activeElement !== ta) ta.focus();
}

function replaceLine(line) {
  const node = lineNode(line.id);
  if (node) node.replaceWith(lineItem(line));
}

// -- search -----------------------------------------------------------------------------------

function search() {
  S.query = $("transcript-search").value.trim().toLowerCase();
  S.matches = S.query ? S.lines.filter((l) => l.text.toLowerCase().includes(S.query)).map((l) => l.id) : [];
  S.match = S.matches.length ? 0 : -1;
  renderTranscript();
  revealMatch();
}

function step(delta) {
  if (!S.matches.length) return;
  S.match = (S.match + delta + S.matches.length) % S.matches.length;
  for (const node of document.querySelectorAll("#transcript .current-match")) node.classList.remove("current-match");
  revealMatch();
  renderSearchCount();
}

function revealMatch() {
  const id = S.matches[S.match];
  const node = id && lineNode(id);
  if (node) {
    node.classList.add("current-match");
    node.scrollIntoView({ block: "nearest" });
  }
}

function renderSearchCount() {
  $("search-count").textContent = S.query
    ? (S.matches.length ? t("{i} / {n}", { i: S.match + 1, n: S.matches.length }) : t("无匹配"))
    : "";
  $("search-prev").disabled = $("search-next").disabled = S.matches.length === 0;
}

// -- corrections ------------------------------------------------------------------------------

function startEdit(line) {
  S.editing = line.id;
  replaceLine(line);
  const ta = lineNode(line.id).querySelector("textarea");
  ta.focus();
  ta.setSelectionRange(ta.value.length, ta.value.length);
}

function editor(line) {
  const ta = el("textarea", { class: "line-edit", rows: "3", maxlength: "4000", "aria-label": t("更正这一行") });
  ta.value = line.text;
  const error = el("p", { class: "form-error", role: "alert" });
  const save = el("button", { type: "submit", class: "primary small" }, t("保存更正"));
  const cancel = el("button", { type: "button", class: "small" }, t("取消"));
  const form = el("form", { class: "line-form" }, ta, el("div", { class: "form-buttons" }, cancel, save), error);
  cancel.addEventListener("click", () => {
    S.editing = null;
    replaceLine(line);
  });
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Escape") cancel.click();
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = ta.value.trim();
    if (!text) {
      error.textContent = t("内容不能为空。");
      return;
    }
    if (text === line.text) {
      cancel.click();
      return;
    }
    save.disabled = true;
    error.textContent = "";
    try {
      const updated = await api(`${base}/transcript/${line.id}`, { method: "PATCH", body: { text }, keepSession: true });
      const index = S.lines.findIndex((l) => l.id === line.id);
      S.lines[index] = { ...line, ...updated };
      S.editing = null;
      S.revisionsOpen.add(line.id);
      replaceLine(S.lines[index]);
      loadRevisions(line.id);
      if (S.query) search();
      showStatus(t("已保存更正。"));
    } catch (err) {
      save.disabled = false;
      if (err.code === "record_sealed") {
        await loadTranscript();
        S.editing = null;
        renderSeal();
        renderTranscript();
        showStatus(errorText(err), "error");
        return;
      }
      if (err.status === 401 || err.status === 403) {
        // Corrections are for whom the server allows (the court's staff): say so here, keep
        // the text for the reader to copy, and offer no other line to correct.
        S.canCorrect = false;
        error.textContent = t("您无权更正笔录，请由法院工作人员登录后更正。");
        for (const button of document.querySelectorAll("#transcript [data-action=edit]")) button.remove();
        return;
      }
      error.textContent = errorText(err);
    }
  });
  return form;
}

function toggleRevisions(line) {
  if (S.revisionsOpen.has(line.id)) S.revisionsOpen.delete(line.id);
  else S.revisionsOpen.add(line.id);
  replaceLine(line);
  if (S.revisionsOpen.has(line.id)) loadRevisions(line.id);
}

async function loadRevisions(id) {
  const list = $(`revisions-${id}`);
  if (!list) return;
  try {
    const { items } = await api(`${base}/transcript/${id}/revisions`);
    const node = $(`revisions-${id}`);
    if (!node) return;
    node.replaceChildren(...items.map((r) => el("li", { class: "revision" },
      el("div", { class: "muted" }, t("第 {n} 版 · {at} · {who}", { n: r.revision, at: fmtDateTime(r.at), who: sealedBy(r.author, r.author_name) })),
      el("div", { class: "before" }, el("span", { class: "label" }, t("原文")), " ", el("del", {}, r.before)),
      el("div", { class: "after" }, el("span", { class: "label" }, t("更正为")), " ", el("ins", {}, r.after)))));
    if (!items.length) node.replaceChildren(el("li", { class: "muted" }, t("没有修订记录。")));
  } catch (e) {
    const node = $(`revisions-${id}`);
    if (node) node.replaceChildren(el("li", { class: "form-error" }, errorText(e)));
  }
}

// -- exhibits ---------------------------------------------------------------------------------

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function renderExhibits() {
  const list = $("exhibits");
  if (S.exhibits === null) {
    list.replaceChildren(el("li", { class: "muted" }, S.exhibitsError && S.exhibitsError.status === 404
      ? t("本服务器不提供证据材料列表。") : t("无法加载证据材料：{error}", { error: errorText(S.exhibitsError) })));
    return;
  }
  if (!S.exhibits.length) {
    list.replaceChildren(el("li", { class: "muted" }, t("本庭审没有提交证据材料。")));
    return;
  }
  list.replaceChildren(...S.exhibits.map((x) => {
    const who = S.people.get(x.participant_id);
    const facts = [x.media_type, size(x.size)];
    if (x.media_type === "application/pdf") facts.push(t("{n} 页", { n: x.pages }));
    facts.push(t("提交人：{name}", { name: x.participant_id ? (who ? who.name : "") : t("法院工作人员") }));
    facts.push(fmtDateTime(x.created_at));
    return el("li", { class: "exhibit", dataset: { exhibitId: x.id } },
      fileLink(el("a", { target: "_blank", rel: "noopener noreferrer" }, x.title),
        `${API}${base}/exhibits/${x.id}/file`),
      el("span", { class: "muted" }, facts.join(" · ")),
      el("code", { class: "hash" }, `SHA-256 ${x.sha256}`));
  }));
}

// -- attendance: who was there, and why not -------------------------------------------------

// Why someone was away, in the court's words (a walk-out is told apart from a network failure).
const CAUSES = {
  left: "主动离开", page_closed: "关闭了页面", network_lost: "网络中断",
  server_restart: "服务器重启", server_shutdown: "服务器停机", not_reading: "网络过慢",
  closed_by_server: "服务器断开", removed: "被请出法庭",
};

async function loadAttendance() {
  try {
    S.attendance = (await api(`${base}/attendance`, { keepSession: true })).items;
    // Everyone of the hearing, spoken or not (the speakers a line may be given to).
    for (const a of S.attendance) {
      if (!S.people.has(a.participant_id)) S.people.set(a.participant_id, { name: a.name, role: a.role });
    }
    S.attendanceError = null;
  } catch (e) {
    S.attendance = null;
    S.attendanceError = e;
  }
}

function renderAttendance() {
  const list = $("attendance");
  if (S.attendance === null) {
    list.replaceChildren(el("li", { class: "muted" },
      t("无法加载出庭记录：{error}", { error: errorText(S.attendanceError) })));
    return;
  }
  list.replaceChildren(...S.attendance.filter((a) => a.role !== "observer").map((a) => {
    const party = a.interprets_for_id
      && S.attendance.find((x) => x.participant_id === a.interprets_for_id);
    const head = el("div", {}, el("strong", {}, a.name), " ",
      el("span", { class: "muted" }, roleLabel(a.role)), " ",
      party ? el("span", { class: "interprets-for" },
        t("（为{role} {name}翻译）", { role: roleLabel(party.role), name: party.name }), " ") : null,
      a.joined_first
        ? el("span", {}, t("{at} 进入", { at: fmtDateTime(a.joined_first) }))
        : el("span", { class: "tag away" }, t("未出庭")));
    const items = a.absences.map((x) => el("li", { class: x.walk_out ? "walk-out" : "" },
      t("{at}：{cause}", { at: fmtDateTime(x.left_at), cause: t(CAUSES[x.cause] || x.cause) }),
      x.walk_out ? el("span", { class: "tag muted" }, t("庭审中擅自离开")) : null,
      x.returned_at ? t("，{at} 返回", { at: fmtDateTime(x.returned_at) }) : t("，未返回")));
    for (const w of a.warnings) {
      items.push(el("li", { class: "warning" },
        t("{at} 法庭警告：{reason}", { at: fmtDateTime(w.at), reason: w.reason })));
    }
    return el("li", { dataset: { participantId: a.participant_id } }, head,
      items.length ? el("ul", {}, ...items) : null);
  }));
}

// -- wiring -----------------------------------------------------------------------------------

function init() {
  video.addEventListener("loadedmetadata", () => {
    if (S.loadingId === video.dataset.recordingId) S.loadingId = null;
  });
  video.addEventListener("error", () => { S.loadingId = null; });
  video.addEventListener("timeupdate", onTime);
  video.addEventListener("seeked", onTime);
  video.addEventListener("play", () => { S.played = true; });
  video.addEventListener("error", () => {
    if (!video.getAttribute("src")) return;
    // A participant's signed link lapses during a long viewing: once, a new one, from here.
    if (session.kind === "participant" && S.source && video.dataset.resigned !== S.source.id) {
      video.dataset.resigned = S.source.id;
      choose(S.source, { play: !video.paused, at: S.source.offset + video.currentTime, fresh: true });
      return;
    }
    showStatus(t("无法播放该录像文件。"), "error");
  });
  $("transcript-search").addEventListener("input", search);
  $("compare-run").addEventListener("click",
    () => compare(edits).catch((e) => showStatus(errorText(e), "error")));
  $("transcript-search").addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      step(e.shiftKey ? -1 : 1);
    }
  });
  $("search-next").addEventListener("click", () => step(1));
  $("search-prev").addEventListener("click", () => step(-1));
  $("search-filter").addEventListener("change", renderTranscript);
  window.addEventListener("langchange", () => {
    renderHead();
    renderRecordings();
    renderTranscript();
    renderExhibits();
    onTime();
  });
  renderSearchCount();
}

startStaffPage({ init, reload, participantKey: `tingshen.review.${hearingId}` });

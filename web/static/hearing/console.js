// The judge's and clerk's console: the hearing's state, the recognizer's lag, consultation
// requests, raised hands, every participant (presence, connection quality, admit, mute,
// remove) and the observers.
import { t } from "/static/i18n.js";
import { COMMANDS_IN, CONTROL_ROLES, ROLE_ORDER, locationLabel, roleLabel } from "/static/labels.js";
import { $, el, formatTime, status } from "/static/hearing/dom.js";
import {
  S, command, consultationOf, isControl, nameOf, onRender,
} from "/static/hearing/state.js";

const LAG_WARN_S = 3;
const LAG_BAD_S = 10;
const GRADE_BARS = { good: 4, fair: 3, poor: 1, unknown: 0 };

export const byRole = (a, b) => (ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role))
  || a.name.localeCompare(b.name);

// -- hearing state ------------------------------------------------------------------------------

function renderCommands() {
  for (const button of document.querySelectorAll("[data-command]")) {
    button.disabled = !(COMMANDS_IN[button.dataset.command] || []).includes(S.hearingState);
  }
  // At a recess the judge chooses, the parties sign the record so far.
  const signing = $("open-signing");
  signing.hidden = S.role !== "judge";
  signing.disabled = S.hearingState !== "recess" || S.signingOpen;
  signing.textContent = S.signingOpen && S.hearingState === "recess" ? t("休庭签署已开放")
    : t("开放休庭签署");
  const confirm = $("confirm-close");
  if (!COMMANDS_IN.close.includes(S.hearingState)) confirm.hidden = true;
}

function renderLag() {
  const line = $("lag");
  const lag = S.transcription;
  if (S.hearingState !== "in_session" || !lag) {
    line.hidden = true;
    return;
  }
  const seconds = Number(lag.lag_seconds) || 0;
  line.hidden = false;
  line.dataset.level = lag.state === "stopped" || lag.state === "behind" || seconds > LAG_BAD_S
    ? "bad" : seconds > LAG_WARN_S ? "warn" : "ok";
  if (lag.state === "stopped") {
    line.textContent = t("庭审笔录已停止，正在恢复（落后 {s} 秒）", { s: seconds.toFixed(0) });
  } else if (lag.state === "behind") {
    line.textContent = t("庭审笔录落后于发言 {s} 秒", { s: seconds.toFixed(0) });
  } else {
    line.textContent = t("识别延迟 {s} 秒", { s: seconds.toFixed(1) });
  }
  line.title = t("待识别 {queued} 段 · 转存磁盘 {spilled} 段 · 已记录 {lines} 行", {
    queued: lag.queued ?? 0, spilled: lag.spilled ?? 0, lines: lag.lines ?? 0,
  });
}

// -- consultations and hands ----------------------------------------------------------------

function send(action, participantId, reason = null) {
  if (!command(action, participantId, reason)) status(t("未连接到法庭，操作未能发送"), "error");
}

// Identity checks (before each session): the participant holds an ID document to the camera;
// the server keeps a still of that moment. A refusal needs a reason.
function refuseIdentity(p) {
  const reason = (window.prompt(t("身份核验不通过的原因（将记入庭审记录）")) || "").trim();
  if (reason) send("refuse_identity", p.participant_id, reason.slice(0, 200));
}

function refuseButton(p) {
  const b = el("button", { type: "button", dataset: { action: "refuse_identity" } },
    t("核验不通过"));
  b.disabled = !p.present;
  b.addEventListener("click", () => refuseIdentity(p));
  return b;
}

function actionButton(action, label, participantId, kind = "") {
  const button = el("button", { type: "button", class: kind, dataset: { action } }, label);
  button.addEventListener("click", () => send(action, participantId));
  return button;
}

function renderConsultations() {
  const { requests, active } = S.consultations;
  const section = $("console-consult");
  section.hidden = requests.length === 0 && active.length === 0;
  $("consult-requests").replaceChildren(...requests.map((r) => el("li",
    { dataset: { participantId: r.participant_id, with: r.with } },
    el("p", {}, t("{a} 申请与 {b} 私下会见", { a: nameOf(r.participant_id), b: nameOf(r.with) })),
    el("div", { class: "actions" },
      actionButton("grant_consultation", t("准许"), r.participant_id, "primary"),
      actionButton("deny_consultation", t("拒绝"), r.participant_id)))));
  $("consult-active").replaceChildren(...active.map((c) => {
    const [a, b] = c.participants;
    return el("li", { dataset: { consultationId: c.id, participantId: a } },
      el("p", {}, el("span", { class: "tag consult" }, t("私下会见中")), " ",
        t("{a} 与 {b}", { a: nameOf(a), b: nameOf(b) || "…" }),
        c.started_at ? el("span", { class: "meta" },
          ` · ${t("自 {time} 起", { time: formatTime(c.started_at) })}`) : null),
      el("div", { class: "actions" }, actionButton("end_consultation", t("结束"), a)));
  }));
}

function renderHands() {
  const raised = S.participants.filter((p) => p.hand_raised && p.present
    && p.participant_id !== S.participantId);
  $("console-hands").hidden = raised.length === 0;
  $("hands-count").textContent = String(raised.length);
  $("hands").replaceChildren(...raised.map((p) => el("li", { dataset: { participantId: p.participant_id } },
    el("span", { class: "name" }, p.name), " ", el("span", { class: "role" }, roleLabel(p.role)))));
}

// -- roster ---------------------------------------------------------------------------------

function signal() {
  const node = el("span", { class: "signal", role: "img" });
  for (let i = 1; i <= 4; i++) node.append(el("i", { class: `bar bar-${i}` }));
  return node;
}

function renderSignal(row, pid) {
  const node = row.querySelector(".signal");
  if (!node) return;
  const q = S.quality.get(pid);
  const seat = row.seat;
  const grade = q ? q.grade || "unknown" : "unknown";
  node.dataset.grade = q ? grade : "none";
  node.dataset.bars = String(GRADE_BARS[grade] ?? 0);
  const gradeText = { good: t("良好"), fair: t("一般"), poor: t("较差"), unknown: t("未知") }[grade];
  const label = q
    ? t("连接{grade}：往返 {rtt} 毫秒，丢包 {loss}%，收 {kin} kbps，发 {kout} kbps", {
      grade: gradeText, rtt: q.rtt_ms ?? "—", loss: q.loss_pct ?? "—",
      kin: q.kbps_in ?? "—", kout: q.kbps_out ?? "—" })
    : seat && seat.present && seat.admitted ? t("暂无连接质量数据") : t("未连接");
  node.title = label;
  node.setAttribute("aria-label", label);
  // What the participant's link cannot carry is sent at a lower frame rate or held back
  // (their audio never is): the court knows they do not see everyone, or not smoothly.
  const reduced = (q && q.videos_reduced) || [];
  const held = q && (q.videos_held > 0 || reduced.length > 0);
  let tag = row.querySelector(".tag.held");
  if (held && !tag) {
    tag = el("span", { class: "tag held" });
    row.querySelector(".flags").append(tag);
  }
  if (held) {
    const parts = reduced.map((v) => t("{name}的视频降为 {fps} 帧/秒", {
      name: nameOf(v.participant_id) || "…", fps: v.fps }));
    if (q.videos_held > 0) parts.push(t("{n} 路视频暂停", { n: q.videos_held }));
    tag.textContent = t("网络较弱：{what}，声音优先", { what: parts.join(t("，")) });
    tag.title = q.downlink_kbps != null
      ? t("估计下行 {kbps} kbps", { kbps: q.downlink_kbps }) : "";
  } else if (tag) {
    tag.remove();
  }
}

// Whom an interpreter interprets for: "为被告人 张某翻译" (the party joined or not).
function interpreting(p) {
  if (!p.interprets_for_id) return null;
  const party = [...S.participants, ...S.expected]
    .find((x) => x.participant_id === p.interprets_for_id);
  return party ? el("span", { class: "interprets-for", dataset: { partyId: party.participant_id } },
    t("为{role} {name}翻译", { role: roleLabel(party.role), name: party.name })) : null;
}

function flags(p) {
  const out = [];
  const tag = (text, kind = "") => out.push(el("span", { class: `tag ${kind}` }, text));
  if (p.expected_only) tag(t("尚未加入"), "away");
  else if (!p.present) tag(t("未在线"), "away");
  else if (!p.admitted) tag(t("候审"), "lobby");
  if (consultationOf(p.participant_id)) tag(t("私下会见中"), "consult");
  if (p.muted_by_court) tag(t("已禁言"), "muted");
  else if (p.muted_self) tag(t("自行静音"), "muted");
  if (p.hand_raised) tag(t("已举手"), "hand");
  if (p.screen_sharing) tag(t("正在共享屏幕"));
  if (p.camera_off) tag(t("摄像头关闭"));
  if (checked(p)) {
    const identity = p.identity || "unchecked";
    const text = { verified: t("身份已核验"), refused: t("身份核验未通过"),
      unchecked: t("待核验身份") }[identity];
    out.push(el("span", { class: `tag identity ${identity}`, dataset: { identity },
      title: p.identity_reason || "" }, text));
  }
  if (p.present && p.admitted && p.connection && p.connection !== "connected") {
    const word = { new: t("连接中"), connecting: t("连接中"), disconnected: t("连接中断"),
      failed: t("连接失败"), closed: t("已断开") }[p.connection] || p.connection;
    tag(word, `conn ${p.connection}`);
  }
  return out;
}

// Whose identity the court checks: not its own, not observers.
const checked = (p) => p.role !== "observer" && !CONTROL_ROLES.has(p.role);

function rosterRow(p) {
  const button = (action, label, enabled, kind = "") => {
    const b = actionButton(action, label, p.participant_id, kind);
    b.disabled = !enabled;
    return b;
  };
  const observer = p.role === "observer";
  // Only the judge may remove the judge or the clerk (the server says so too).
  const mayRemove = S.role === "judge" || !CONTROL_ROLES.has(p.role);
  const witness = p.role === "witness";
  const actions = el("div", { class: "actions" },
    // A witness waits outside and is called in to testify, sent out again or released.
    p.admitted ? null : button("admit", witness ? t("传唤入庭") : t("准许进入"), p.present, "primary"),
    witness && p.admitted ? button("send_out", t("请出候传"), true) : null,
    witness ? button("release", t("作证完毕"), p.present || p.admitted) : null,
    observer ? null : p.muted_by_court
      ? button("unmute", t("解除禁言"), true)
      : button("mute", t("禁言"), true),
    // A warning is logged: leaving after warnings is what the law calls walking out.
    observer || CONTROL_ROLES.has(p.role) ? null : button("warn", t("警告"), p.present),
    checked(p) ? button("verify_identity", t("核验通过"),
      p.present && !p.camera_off && !p.screen_sharing) : null,
    checked(p) ? refuseButton(p) : null,
    mayRemove ? button("remove", t("请出"), p.present || p.admitted, "danger") : null);
  if (p.expected_only) actions.replaceChildren();
  return [
    el("div", { class: "row-head" },
      signal(),
      el("span", { class: "name" }, p.name),
      el("span", { class: "role" }, roleLabel(p.role)),
      interpreting(p),
      p.location ? el("span", { class: "loc" }, locationLabel(p.location)) : null),
    el("div", { class: "flags" }, ...flags(p)),
    actions,
  ];
}

// One row per participant, updated in place (a row being clicked is not rebuilt needlessly).
function renderList(list, people) {
  const rows = new Map([...list.children].map((li) => [li.dataset.participantId, li]));
  const keep = new Set();
  people.forEach((p, index) => {
    keep.add(p.participant_id);
    const signature = JSON.stringify([p, consultationOf(p.participant_id),
      document.documentElement.lang]);
    let row = rows.get(p.participant_id);
    if (!row) row = el("li", { dataset: { participantId: p.participant_id } });
    row.seat = p;
    if (row.dataset.signature !== signature) {
      row.dataset.signature = signature;
      row.replaceChildren(...rosterRow(p));
    }
    row.classList.toggle("away", !p.present);
    row.classList.toggle("speaking", S.speakers.active === p.participant_id);
    renderSignal(row, p.participant_id);
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
  });
  for (const [pid, row] of rows) if (!keep.has(pid)) row.remove();
}

function renderRoster() {
  const seated = new Set(S.participants.map((p) => p.participant_id));
  // Everyone the hearing expects is listed, joined or not (identity checks go through all).
  const absent = S.expected.filter((p) => !seated.has(p.participant_id))
    .map((p) => ({ ...p, present: false, admitted: false, expected_only: true }));
  const others = [...S.participants, ...absent].filter((p) => p.participant_id !== S.participantId);
  const people = others.filter((p) => p.role !== "observer").sort(byRole);
  const observers = others.filter((p) => p.role === "observer").sort(byRole);
  renderList($("roster"), people);
  renderList($("observers"), observers);
  $("console-observers").hidden = observers.length === 0;
  $("roster-count").textContent = t("{present}/{total} 在线", {
    present: people.filter((p) => p.present).length, total: people.length });
}

export function setupConsole() {
  const confirm = $("confirm-close");
  for (const button of document.querySelectorAll("[data-command]")) {
    button.addEventListener("click", () => {
      // Closing seals the record and ends the hearing for everyone: ask once more.
      if (button.dataset.command === "close") {
        confirm.hidden = false;
        confirm.querySelector("[data-confirm]").focus();
      } else {
        send(button.dataset.command);
      }
    });
  }
  confirm.querySelector("[data-confirm]").addEventListener("click", () => {
    confirm.hidden = true;
    send("close");
  });
  confirm.querySelector("[data-cancel]").addEventListener("click", () => { confirm.hidden = true; });
  $("open-signing").addEventListener("click", () => send("open_signing"));
}

onRender(() => {
  const panel = $("console");
  panel.hidden = !isControl();
  if (panel.hidden) return;
  renderCommands();
  renderLag();
  renderConsultations();
  renderHands();
  renderRoster();
});

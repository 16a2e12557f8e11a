// Reading and signing a closed hearing's trial record (/sign/{hearing}#{join token}), or at a
// recess the judge chose the record so far: the lines with a replay of the recording at each,
// corrections asked for and decided, who has signed, and the participant's own signature drawn
// on a canvas, for the exact version shown. The last digits of their ID number, when the court
// has them, go with a signature or a refusal. `?kiosk=1` (a prison terminal): back to the
// hearing (at a recess) or the terminal's page once signed or refused.
import { formatCourt } from "/static/court-time.js";
import { lang, t } from "/static/i18n.js";
import { CONTROL_ROLES, roleLabel } from "/static/labels.js";
import { $, el } from "/static/staff/common.js";

const API = "/api/v1";
const hearingId = document.body.dataset.hearingId;
// The join token comes in the fragment (never sent to the server); kept for this tab only, so
// that a reload still works once it has left the address bar.
const KEY = `tingshen.sign.${hearingId}`;
const token = (() => {
  const given = decodeURIComponent(location.hash.slice(1));
  try {
    if (given) sessionStorage.setItem(KEY, given);
    history.replaceState(null, "", location.pathname);
    return given || sessionStorage.getItem(KEY) || "";
  } catch {
    return given;
  }
})();
const base = `${API}/hearings/${hearingId}/signing`;
const S = { state: null, inked: false, me: null };
const kiosk = document.body.dataset.kiosk === "1";
const KIOSK_BACK_S = 20;
const DIGITS = /^[0-9]{3}[0-9Xx]$/;
let backTimer = null;

async function api(path, body = undefined) {
  const reply = await fetch(base + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json",
      ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error((data.error && data.error.message) || `HTTP ${reply.status}`);
  return data;
}

const status = (text, kind = "") => {
  $("sign-status").textContent = text;
  $("sign-status").dataset.kind = kind;
};
const clock = (s) => {
  const v = Math.max(0, Math.floor(s));
  const two = (n) => String(n).padStart(2, "0");
  return `${two(Math.floor(v / 3600))}:${two(Math.floor((v % 3600) / 60))}:${two(v % 60)}`;
};
const when = (iso) => formatCourt(iso, lang === "en" ? "en-GB" : "zh-CN",
  { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const STATUS = { pending: "待签署", signed: "已签署", stale: "已签署旧版本，需重新签署",
  refused: "拒绝签署" };
const REQUEST = { pending: "待处理", accepted: "已采纳", refused: "未采纳" };

function render() {
  const st = S.state;
  const me = st.signers.find((s) => s.participant_id === st.you) || null;
  S.me = me;
  const court = me && CONTROL_ROLES.has(me.role);
  $("sign-version").textContent = t("第 {n} 版 · 校验码 {sha}", { n: st.version,
    sha: st.record_sha256.slice(0, 16) });
  $("sign-final").hidden = !st.final;
  $("sign-stage").hidden = st.stage !== "recess";
  $("sign-final").textContent = st.final
    ? t("笔录已生效（{at}）：各方均已签署或拒签。", { at: when(st.final_at) }) : "";

  $("lines").replaceChildren(...st.lines.map((line) => el("li", { dataset: { lineId: line.id } },
    el("button", { type: "button", class: "at", title: t("回放此处录像"),
      onclick: () => replay(line.start) }, clock(line.start)),
    el("span", { class: "who" }, `${roleLabel(line.role)} ${line.participant}`),
    el("span", { class: "text" }, line.text),
    me && !st.final ? el("button", { type: "button", class: "ask", dataset: { action: "ask" },
      onclick: (e) => askCorrection(line, e.target.closest("li")) }, t("申请更正")) : null)));

  $("lines-empty").hidden = st.lines.length > 0;
  $("corrections-empty").hidden = st.corrections.length > 0;
  $("corrections").replaceChildren(...st.corrections.map((r) => {
    const line = st.lines.find((l) => l.id === r.line_id);
    const who = st.signers.find((s) => s.participant_id === r.participant_id);
    return el("li", { dataset: { requestId: r.id, status: r.status } },
      el("p", {}, t("{who} 申请将 {at} 处更正为：{text}", { who: who ? who.name : "",
        at: line ? clock(line.start) : "", text: r.text })),
      r.reason ? el("p", { class: "muted" }, t("理由：{reason}", { reason: r.reason })) : null,
      el("p", { class: `req ${r.status}` }, t(REQUEST[r.status]),
        r.decision_reason ? `（${r.decision_reason}）` : ""),
      court && r.status === "pending" && !st.final ? el("div", { class: "sign-actions" },
        el("button", { type: "button", class: "primary", dataset: { action: "accept" },
          onclick: () => decide(r, true) }, t("采纳")),
        el("button", { type: "button", dataset: { action: "refuse-correction" },
          onclick: () => decide(r, false) }, t("不予采纳"))) : null);
  }));

  $("signers").replaceChildren(...st.signers.map((s) => el("li",
    { dataset: { participantId: s.participant_id, status: s.status } },
    el("span", { class: "who" }, `${roleLabel(s.role)} ${s.name}`),
    el("span", { class: `tag ${s.status}` }, t(STATUS[s.status])),
    s.at ? el("span", { class: "muted" }, when(s.at)) : null,
    s.reason ? el("span", { class: "muted" }, `（${s.reason}）`) : null,
    court && s.participant_id !== st.you && !st.final && s.status !== "signed"
      && s.status !== "refused" ? el("button", { type: "button",
        dataset: { action: "note-refusal" }, onclick: () => refuse(s) }, t("记录拒签")) : null)));

  const pad = $("my-signature");
  pad.hidden = !me || st.final || me.status === "signed" || me.status === "refused";
  $("sign-confirm-text").textContent = t(
    "本人已阅读以上庭审笔录（第 {n} 版，校验码 {sha}），确认无误并签名。",
    { n: st.version, sha: st.record_sha256.slice(0, 16) });
  const waiting = court && st.signers.some((s) => !CONTROL_ROLES.has(s.role)
    && s.status !== "signed" && s.status !== "refused");
  $("sign-wait").hidden = !waiting;
  $("sign-submit").disabled = !S.inked || waiting;
  $("sign-digits-row").hidden = pad.hidden || !st.id_digits;
  renderKiosk(me);
}

// At a kiosk the detainee cannot type an address: once done, the screen goes back by itself.
function renderKiosk(me) {
  if (!kiosk) return;
  const recess = S.state.stage === "recess";
  const done = S.state.final || !me || me.status === "signed" || me.status === "refused";
  $("sign-kiosk").hidden = false;
  $("sign-back").textContent = recess ? t("返回庭审") : t("返回终端首页");
  if (!done || backTimer !== null) return;
  let left = KIOSK_BACK_S;
  const tick = () => {
    $("sign-back-count").textContent = t("{n} 秒后自动返回", { n: left });
    if (left <= 0) back();
    left -= 1;
  };
  tick();
  backTimer = setInterval(tick, 1000);
}

function back() {
  clearInterval(backTimer);
  location.replace(S.state && S.state.stage === "recess"
    ? `/join/${encodeURIComponent(token)}?kiosk=1` : "/terminal");
}

// The ID number's last digits, when the court has them: null when they are asked for and not
// (well) typed, which the page says.
function digits(body) {
  if (!S.state.id_digits) return body;
  const typed = $("sign-digits").value.trim();
  if (!DIGITS.test(typed)) {
    status(t("请先输入身份证号码后四位（最后一位可为 X）。"), "error");
    $("sign-digits").focus();
    return null;
  }
  return { ...body, id_digits: typed };
}

async function load() {
  S.state = await api("");
  render();
}

async function act(work, done) {
  try {
    S.state = await work();
    render();
    status(done, "ok");
  } catch (e) {
    status(e.message, "error");
    await load().catch(() => {});
  }
}

function askCorrection(line, item) {
  if (item.querySelector("form")) return;
  const text = el("textarea", { name: "text", rows: "2", maxlength: "4000" });
  text.value = line.text;
  const reason = el("input", { name: "reason", maxlength: "500", placeholder: t("理由（可选）") });
  const form = el("form", { class: "ask-form" }, text, reason,
    el("button", { type: "submit", class: "primary" }, t("提交更正申请")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { line_id: line.id, text: text.value.trim() };
    if (reason.value.trim()) body.reason = reason.value.trim();
    act(() => api("/corrections", body), t("已提交更正申请，书记员将处理。"));
  });
  item.append(form);
  text.focus();
}

function decide(request, accept) {
  const body = { accept };
  if (!accept) {
    const reason = (window.prompt(t("不予采纳的理由（将记入笔录）")) || "").trim();
    if (!reason) return;
    body.reason = reason;
  }
  act(() => api(`/corrections/${request.id}`, body), accept ? t("已采纳更正。") : t("已记录不予采纳。"));
}

function refuse(signer = null) {
  const reason = (window.prompt(signer ? t("{name}拒绝签署的理由", { name: signer.name })
    : t("拒绝签署的理由（将记入笔录）")) || "").trim();
  if (!reason) return;
  let body = { reason };
  if (signer) body.participant_id = signer.participant_id;
  else body = digits(body);
  if (body === null) return;
  act(() => api("/refusal", body), t("已记录拒绝签署。"));
}

// The signature pad: strokes drawn with a mouse, a finger or a pen.
function setupPad() {
  const canvas = $("pad");
  const ctx = canvas.getContext("2d");
  ctx.lineWidth = 3;
  ctx.lineCap = "round";
  ctx.strokeStyle = "#111";
  let drawing = false;
  const at = (e) => {
    const box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * (canvas.width / box.width),
      (e.clientY - box.top) * (canvas.height / box.height)];
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    ctx.beginPath();
    ctx.moveTo(...at(e));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    ctx.lineTo(...at(e));
    ctx.stroke();
    S.inked = true;
    render();
  });
  const stop = () => { drawing = false; };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("pad-clear").addEventListener("click", () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    S.inked = false;
    render();
  });
  $("sign-submit").addEventListener("click", () => {
    const png = canvas.toDataURL("image/png").split(",", 2)[1];
    const body = digits({ record_sha256: S.state.record_sha256, signature_png: png });
    if (body === null) return;
    act(() => api("/signature", body), t("已签名。"));
  });
  $("sign-refuse").addEventListener("click", () => refuse());
  $("sign-back").addEventListener("click", back);
}

// The recording, through a short-lived signed link (a player cannot send the token).
async function setupPlayer() {
  try {
    const reply = await fetch(`${API}/hearings/${hearingId}/links`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ path: `${base}/recording` }),
    });
    if (!reply.ok) throw new Error();
    const { url } = await reply.json();
    const player = $("player");
    player.addEventListener("loadedmetadata", () => {
      player.hidden = false;
      $("player-empty").textContent = "";
    }, { once: true });
    player.addEventListener("error", () => {
      $("player-empty").textContent = t("录像正在生成，稍后刷新本页即可回放。");
    }, { once: true });
    player.src = url;
  } catch {
    $("player-empty").textContent = t("录像正在生成，稍后刷新本页即可回放。");
  }
}

function replay(seconds) {
  const player = $("player");
  if (player.hidden) return;
  player.currentTime = seconds;
  player.play().catch(() => {});
}

async function start() {
  if (!token) throw new Error(t("链接不完整：请使用法院发给您的完整链接。"));
  await load();
  $("app").hidden = false;
  setupPad();
  render();
  if (S.state.recording) await setupPlayer();
  else $("player-empty").textContent = t("录像正在生成，稍后刷新本页即可回放。");
}

start().catch((e) => {
  $("sign-error").hidden = false;
  $("sign-error-text").textContent = e.message;
  // A kiosk never stays on a page that cannot be used.
  if (kiosk) setTimeout(() => location.replace("/terminal"), KIOSK_BACK_S * 1000);
});
window.addEventListener("langchange", () => { if (S.state) render(); });

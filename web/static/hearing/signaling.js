// The WebSocket side of protocol v1 (docs/signaling.md): join with the token, keep the seat
// across reconnections (with backoff), and put what the server says into the page's state.
import { t } from "/static/i18n.js";
import { status } from "/static/hearing/dom.js";
import { dropPeer, onOffer } from "/static/hearing/media.js";
import { showCaption, setRecord, settleRecordLine } from "/static/hearing/room.js";
import { consultationsChanged } from "/static/hearing/consult.js";
import { ID_DIGITS_ERRORS, askIdDigits } from "/static/hearing/id-digits.js";
import { S, nameOf, render, send } from "/static/hearing/state.js";

const CLOSE_ENDED = 4000;
const CLOSE_REMOVED = 4001;
const CLOSE_REPLACED = 4002;
const CLOSE_RELEASED = 4003; // a witness whose testimony is done
// The hearing is going to another server process (a drained or lost one): say so, not "lost".
const CLOSE_SERVICE_RESTART = 1012;
const CLOSE_HOLDER_LOST = 4503;
const FATAL_ERRORS = new Set(["access_denied"]);
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;

let queue = Promise.resolve();

export function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  S.ws = ws;
  S.connected = false;
  let configured;
  S.configReady = new Promise((resolve) => { configured = resolve; });
  ws.addEventListener("open", () => send({
    type: "join", v: 1, token: S.token, device: clientId(localStorage, "tingshen.device"),
    session: clientId(sessionStorage, "tingshen.session"),
    ...(S.idDigits ? { id_digits: S.idDigits } : {}),
  }));
  ws.addEventListener("message", (event) => {
    if (ws !== S.ws) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    // ICE servers must be known before the first offer is applied: take them at once.
    if (message.type === "config") {
      S.iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
      configured();
      return;
    }
    queue = queue.then(() => handle(message)).catch((e) => {
      console.error("handling", message.type, e);
      status(`${t("出错")}：${e.message || e}`, "error");
    });
  });
  ws.addEventListener("close", (event) => onClose(ws, event));
  render();
}

function onClose(ws, event) {
  if (ws !== S.ws) return;
  S.ws = null;
  S.connected = false;
  if (event.code === CLOSE_HOLDER_LOST || event.code === CLOSE_SERVICE_RESTART) S.serverMoved = true;
  dropPeer();
  if (event.code === CLOSE_ENDED) {
    S.ended = true;
  } else if (event.code === CLOSE_REMOVED || event.code === CLOSE_RELEASED) {
    S.ended = true;
    S.endedReason = S.endedReason || (event.code === CLOSE_RELEASED
      ? t("作证完毕，法庭已准许您退庭") : t("您已被请出庭审"));
  } else if (event.code === CLOSE_REPLACED) {
    S.fatal = true;
    S.endedReason = t("您已在其他窗口加入本庭审，此窗口已断开。");
  }
  if (S.ended || S.fatal || S.leaving) {
    S.reconnecting = false;
    render();
    return;
  }
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** S.retries) * (0.75 + Math.random() / 2);
  S.retries += 1;
  S.reconnecting = true;
  render();
  setTimeout(connect, delay);
}

// This browser's random id in `storage` (made once): an identity check holds for the device
// (localStorage) and the browser session (sessionStorage) it was made on; a reconnect keeps
// both, a new device or session is checked again. Without storage, one per page.
const PAGE_IDS = {};
function clientId(storage, key) {
  try {
    let id = storage.getItem(key);
    if (!id) {
      id = randomId();
      storage.setItem(key, id);
    }
    return id;
  } catch {
    PAGE_IDS[key] = PAGE_IDS[key] || randomId();
    return PAGE_IDS[key];
  }
}

// 128 random bits as hex. Not crypto.randomUUID: a court's server on a plain-http intranet
// address is no secure context, where only getRandomValues exists.
function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function handle(message) {
  switch (message.type) {
    case "welcome":
      S.retries = 0;
      S.connected = true;
      S.reconnecting = false;
      S.serverMoved = false;
      S.me = message.participant;
      S.participants = message.participants || [];
      S.expected = message.expected || []; // the court's: everyone the hearing expects
      S.hearingState = message.hearing.state;
      S.interruptedAt = message.hearing.interrupted_at || null;
      S.signingOpen = !!message.hearing.signing_open;
      S.hearingId = message.hearing.id || S.hearingId;
      S.admitted = !!S.me.admitted;
      S.handRaised = !!S.me.hand_raised;
      // The seat outlives the socket; what this page holds is what counts.
      if (S.admitted && S.me.muted_self !== S.micMuted) send({ type: "mute", muted: S.micMuted });
      if (S.admitted && !!S.me.camera_off !== S.cameraOff) send({ type: "camera", off: S.cameraOff });
      // A new socket: the screen is no longer announced as shared until we say so again.
      if (S.admitted && S.screen) send({ type: "screen", sharing: true });
      break;
    case "participants":
      S.participants = message.participants || [];
      updateMe();
      break;
    case "hearing":
      S.hearingState = message.state;
      if (message.state !== "recess") {
        S.interruptedAt = null; // the court has decided
        S.signingOpen = false; // a recess's signing ends with it
      }
      break;
    case "signing":
      S.signingOpen = !!message.open;
      if (S.role !== "observer") status(t("法官已开放休庭签署：请阅读并签署截至目前的庭审笔录"));
      break;
    case "admitted":
      S.admitted = true;
      if (S.micMuted) send({ type: "mute", muted: true });
      if (S.cameraOff) send({ type: "camera", off: true });
      status(t("法官已准许您进入庭审"));
      break;
    case "offer":
      await onOffer(message);
      break;
    case "slots":
      S.slots = message.slots || [];
      break;
    case "removed":
      S.ended = true;
      S.endedReason = message.released ? t("作证完毕，法庭已准许您退庭")
        : `${t("您已被请出庭审")}${message.reason ? `（${message.reason}）` : ""}`;
      break;
    case "sent_out":
      // A witness sent back outside: no media, no captions, until the court calls again.
      S.admitted = false;
      dropPeer();
      status(t("法庭请您在庭外等候传唤"), "info");
      break;
    case "bye":
      status(t("您已在其他窗口加入本庭审，此窗口已断开。"), "error");
      break;
    case "error":
      onError(message);
      break;
    case "record_line":
      settleRecordLine(message);
      break;
    case "caption":
      showCaption(message);
      break;
    case "record":
      setRecord(message.lines || []);
      break;
    case "speakers":
      S.speakers = { active: message.active || null, speaking: message.speaking || [] };
      break;
    case "quality":
      S.quality = new Map((message.participants || []).map((q) => [q.participant_id, q]));
      break;
    case "transcription":
      S.transcription = { ...message, at: Date.now() };
      break;
    case "consultations":
      consultationsChanged({ requests: message.requests || [], active: message.active || [] });
      break;
    case "exhibit":
      S.exhibit = { exhibit: message.exhibit || null, page: message.page || 1,
        presenter_id: message.presenter_id || null };
      break;
    case "alert":
      if (message.code === "recording_gap") S.recordingGaps.add(message.participant_id);
      if (message.code === "recording_gap_ended") S.recordingGaps.delete(message.participant_id);
      if (message.code === "warning") {
        // The court warned this participant: in its own words, kept in the audit.
        status(t("法庭警告：{text}", { text: message.message }), "warn");
        break;
      }
      status(`${t("庭审告警")}：${alertText(message)}`, ALERT_KINDS[message.code] || "error");
      break;
    case "warned":
      status(t("已警告 {name}", { name: nameOf(message.participant_id) }), "info");
      break;
    default:
      break;
  }
  render();
}

// The record's alerts in the court's own words; others carry the server's message.
const ALERT_KINDS = { record_resumed: "info", record_caught_up: "info", record_recovered: "info",
  record_behind: "warn", recording_gap_ended: "info" };

function hearingTime(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:`
    + String(s % 60).padStart(2, "0");
}

function alertText(message) {
  switch (message.code) {
    case "record_stopped":
      return t("庭审笔录已于 {at} 停止记录，此后的发言将依据录音补录", { at: hearingTime(message.at) });
    case "record_resumed":
      return t("庭审笔录已于 {at} 恢复记录", { at: hearingTime(message.at) });
    case "record_behind":
      return t("庭审笔录落后于发言 {s} 秒，内容不会丢失，稍后补上",
        { s: Math.round(Number(message.lag_seconds) || 0) });
    case "record_caught_up":
      return t("庭审笔录已跟上发言");
    case "recording_gap":
      return t("{name} 的录音录像已中断：超过 {s} 秒未收到其声音",
        { name: nameOf(message.participant_id), s: 3 });
    case "recording_gap_ended":
      return t("{name} 的录音录像已恢复（中断 {s} 秒）",
        { name: nameOf(message.participant_id), s: Math.round(Number(message.seconds) || 0) });
    case "record_recovered":
      return t("{start} 至 {end} 的发言已依据录音补录（{lines} 行）", {
        start: hearingTime(message.start), end: hearingTime(message.end), lines: message.lines });
    default:
      return message.message;
  }
}

function updateMe() {
  if (!S.me) return;
  const seat = S.participants.find((p) => p.participant_id === S.me.participant_id);
  if (!seat) return;
  const wasMutedByCourt = S.me.muted_by_court;
  S.me = seat;
  if (seat.admitted) S.admitted = true;
  S.handRaised = seat.hand_raised;
  if (seat.muted_by_court && !wasMutedByCourt) status(t("法庭已将您禁言"), "warn");
  if (!seat.muted_by_court && wasMutedByCourt) status(t("法庭已解除对您的禁言"));
}

function onError(message) {
  if (ID_DIGITS_ERRORS.has(message.code)) {
    // Not joined: this socket goes quietly (no reconnecting), and a new one joins with the
    // digits once they are typed.
    const ws = S.ws;
    S.ws = null;
    S.connected = false;
    S.reconnecting = false;
    if (ws) ws.close(1000);
    askIdDigits(message).then(connect);
    return;
  }
  // The server's own words, with its code: they name the problem exactly.
  const text = `${message.code}: ${message.message}`;
  if (message.code === "hearing_finished") {
    S.ended = true;
    S.endedReason = message.message;
  } else if (FATAL_ERRORS.has(message.code)) {
    S.fatal = true;
    S.endedReason = text;
  }
  status(`${t("错误")} — ${text}`, "error");
}

export function leave() {
  S.leaving = true;
  send({ type: "leave" });
}

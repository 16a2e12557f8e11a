// The WebSocket side of protocol v1 (docs/signaling.md): join with the token, keep the seat
// across reconnections (with backoff), and put what the server says into the page's state.
import { t } from "/static/i18n.js";
import { status } from "/static/hearing/dom.js";
import { dropPeer, onOffer } from "/static/hearing/media.js";
import { showCaption, setRecord } from "/static/hearing/room.js";
import { consultationsChanged } from "/static/hearing/consult.js";
import { S, render, send } from "/static/hearing/state.js";

const CLOSE_ENDED = 4000;
const CLOSE_REMOVED = 4001;
const CLOSE_REPLACED = 4002;
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
  ws.addEventListener("open", () => send({ type: "join", v: 1, token: S.token }));
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
  } else if (event.code === CLOSE_REMOVED) {
    S.ended = true;
    S.endedReason = S.endedReason || t("您已被请出庭审");
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

async function handle(message) {
  switch (message.type) {
    case "welcome":
      S.retries = 0;
      S.connected = true;
      S.reconnecting = false;
      S.serverMoved = false;
      S.me = message.participant;
      S.participants = message.participants || [];
      S.hearingState = message.hearing.state;
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
      S.endedReason = `${t("您已被请出庭审")}${message.reason ? `（${message.reason}）` : ""}`;
      break;
    case "bye":
      status(t("您已在其他窗口加入本庭审，此窗口已断开。"), "error");
      break;
    case "error":
      onError(message);
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
      status(`${t("庭审告警")}：${message.message}`, "error");
      break;
    default:
      break;
  }
  render();
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

// The participant's live hearing page: signaling protocol v1 (docs/signaling.md) in the browser.
// The server is always the offerer; this page answers, publishes mic and camera, and shows one
// tile per remote participant from the server's slots.

const ROLE_ZH = {
  judge: "审判员", clerk: "书记员", prosecutor: "公诉人", defendant: "被告人", lawyer: "律师",
  party: "当事人", witness: "证人", interpreter: "翻译人员", observer: "旁听/监督",
};
const STATE_ZH = {
  scheduled: "已排期", open: "候审中", in_session: "庭审中", recess: "休庭",
  closed: "已闭庭", cancelled: "已取消",
};
const FINISHED = new Set(["closed", "cancelled"]);
const CONTROL_ROLES = new Set(["judge", "clerk"]);
// Which hearing command each state allows (courtrooms/lifecycle.py); the server decides anyway.
const COMMANDS_IN = {
  open: ["scheduled"], start: ["open"], recess: ["in_session"], resume: ["recess"],
  close: ["in_session", "recess"],
};
const CLOSE_ENDED = 4000;
const CLOSE_REMOVED = 4001;
const CLOSE_REPLACED = 4002;
const FATAL_ERRORS = new Set(["access_denied"]);
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const CONFIG_WAIT_MS = 2000;

const body = document.body;
const $ = (id) => document.getElementById(id);

const S = {
  token: body.dataset.token,
  ws: null,
  pc: null,
  slots: [],
  participants: [],
  me: null, // my seat
  hearingState: body.dataset.hearingState || "scheduled",
  admitted: false,
  ended: false,
  endedReason: "",
  fatal: false,
  iceServers: [],
  configReady: null, // resolved by this connection's `config` message
  local: null, // MediaStream from getUserMedia, or null
  micMuted: false,
  cameraOff: false,
  handRaised: false,
  retries: 0,
  reconnectTimer: null,
  leaving: false,
  queue: Promise.resolve(),
};

window.tingshen = {
  get pc() { return S.pc; },
  get ws() { return S.ws; },
  get slots() { return S.slots; },
  get participants() { return S.participants; },
  get me() { return S.me; },
  get hearingState() { return S.hearingState; },
};

// -- small DOM helpers -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "class") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v != null) node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child != null) node.append(child);
  }
  return node;
}

// Chinese first, English smaller.
function bi(zh, en) {
  const frag = document.createDocumentFragment();
  frag.append(zh + " ", el("small", { lang: "en" }, en));
  return frag;
}

function setLabel(node, zh, en) {
  node.replaceChildren(bi(zh, en));
}

function roleLabel(role) {
  return bi(ROLE_ZH[role] || role, role);
}

function status(zh, en, kind = "info") {
  const line = $("status");
  line.replaceChildren(en ? bi(zh, en) : zh);
  line.dataset.kind = kind;
}

// -- page state --------------------------------------------------------------------------------

function pageState() {
  if (S.fatal) return "error";
  if (S.ended || FINISHED.has(S.hearingState)) return "ended";
  if (!S.admitted) return "lobby";
  return S.hearingState === "recess" ? "recess" : "live";
}

function render() {
  const state = pageState();
  if (body.dataset.state !== state) body.dataset.state = state;
  body.dataset.hearingState = S.hearingState;
  const hs = S.hearingState;
  $("state").replaceChildren(bi(STATE_ZH[hs] || hs, hs));
  $("ended-reason").textContent = S.endedReason;
  renderPresent();
  renderRoster();
  renderControls();
  renderTiles();
}

function renderPresent() {
  const list = $("present");
  const present = S.participants.filter((p) => p.present);
  list.replaceChildren(...present.map((p) =>
    el("li", { dataset: { participantId: p.participant_id } },
      el("span", { class: "name" }, p.name), " · ", roleLabel(p.role),
      p.admitted ? null : el("span", { class: "tag" }, bi("候审", "waiting")))));
}

function renderControls() {
  const mute = $("btn-mute");
  mute.setAttribute("aria-pressed", String(S.micMuted));
  if (S.micMuted) setLabel(mute, "取消静音", "Unmute");
  else setLabel(mute, "静音", "Mute");
  const cam = $("btn-camera");
  cam.setAttribute("aria-pressed", String(S.cameraOff));
  if (S.cameraOff) setLabel(cam, "打开摄像头", "Camera on");
  else setLabel(cam, "关闭摄像头", "Camera off");
  const hand = $("btn-hand");
  hand.setAttribute("aria-pressed", String(S.handRaised));
  if (S.handRaised) setLabel(hand, "放下手", "Lower hand");
  else setLabel(hand, "举手", "Raise hand");
  const noAudio = !S.local || S.local.getAudioTracks().length === 0;
  const noVideo = !S.local || S.local.getVideoTracks().length === 0;
  mute.disabled = noAudio;
  cam.disabled = noVideo;
  for (const button of document.querySelectorAll("[data-command]")) {
    button.disabled = !(COMMANDS_IN[button.dataset.command] || []).includes(S.hearingState);
  }
}

// The judge's and clerk's list: one row per other participant, updated in place.
function renderRoster() {
  const panel = $("court-panel");
  const control = S.me && CONTROL_ROLES.has(S.me.role);
  panel.hidden = !control;
  if (!control) return;
  const roster = $("roster");
  const rows = new Map([...roster.children].map((li) => [li.dataset.participantId, li]));
  const others = S.participants.filter((p) => p.participant_id !== S.me.participant_id);
  const keep = new Set();
  others.forEach((p, index) => {
    keep.add(p.participant_id);
    const signature = JSON.stringify(p);
    let row = rows.get(p.participant_id);
    if (!row) {
      row = el("li", { dataset: { participantId: p.participant_id } });
    }
    if (row.dataset.signature !== signature) {
      row.dataset.signature = signature;
      row.replaceChildren(...rosterRow(p));
    }
    if (roster.children[index] !== row) roster.insertBefore(row, roster.children[index] || null);
  });
  for (const [pid, row] of rows) if (!keep.has(pid)) row.remove();
}

function rosterRow(p) {
  const flags = el("span", { class: "flags" });
  if (!p.present) flags.append(el("span", { class: "tag away" }, bi("未在线", "away")));
  else if (!p.admitted) flags.append(el("span", { class: "tag lobby" }, bi("候审", "in lobby")));
  if (p.muted_by_court) flags.append(el("span", { class: "tag" }, bi("已禁言", "muted by court")));
  else if (p.muted_self) flags.append(el("span", { class: "tag" }, bi("自行静音", "muted")));
  if (p.hand_raised) flags.append(el("span", { class: "tag hand" }, bi("举手", "hand raised")));
  if (p.present && p.admitted) {
    flags.append(el("span", { class: `tag conn ${p.connection}` }, p.connection));
  }
  const button = (action, zh, en, enabled) => {
    const b = el("button", { type: "button", dataset: { action } }, bi(zh, en));
    b.disabled = !enabled;
    b.addEventListener("click", () => command(action, p.participant_id));
    return b;
  };
  const actions = el("span", { class: "actions" },
    p.admitted ? null : button("admit", "准许进入", "Admit", p.present),
    p.muted_by_court
      ? button("unmute", "解除禁言", "Unmute", true)
      : button("mute", "禁言", "Mute", true),
    button("remove", "请出", "Remove", p.present || p.admitted));
  return [el("span", { class: "name" }, p.name), " ", el("span", { class: "role" },
    roleLabel(p.role)), " ", flags, actions];
}

// One tile per participant that a slot currently carries; its video element plays a stream of
// that participant's audio and video tracks.
function renderTiles() {
  const tiles = $("tiles");
  const byParticipant = new Map();
  const transceivers = S.pc ? S.pc.getTransceivers() : [];
  for (const slot of S.slots) {
    if (!slot.participant_id || slot.mid == null) continue;
    const t = transceivers.find((x) => x.mid === slot.mid);
    if (!t || !t.receiver.track) continue;
    if (!byParticipant.has(slot.participant_id)) byParticipant.set(slot.participant_id, []);
    byParticipant.get(slot.participant_id).push(t.receiver.track);
  }
  for (const tile of tiles.querySelectorAll("figure.remote")) {
    if (!byParticipant.has(tile.dataset.participantId)) tile.remove();
  }
  for (const [pid, tracks] of byParticipant) {
    let tile = tiles.querySelector(`figure.remote[data-participant-id="${CSS.escape(pid)}"]`);
    if (!tile) {
      const video = el("video", { autoplay: true, playsinline: true, dataset: { participantId: pid } });
      tile = el("figure", { class: "tile remote", dataset: { participantId: pid } }, video,
        el("figcaption"));
      tiles.append(tile);
    }
    const video = tile.querySelector("video");
    const current = video.srcObject ? video.srcObject.getTracks() : [];
    const same = current.length === tracks.length && tracks.every((t) => current.includes(t));
    if (!same) {
      video.srcObject = new MediaStream(tracks);
      video.play().catch(() => {});
    }
    const seat = S.participants.find((p) => p.participant_id === pid);
    const caption = tile.querySelector("figcaption");
    const signature = JSON.stringify(seat || null);
    if (caption.dataset.signature !== signature) {
      caption.dataset.signature = signature;
      caption.replaceChildren(...[
        el("span", { class: "name" }, seat ? seat.name : "…"), " ",
        seat ? el("span", { class: "role" }, roleLabel(seat.role)) : null,
        seat && seat.muted ? el("span", { class: "tag" }, bi("静音", "muted")) : null,
        seat && seat.hand_raised ? el("span", { class: "tag hand" }, bi("举手", "hand")) : null,
      ].filter((node) => node != null));
    }
  }
}

// -- local media ------------------------------------------------------------------------------

async function getMedia() {
  const attempts = [
    { audio: true, video: { width: 640, height: 360 } },
    { audio: true, video: false },
  ];
  for (const constraints of attempts) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (e) {
      console.warn("getUserMedia", constraints, e);
    }
  }
  status("无法使用摄像头或麦克风", "Camera or microphone unavailable", "error");
  return null;
}

const mediaReady = getMedia().then((stream) => {
  S.local = stream;
  if (stream) {
    $("self-video").srcObject = stream;
    for (const t of stream.getAudioTracks()) t.enabled = !S.micMuted;
    for (const t of stream.getVideoTracks()) t.enabled = !S.cameraOff;
  }
  render();
  return stream;
});

// -- signaling --------------------------------------------------------------------------------

function send(message) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(message));
}

function command(action, participantId) {
  const message = { type: "command", action };
  if (participantId) message.participant_id = participantId;
  send(message);
}

function connect() {
  S.reconnectTimer = null;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  S.ws = ws;
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
    S.queue = S.queue.then(() => handle(message)).catch((e) => {
      console.error("handling", message.type, e);
      status(`出错：${e.message || e}`, "", "error");
    });
  });
  ws.addEventListener("close", (event) => onClose(ws, event));
}

function onClose(ws, event) {
  if (ws !== S.ws) return;
  S.ws = null;
  dropPeer();
  if (event.code === CLOSE_ENDED) {
    S.ended = true;
  } else if (event.code === CLOSE_REMOVED) {
    S.ended = true;
    S.endedReason = S.endedReason || "您已被请出庭审 You were removed from the hearing";
  } else if (event.code === CLOSE_REPLACED) {
    S.fatal = true;
    status("您已在其他窗口加入", "You joined from another window", "error");
  }
  render();
  if (S.ended || S.fatal || S.leaving) return;
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** S.retries) * (0.75 + Math.random() / 2);
  S.retries += 1;
  status("连接中断，正在重新连接…", "Connection lost, reconnecting…", "warn");
  S.reconnectTimer = setTimeout(connect, delay);
}

async function handle(message) {
  switch (message.type) {
    case "welcome":
      S.retries = 0;
      S.me = message.participant;
      S.participants = message.participants || [];
      S.hearingState = message.hearing.state;
      S.admitted = !!S.me.admitted;
      S.handRaised = !!S.me.hand_raised;
      status("已连接", "Connected");
      if (S.admitted && S.me.muted_self !== S.micMuted) send({ type: "mute", muted: S.micMuted });
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
      status("法官已准许您进入", "The judge admitted you");
      break;
    case "offer":
      await onOffer(message);
      break;
    case "slots":
      S.slots = message.slots || [];
      break;
    case "removed":
      S.ended = true;
      S.endedReason = `您已被请出庭审 You were removed: ${message.reason || ""}`;
      break;
    case "bye":
      status("您已在其他窗口加入", "You joined from another window", "error");
      break;
    case "error":
      onError(message);
      break;
    case "caption":
      showCaption(message);
      break;
    case "alert":
      status(`庭审告警：${message.message}`, `Alert: ${message.message}`, "error");
      break;
    default:
      break;
  }
  render();
}

// Live captions: one line per speaker, a partial replaced by the next partial or the final;
// the last few final lines stay.
const CAPTION_LINES = 4;

function showCaption(message) {
  const box = $("captions");
  const key = message.final ? `final-${message.segment_id}` : `partial-${message.participant_id}`;
  const partial = box.querySelector(`[data-partial="${CSS.escape(message.participant_id)}"]`);
  if (partial) partial.remove();
  const line = el("p", { class: message.final ? "caption final" : "caption partial",
                         "data-key": key },
                  el("span", { class: "speaker" }, `${message.name}：`), message.text);
  if (!message.final) line.dataset.partial = message.participant_id;
  box.append(line);
  const finals = box.querySelectorAll(".caption.final");
  for (let i = 0; i < finals.length - CAPTION_LINES; i++) finals[i].remove();
}

function updateMe() {
  if (!S.me) return;
  const seat = S.participants.find((p) => p.participant_id === S.me.participant_id);
  if (!seat) return;
  S.me = seat;
  if (seat.admitted) S.admitted = true;
  S.handRaised = seat.hand_raised;
  if (seat.muted_by_court) status("法庭已将您禁言", "The court muted you", "warn");
}

function onError(message) {
  const text = `${message.code}: ${message.message}`;
  if (message.code === "hearing_finished") {
    S.ended = true;
    S.endedReason = message.message;
  } else if (FATAL_ERRORS.has(message.code)) {
    S.fatal = true;
  }
  status(`错误 Error — ${text}`, "", "error");
}

// -- media negotiation ------------------------------------------------------------------------

async function onOffer(message) {
  const stream = await mediaReady;
  // The server sends `config` right after `welcome`; don't build a peer without its ICE servers.
  await Promise.race([S.configReady, new Promise((r) => setTimeout(r, CONFIG_WAIT_MS))]);
  S.slots = message.slots || [];
  if (!S.pc) S.pc = newPeer(stream);
  const pc = S.pc;
  await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  if (pc !== S.pc) return;
  send({ type: "answer", sdp: pc.localDescription.sdp });
}

function newPeer(stream) {
  const pc = new RTCPeerConnection({ iceServers: S.iceServers, bundlePolicy: "max-bundle" });
  // Before the first offer is applied, so that JSEP puts them on its first audio and video
  // m-sections: those are the ones the server receives (publishing).
  if (stream) for (const track of stream.getTracks()) pc.addTrack(track, stream);
  pc.addEventListener("icecandidate", (event) => {
    if (pc !== S.pc) return;
    const c = event.candidate;
    if (c && c.candidate) {
      send({ type: "ice", candidate: c.candidate, sdp_mid: c.sdpMid,
        sdp_mline_index: c.sdpMLineIndex });
    } else if (!c) {
      send({ type: "ice", candidate: "" });
    }
  });
  pc.addEventListener("track", () => render());
  pc.addEventListener("connectionstatechange", () => {
    if (pc !== S.pc) return;
    if (pc.connectionState === "failed") {
      status("媒体连接失败，正在重建…", "Media connection failed, restarting…", "warn");
      dropPeer();
      send({ type: "media_restart" });
      render();
    } else if (pc.connectionState === "connected") {
      status("已连接", "Connected");
    }
  });
  return pc;
}

function dropPeer() {
  if (S.pc) S.pc.close();
  S.pc = null;
  S.slots = [];
}

// -- controls ---------------------------------------------------------------------------------

$("btn-mute").addEventListener("click", () => {
  S.micMuted = !S.micMuted;
  if (S.local) for (const t of S.local.getAudioTracks()) t.enabled = !S.micMuted;
  if (S.admitted) send({ type: "mute", muted: S.micMuted });
  render();
});

$("btn-camera").addEventListener("click", () => {
  S.cameraOff = !S.cameraOff;
  if (S.local) for (const t of S.local.getVideoTracks()) t.enabled = !S.cameraOff;
  render();
});

$("btn-hand").addEventListener("click", () => {
  S.handRaised = !S.handRaised;
  send({ type: "hand", raised: S.handRaised });
  render();
});

for (const button of document.querySelectorAll("[data-command]")) {
  button.addEventListener("click", () => command(button.dataset.command));
}

window.addEventListener("pagehide", () => {
  S.leaving = true;
  send({ type: "leave" });
});

body.dataset.state = "lobby";
render();
connect();

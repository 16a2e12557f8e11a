// What the page knows: one state object, the renderers that draw it, and the socket's send.
// Every module reads `S`; the signaling module writes what the server says into it and calls
// `render()`, which runs each part's renderer.

import { CONTROL_ROLES, FINISHED_STATES } from "/static/labels.js";

const body = document.body;

const params = new URLSearchParams(location.search);

export const S = {
  token: body.dataset.token,
  hearingId: body.dataset.hearingId,
  role: body.dataset.role,
  participantId: body.dataset.participantId,
  kiosk: params.get("kiosk") === "1",
  inPrison: body.dataset.inPrison === "1", // no camera switch, no language switch
  // The court has the last digits of this person's ID number on file: joining takes them.
  idDigitsOnFile: body.dataset.idDigits === "1",
  idDigits: null, // as typed, for every join of this page (never stored)
  idDigitsAsk: null, // the form is up: why the server asked ({code, tries_left, locked_until})
  ws: null,
  pc: null,
  slots: [],
  participants: [],
  expected: [], // for the court: every participant of the hearing, joined or not
  recordingGaps: new Set(), // for the court: whose recording has a gap now
  me: null, // my seat, from the server
  hearingState: body.dataset.hearingState || "scheduled",
  interruptedAt: null, // when the server holding the hearing died in session; until the court decides
  signingOpen: false, // the judge opened signing of the record so far at this recess
  deviceCheck: true, // until the person has chosen their devices
  connected: false, // a `welcome` on the current socket
  reconnecting: false, // the socket dropped and a new one is on its way
  serverMoved: false, // a close said the hearing moves to another server process; until welcome
  mediaTrouble: false, // the peer connection failed or is disconnected
  admitted: false,
  ended: false,
  endedReason: "",
  fatal: false,
  iceServers: [],
  configReady: null, // resolved by this connection's `config` message
  local: null, // the MediaStream chosen at the device check, or null
  videoSender: null, // the RTCRtpSender that carries the camera (or the screen)
  screen: null, // the display MediaStream while sharing the screen
  micMuted: false,
  cameraOff: false,
  handRaised: false,
  retries: 0,
  leaving: false,
  speakers: { active: null, speaking: [] },
  quality: new Map(), // participant id -> quality entry
  transcription: null, // the last `transcription` message
  consultations: { requests: [], active: [] },
  exhibit: { exhibit: null, page: 1, presenter_id: null },
  record: [], // final lines of the trial record, oldest first
};

export const isObserver = () => S.role === "observer";
export const isControl = () => CONTROL_ROLES.has(S.role);
export const seatOf = (pid) => S.participants.find((p) => p.participant_id === pid) || null;
export const nameOf = (pid) => (seatOf(pid) || {}).name || "…";

// The consultation a participant is in (from `consultations`, or their seat), as
// {id, participants}, or null.
export function consultationOf(pid) {
  const active = (S.consultations.active || []).find((c) => c.participants.length > 1
    && c.participants.includes(pid));
  if (active) return active;
  // From the seats: a granted consultation reaches the two seats one after the other, so
  // either side's seat naming the other is enough. (A seat's `consultation` is also set while
  // a request waits for the court: that is not a consultation yet.)
  for (const seat of S.participants) {
    const c = seat.consultation;
    if (!c || !c.id || (c.state !== undefined && c.state !== "active")) continue;
    if (seat.participant_id === pid || c.with === pid) {
      return { id: c.id, participants: [seat.participant_id, c.with] };
    }
  }
  const partial = (S.consultations.active || []).find((c) => c.participants.includes(pid));
  return partial ? { ...partial, participants: [...partial.participants] } : null;
}

export function myConsultation() {
  return S.participantId ? consultationOf(S.participantId) : null;
}

export function partnerIn(consultation, pid = S.participantId) {
  return consultation ? consultation.participants.find((p) => p !== pid) || null : null;
}

export function send(message) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) {
    S.ws.send(JSON.stringify(message));
    return true;
  }
  return false;
}

export function command(action, participantId, reason = null) {
  const message = { type: "command", action };
  if (participantId) message.participant_id = participantId;
  if (reason) message.reason = reason;
  return send(message);
}

export function pageState() {
  if (S.fatal) return "error";
  if (S.ended || FINISHED_STATES.has(S.hearingState)) return "ended";
  if (S.deviceCheck) return "device-check";
  if (S.idDigitsAsk) return "id-digits";
  if (!S.admitted) return "lobby";
  if (myConsultation()) return "consultation";
  return S.hearingState === "recess" ? "recess" : "live";
}

const renderers = [];

export function onRender(fn) {
  renderers.push(fn);
}

export function render() {
  const state = pageState();
  if (body.dataset.state !== state) body.dataset.state = state;
  body.dataset.hearingState = S.hearingState;
  for (const fn of renderers) {
    try {
      fn(state);
    } catch (e) {
      console.error("render", e);
    }
  }
}

window.tingshen = {
  get pc() { return S.pc; },
  get ws() { return S.ws; },
  get connected() { return S.connected; },
  get slots() { return S.slots; },
  get participants() { return S.participants; },
  get me() { return S.me; },
  get hearingState() { return S.hearingState; },
  get consultations() { return S.consultations; },
  get exhibit() { return S.exhibit; },
  get speakers() { return S.speakers; },
  get record() { return S.record; },
  get local() { return S.local; },
};

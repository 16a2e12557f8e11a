// Media: the peer connection the server offers, the tracks this page publishes, and swapping
// the camera for the screen (replaceTrack on the same sender: no renegotiation).
import { t } from "/static/i18n.js";
import { status } from "/static/hearing/dom.js";
import { S, render, send } from "/static/hearing/state.js";

const CONFIG_WAIT_MS = 2000;

let resolveMedia;
// Resolved once the device check is over (at once for observers, who publish nothing).
export const mediaReady = new Promise((resolve) => { resolveMedia = resolve; });

export function useLocalStream(stream) {
  S.local = stream;
  if (stream) {
    for (const track of stream.getAudioTracks()) track.enabled = !S.micMuted;
    for (const track of stream.getVideoTracks()) track.enabled = !S.cameraOff;
  }
  S.deviceCheck = false;
  resolveMedia(stream);
}

export const cameraTrack = () => (S.local ? S.local.getVideoTracks()[0] || null : null);
export const hasAudio = () => !!S.local && S.local.getAudioTracks().length > 0;
export const hasVideo = () => !!cameraTrack();

export async function onOffer(message) {
  const stream = await mediaReady;
  // The server sends `config` right after `welcome`; don't build a peer without its ICE servers.
  await Promise.race([S.configReady, new Promise((r) => setTimeout(r, CONFIG_WAIT_MS))]);
  S.slots = message.slots || [];
  if (!S.pc) S.pc = newPeer(stream);
  const pc = S.pc;
  // A connection closed mid-negotiation (the socket dropped) never settles these promises:
  // the wait ends when the peer is dropped, or every later message would queue behind it.
  const { dropped } = drops.get(pc);
  await Promise.race([pc.setRemoteDescription({ type: "offer", sdp: message.sdp }), dropped]);
  if (pc !== S.pc) return;
  const answer = await Promise.race([pc.createAnswer(), dropped]);
  if (pc !== S.pc) return;
  await Promise.race([pc.setLocalDescription(answer), dropped]);
  if (pc !== S.pc) return;
  send({ type: "answer", sdp: pc.localDescription.sdp });
  await publishLayers(S.videoSender);
}

// The video goes out in three temporal layers (VP8 L1T3): the server sends someone on a weak
// link fewer frames of it instead of none. Set once the sender is negotiated; a browser that
// refuses it publishes one layer, which still works (that video is only ever held back).
const layered = new WeakSet();
async function publishLayers(sender) {
  if (!sender || layered.has(sender)) return;
  layered.add(sender);
  try {
    const params = sender.getParameters();
    if (!params.encodings || params.encodings.length === 0) return;
    params.encodings[0].scalabilityMode = "L1T3";
    await sender.setParameters(params);
  } catch (e) {
    console.warn("scalabilityMode L1T3 refused", e && e.name);
  }
}

// Each peer's `dropped` promise and the `drop` that resolves it (in dropPeer).
const drops = new WeakMap();

function newPeer(stream) {
  const pc = new RTCPeerConnection({ iceServers: S.iceServers, bundlePolicy: "max-bundle" });
  let drop;
  const dropped = new Promise((resolve) => { drop = resolve; });
  drops.set(pc, { dropped, drop });
  S.videoSender = null;
  // Before the first offer is applied, so that JSEP puts them on its first audio and video
  // m-sections: those are the ones the server receives (publishing).
  if (stream) {
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    const camera = stream.getVideoTracks()[0];
    if (camera) {
      const shared = S.screen ? S.screen.getVideoTracks()[0] : null;
      S.videoSender = pc.addTrack(shared || camera, stream);
    }
  }
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
  pc.addEventListener("track", (event) => {
    // A remote track that stops or starts carrying frames changes its tile (video or name).
    event.track.addEventListener("mute", () => render());
    event.track.addEventListener("unmute", () => render());
    render();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc !== S.pc) return;
    const state = pc.connectionState;
    if (state === "failed") {
      status(t("媒体连接失败，正在重建…"), "warn");
      S.mediaTrouble = true;
      dropPeer();
      send({ type: "media_restart" });
    } else if (state === "disconnected") {
      S.mediaTrouble = true;
    } else if (state === "connected") {
      S.mediaTrouble = false;
    }
    render();
  });
  return pc;
}

export function dropPeer() {
  if (S.pc) {
    S.pc.close();
    drops.get(S.pc).drop();
  }
  S.pc = null;
  S.videoSender = null;
  S.slots = [];
}

// -- the person's own controls ---------------------------------------------------------------

export function setMicMuted(muted) {
  S.micMuted = muted;
  if (S.local) for (const track of S.local.getAudioTracks()) track.enabled = !muted;
  if (S.admitted) send({ type: "mute", muted });
  render();
}

export function setCameraOff(off) {
  if (off && S.inPrison) return;
  S.cameraOff = off;
  const camera = cameraTrack();
  if (camera) camera.enabled = !off;
  if (S.admitted) send({ type: "camera", off });
  render();
}

export async function startScreenShare() {
  if (S.screen || !S.videoSender || S.inPrison) return;
  let display;
  try {
    display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    if (e && e.name !== "NotAllowedError") status(t("无法共享屏幕"), "error");
    return;
  }
  const track = display.getVideoTracks()[0];
  if (!track || !S.videoSender) {
    for (const tr of display.getTracks()) tr.stop();
    return;
  }
  S.screen = display;
  // The browser's own "stop sharing" ends the track.
  track.addEventListener("ended", () => { stopScreenShare(); });
  try {
    await S.videoSender.replaceTrack(track);
  } catch (e) {
    console.error("replaceTrack", e);
    S.screen = null;
    track.stop();
    status(t("无法共享屏幕"), "error");
    render();
    return;
  }
  send({ type: "screen", sharing: true });
  render();
}

export async function stopScreenShare() {
  const display = S.screen;
  if (!display) return;
  S.screen = null;
  for (const track of display.getTracks()) track.stop();
  if (S.videoSender) {
    try {
      await S.videoSender.replaceTrack(cameraTrack());
    } catch (e) {
      console.error("replaceTrack", e);
    }
  }
  send({ type: "screen", sharing: false });
  render();
}

// The hearing room: one tile per participant the server's slots carry (video, or their initial
// when there is none), the main stage (an exhibit or a shared screen), the active speaker,
// live captions and the trial record as it is taken.
import { t } from "/static/i18n.js";
import { ROLE_ORDER, roleLabel } from "/static/labels.js";
import { $, el, formatOffset, initial } from "/static/hearing/dom.js";
import { renderExhibitStage } from "/static/hearing/exhibits.js";
import {
  S, consultationOf, isObserver, myConsultation, onRender, partnerIn, seatOf,
} from "/static/hearing/state.js";

// -- tiles -------------------------------------------------------------------------------------

function remoteTracks() {
  const byParticipant = new Map();
  const transceivers = S.pc ? S.pc.getTransceivers() : [];
  for (const slot of S.slots) {
    if (!slot.participant_id) continue;
    if (!byParticipant.has(slot.participant_id)) byParticipant.set(slot.participant_id, []);
    const tr = slot.mid == null ? null : transceivers.find((x) => x.mid === slot.mid);
    if (tr && tr.receiver.track) byParticipant.get(slot.participant_id).push(tr.receiver.track);
  }
  // Two people consulting privately send the court nothing, but they are still in the hearing:
  // their tiles stay, with their names and the tag.
  if (S.pc && !myConsultation()) {
    for (const seat of S.participants) {
      const pid = seat.participant_id;
      if (pid !== S.participantId && seat.present && seat.admitted && consultationOf(pid)
          && !byParticipant.has(pid)) byParticipant.set(pid, []);
    }
  }
  return byParticipant;
}

// The court first, then the parties; this page's own tile last.
function order(tiles) {
  const rank = (tile) => {
    if (tile.classList.contains("self")) return ROLE_ORDER.length + 1;
    const seat = seatOf(tile.dataset.participantId);
    const index = seat ? ROLE_ORDER.indexOf(seat.role) : -1;
    return index < 0 ? ROLE_ORDER.length : index;
  };
  const current = [...tiles.children];
  const wanted = [...current].sort((a, b) => rank(a) - rank(b));
  if (wanted.some((tile, i) => tile !== current[i])) {
    for (const tile of wanted) {
      tiles.append(tile);
      const video = tile.querySelector("video");
      play(video);
    }
  }
}

// The browser may refuse to play sound before the person touched the page (a kiosk that
// joined by itself, a reloaded page): then one button starts every tile.
function play(video) {
  if (!video.srcObject || !video.paused) return;
  video.play().catch((e) => {
    if (e && e.name === "NotAllowedError") $("audio-blocked").hidden = false;
  });
}

export function setupAudioUnblock() {
  const button = $("audio-blocked");
  button.addEventListener("click", () => {
    button.hidden = true;
    for (const video of document.querySelectorAll("figure.tile.remote video")) {
      video.play().catch(() => { button.hidden = false; });
    }
  });
}

function newTile(pid) {
  const video = el("video", { autoplay: true, playsinline: true, dataset: { participantId: pid } });
  // Frames starting or stopping decide between the video and the placeholder.
  for (const event of ["resize", "loadeddata", "emptied"]) {
    video.addEventListener(event, () => renderTiles());
  }
  return el("figure", { class: "tile remote", dataset: { participantId: pid } },
    video,
    el("div", { class: "placeholder", "aria-hidden": "true" }, el("span", { class: "avatar" })),
    el("figcaption"));
}

function tileTags(seat, pid) {
  const tags = [];
  if (!seat) return tags;
  if (consultationOf(pid) && !myConsultation()) {
    tags.push(el("span", { class: "tag consult" }, t("私下会见中")));
  }
  if (seat.screen_sharing) tags.push(el("span", { class: "tag" }, t("正在共享屏幕")));
  if (seat.hand_raised) tags.push(el("span", { class: "tag hand" }, t("已举手")));
  if (seat.muted_by_court) tags.push(el("span", { class: "tag muted" }, t("已禁言")));
  else if (seat.muted) tags.push(el("span", { class: "tag muted" }, t("已静音")));
  if (seat.present === false) tags.push(el("span", { class: "tag away" }, t("未在线")));
  if (videoHeld(pid)) tags.push(el("span", { class: "tag held" }, t("视频暂停：您的网络较弱")));
  else if (videoReduced(pid)) {
    tags.push(el("span", { class: "tag held reduced" }, t("画面帧率降低：您的网络较弱")));
  }
  return tags;
}

// The server holds back a video this page's link cannot carry (the sound still comes).
function videoHeld(pid) {
  return S.slots.some((s) => s.participant_id === pid && s.kind === "video" && s.held);
}

// ... or sends fewer of its frames.
function videoReduced(pid) {
  return S.slots.some((s) => s.participant_id === pid && s.kind === "video" && s.reduced);
}

function caption(tile, seat, pid, self) {
  const figcaption = tile.querySelector("figcaption");
  const signature = JSON.stringify([seat, self, consultationOf(pid), !!myConsultation(),
    videoHeld(pid), videoReduced(pid), document.documentElement.lang]);
  if (figcaption.dataset.signature === signature) return;
  figcaption.dataset.signature = signature;
  const name = seat ? seat.name : self ? (S.me || {}).name : "…";
  figcaption.replaceChildren(
    el("span", { class: "who" },
      el("span", { class: "name" }, name || "…"), " ",
      seat ? el("span", { class: "role" }, roleLabel(seat.role)) : null,
      self ? el("span", { class: "tag self-tag" }, t("本人")) : null),
    el("span", { class: "tags" }, ...tileTags(seat, pid)));
  tile.querySelector(".avatar").textContent = initial(name);
}

function showVideo(tile, video, tracks, seat) {
  const videoTrack = tracks.find((tr) => tr.kind === "video");
  const frames = !!videoTrack && !videoTrack.muted && video.videoWidth > 0;
  const off = !!(seat && seat.camera_off);
  tile.classList.toggle("no-video", off || !frames);
}

export function renderTiles() {
  const tiles = $("tiles");
  const mainStage = $("main-stage");
  const byParticipant = remoteTracks();
  const consultation = myConsultation();
  const partner = partnerIn(consultation);

  for (const tile of document.querySelectorAll("figure.tile.remote")) {
    if (!byParticipant.has(tile.dataset.participantId)) tile.remove();
  }
  for (const [pid, tracks] of byParticipant) {
    let tile = document.querySelector(`figure.remote[data-participant-id="${CSS.escape(pid)}"]`);
    if (!tile) {
      tile = newTile(pid);
      tiles.append(tile);
    }
    const video = tile.querySelector("video");
    const current = video.srcObject ? video.srcObject.getTracks() : [];
    const same = current.length === tracks.length && tracks.every((tr) => current.includes(tr));
    if (!same) video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    // While consulting, only the partner is seen and heard (the server sends nothing else).
    const hidden = !!consultation && pid !== partner;
    tile.hidden = hidden;
    video.muted = hidden;
    play(video);
    const seat = seatOf(pid);
    caption(tile, seat, pid, false);
    showVideo(tile, video, tracks, seat);
  }
  renderSelf();

  // The main stage: an exhibit being shown, else a shared screen, else the grid alone.
  const exhibit = !consultation && renderExhibitStage(mainStage);
  const sharer = !consultation && !exhibit ? S.participants.find((p) => p.screen_sharing
    && p.participant_id !== S.participantId && byParticipant.has(p.participant_id)) : null;
  for (const tile of mainStage.querySelectorAll("figure.tile")) {
    if (!sharer || tile.dataset.participantId !== sharer.participant_id) {
      tile.classList.remove("main");
      tiles.append(tile);
    }
  }
  if (sharer) {
    const tile = document.querySelector(
      `figure.remote[data-participant-id="${CSS.escape(sharer.participant_id)}"]`);
    if (tile && tile.parentElement !== mainStage) {
      mainStage.replaceChildren(tile);
      tile.classList.add("main");
      play(tile.querySelector("video"));
    }
  } else if (!exhibit) {
    mainStage.replaceChildren();
  }
  const hasMain = !!(exhibit || sharer);
  mainStage.hidden = !hasMain;
  $("stage").classList.toggle("has-main", hasMain);
  order(tiles);
  const visible = [...tiles.children].filter((tile) => !tile.hidden).length;
  tiles.dataset.count = String(Math.min(visible, 9));
  renderSpeakers();
}

function renderSelf() {
  const tile = $("self-tile");
  tile.hidden = isObserver();
  if (tile.hidden) return;
  const video = $("self-video");
  const stream = S.screen || S.local;
  if (video.srcObject !== stream) video.srcObject = stream;
  tile.classList.toggle("screen", !!S.screen);
  const camera = S.local ? S.local.getVideoTracks()[0] : null;
  tile.classList.toggle("no-video", !S.screen && (!camera || S.cameraOff));
  caption(tile, S.me, S.participantId, true);
}

export function renderSpeakers() {
  const active = S.speakers.active;
  const speaking = new Set(S.speakers.speaking || []);
  for (const tile of document.querySelectorAll("figure.tile")) {
    const pid = tile.dataset.participantId;
    tile.classList.toggle("speaking", !!pid && pid === active);
    tile.classList.toggle("talking", !!pid && speaking.has(pid));
  }
}

// -- captions ------------------------------------------------------------------------------

// One line per speaker, a partial replaced by the next partial or the final; the last few
// final lines stay.
const CAPTION_LINES = 3;

export function showCaption(message) {
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
  if (message.final) addRecordLine(message);
}

// -- the trial record ----------------------------------------------------------------------

const RECORD_SHOWN = 500;
const STICK_PX = 24;

export function setRecord(lines) {
  S.record = lines.filter((line) => line.final !== false);
  drawRecord(true);
}

function addRecordLine(line) {
  if (line.segment_id != null && S.record.some((r) => r.segment_id === line.segment_id)) return;
  S.record.push(line);
  const list = $("transcript");
  const stick = atBottom(list);
  list.append(recordLine(line));
  while (list.children.length > RECORD_SHOWN) list.firstElementChild.remove();
  $("transcript-empty").hidden = true;
  if (stick) scrollToEnd(list);
  else $("transcript-latest").hidden = false;
}

// A line settled behind the live ones (its text revised), or one the live lines missed.
export function settleRecordLine(message) {
  const known = S.record.find((r) => r.segment_id === message.segment_id);
  if (known) known.text = message.text;
  else {
    S.record.push(message);
    S.record.sort((a, b) => a.start - b.start);
  }
  const item = $("transcript").querySelector(
    `li[data-segment-id="${CSS.escape(message.segment_id)}"] .text`);
  if (known && item) item.textContent = message.text;
  else drawRecord(false);
}

// A line of someone who has not joined since the server started has no name: it is taken
// from their seat once they are seen, and the record drawn again.
let unnamed = 0;

function speaker(line) {
  const seat = seatOf(line.participant_id);
  if (!line.name && seat) Object.assign(line, { name: seat.name, role: line.role || seat.role });
  return line;
}

function recordLine(line) {
  const who = speaker(line);
  if (!who.name) unnamed += 1;
  return el("li", { dataset: { segmentId: line.segment_id ?? "", participantId: line.participant_id } },
    el("div", { class: "line-head" },
      el("time", { class: "at" }, formatOffset(line.start)),
      el("span", { class: "name" }, who.name || t("发言人")),
      who.role ? el("span", { class: "role" }, roleLabel(who.role)) : null),
    el("p", { class: "text" }, line.text));
}

function drawRecord(toEnd) {
  const list = $("transcript");
  const stick = toEnd || atBottom(list);
  const top = list.scrollTop;
  unnamed = 0;
  list.replaceChildren(...S.record.slice(-RECORD_SHOWN).map(recordLine));
  $("transcript-empty").hidden = S.record.length > 0;
  if (stick) scrollToEnd(list);
  else list.scrollTop = top;
}

function atBottom(list) {
  return list.scrollTop + list.clientHeight >= list.scrollHeight - STICK_PX;
}

function scrollToEnd(list) {
  list.scrollTop = list.scrollHeight;
  $("transcript-latest").hidden = true;
}

export function setupTranscript() {
  const list = $("transcript");
  list.addEventListener("scroll", () => {
    if (atBottom(list)) $("transcript-latest").hidden = true;
  });
  $("transcript-latest").addEventListener("click", () => scrollToEnd(list));
  window.addEventListener("langchange", () => drawRecord(false));
}

onRender((state) => {
  if (["live", "recess", "consultation"].includes(state)) renderTiles();
  if (unnamed && S.record.some((line) => !line.name && seatOf(line.participant_id))) drawRecord(false);
});

// Around the room: the masthead (state, recording), the reconnecting banner, the lobby, the
// person's own controls, and the end of the hearing (a kiosk goes back to its home page).
import { t } from "/static/i18n.js";
import { roleLabel, stateLabel } from "/static/labels.js";
import { $, el, formatRange, formatTime, setButton } from "/static/hearing/dom.js";
import { hasAudio, hasVideo } from "/static/hearing/media.js";
import { mayPresent } from "/static/hearing/exhibits.js";
import { S, isControl, isObserver, myConsultation, nameOf, onRender } from "/static/hearing/state.js";
import { byRole } from "/static/hearing/console.js";

const KIOSK_RETURN_S = 10;

// The record's signing page with this person's link: a new tab in a browser; at a kiosk the
// same screen, which comes back to the hearing (or, once it is closed, the terminal) after.
export function signUrl() {
  const kiosk = S.kiosk ? "?kiosk=1" : "";
  return `/sign/${S.hearingId}${kiosk}#${encodeURIComponent(S.token)}`;
}

function mayOpenRecord() {
  return !isObserver() && !!S.token;
}

// At a recess the judge chose, and once the hearing closed: the record to read and sign.
function renderSigning(state) {
  const open = S.signingOpen && S.hearingState === "recess" && state !== "ended"
    && mayOpenRecord();
  $("signing-open").hidden = !open;
  const closed = state === "ended" && S.hearingState === "closed" && mayOpenRecord();
  $("ended-sign").hidden = !closed;
}

// The signing page opens in a tab of its own; a kiosk (one screen, no tabs) goes there.
function openRecord() {
  if (S.kiosk) location.assign(signUrl());
  else window.open(signUrl(), "_blank", "noopener");
}

for (const id of ["signing-link", "ended-sign"]) $(id).addEventListener("click", openRecord);

function renderMasthead(state) {
  $("state").textContent = stateLabel(S.hearingState);
  $("state").dataset.state = S.hearingState;
  const rec = $("recording");
  const consulting = state === "consultation";
  rec.hidden = !["in_session", "recess"].includes(S.hearingState) || state === "ended";
  // The court is told when someone's recording has a gap: the header says so until it ends.
  const gap = S.hearingState === "in_session" && S.recordingGaps.size > 0;
  rec.dataset.mode = consulting ? "private" : S.hearingState === "recess" ? "recess"
    : gap ? "gap" : "on";
  $("recording-label").textContent = consulting ? t("不录制")
    : S.hearingState === "recess" ? t("休庭")
      : gap ? t("录制中断：{names}", { names: [...S.recordingGaps].map(nameOf).join(t("、")) })
        : t("录制中");
  for (const node of document.querySelectorAll(".when[data-start]")) {
    const text = formatRange(node.dataset.start, node.dataset.end);
    if (node.textContent !== text) node.textContent = text;
  }
}

// The server holding the hearing died in session: nothing was recorded until it was taken up
// again, so the hearing waits in recess for the court, and everyone is told why.
function renderInterrupted(state) {
  const notice = $("interrupted");
  const shown = !!S.interruptedAt && S.hearingState === "recess" && state !== "ended";
  notice.hidden = !shown;
  if (!shown) return;
  const at = formatTime(S.interruptedAt);
  notice.textContent = isControl()
    ? t("庭审因服务器故障于 {at} 中断，中断期间未录制。请确认各方已重新连接后继续开庭。", { at })
    : t("庭审因服务器故障于 {at} 中断，中断期间未录制。请等待法官继续开庭。", { at });
}

function renderBanner(state) {
  const banner = $("reconnecting");
  const live = !["ended", "error", "device-check"].includes(state);
  let text = "";
  if (live && S.reconnecting && S.serverMoved) text = t("庭审正在转到另一台服务器，正在重新连接…");
  else if (live && S.reconnecting) text = t("连接中断，正在重新连接…");
  else if (live && S.admitted && S.mediaTrouble) text = t("音视频连接不稳定，正在恢复…");
  banner.hidden = !text;
  $("reconnecting-text").textContent = text;
}

function renderLobby(state) {
  if (state !== "lobby") return;
  const list = $("present");
  const present = S.participants.filter((p) => p.present && p.participant_id !== S.participantId)
    .sort(byRole);
  list.replaceChildren(...present.map((p) => el("li", { dataset: { participantId: p.participant_id } },
    el("span", { class: "name" }, p.name), el("span", { class: "role" }, roleLabel(p.role)),
    p.admitted ? el("span", { class: "tag in" }, t("已在庭")) : el("span", { class: "tag lobby" }, t("候审")))));
  $("present-empty").hidden = present.length > 0;
  $("lobby-wait").textContent = S.connected ? t("等待法官准许进入") : t("正在连接法庭…");
  const video = $("lobby-video");
  if (video.srcObject !== S.local) video.srcObject = S.local;
  const camera = S.local ? S.local.getVideoTracks()[0] : null;
  $("lobby-preview").classList.toggle("no-video", !camera || S.cameraOff);
}

function renderControls() {
  const mute = $("btn-mute");
  const byCourt = !!(S.me && S.me.muted_by_court);
  mute.setAttribute("aria-pressed", String(S.micMuted || byCourt));
  setButton(mute, S.micMuted || byCourt ? "mic-off" : "mic",
    byCourt ? t("已被禁言") : S.micMuted ? t("取消静音") : t("静音"));
  mute.disabled = !hasAudio();
  const cam = $("btn-camera");
  cam.setAttribute("aria-pressed", String(S.cameraOff));
  setButton(cam, S.cameraOff ? "camera-off" : "camera", S.cameraOff ? t("打开摄像头") : t("关闭摄像头"));
  cam.disabled = !hasVideo() || !!S.screen;
  cam.hidden = S.inPrison;
  const hand = $("btn-hand");
  hand.setAttribute("aria-pressed", String(S.handRaised));
  setButton(hand, "hand", S.handRaised ? t("放下手") : t("举手"));
  hand.disabled = !S.connected;
  const screen = $("btn-screen");
  screen.hidden = S.kiosk || S.inPrison || isObserver() || !navigator.mediaDevices
    || !navigator.mediaDevices.getDisplayMedia;
  screen.setAttribute("aria-pressed", String(!!S.screen));
  setButton(screen, "screen", S.screen ? t("停止共享") : t("共享屏幕"));
  screen.disabled = !S.screen && (!S.videoSender || !!myConsultation());
  const exhibit = $("btn-exhibit");
  exhibit.hidden = !mayPresent();
  setButton(exhibit, "exhibit", t("出示证据"));
  exhibit.disabled = !S.connected || !!myConsultation();
}

let kioskTimer = null;

function renderEnded(state) {
  if (state !== "ended" && state !== "error") return;
  $("ended-title").textContent = state === "ended" ? t("庭审已结束") : t("无法继续");
  $("ended-reason").textContent = S.endedReason
    || (state === "ended" ? t("感谢参加。庭审录像和笔录由法院保存。") : "");
  if (!S.kiosk) return;
  if (kioskTimer === null) {
    let left = KIOSK_RETURN_S;
    const tick = () => {
      $("kiosk-return").textContent = S.hearingState === "closed" && mayOpenRecord()
        ? t("{n} 秒后打开庭审笔录，请阅读并签名", { n: left })
        : t("{n} 秒后返回终端首页", { n: left });
      if (left <= 0) {
        clearInterval(kioskTimer);
        // The detainee signs the closed hearing's record at the kiosk; then the terminal.
        location.replace(S.hearingState === "closed" && mayOpenRecord() ? signUrl()
          : "/terminal");
      }
      left -= 1;
    };
    tick();
    kioskTimer = setInterval(tick, 1000);
  }
  $("kiosk-return").hidden = false;
}

onRender((state) => {
  renderMasthead(state);
  renderBanner(state);
  renderInterrupted(state);
  renderSigning(state);
  renderLobby(state);
  renderControls();
  renderEnded(state);
  $("observer-badge").hidden = !isObserver();
});

// The device check before a hearing: camera preview, microphone level, a speaker tone and the
// connection to this server. `deviceCheck()` resolves, when the participant presses "进入" (or,
// on a kiosk, by itself once camera and microphone work), with the chosen MediaStream, its
// tracks left running for the hearing, or null when no device is used.
import { t } from "/static/i18n.js";

const PINGS = 5;
const OPEN_TIMEOUT_MS = 5000;
const PONG_TIMEOUT_MS = 3000;
const SLOW_RTT_MS = 300;
const KIOSK_AUTO_JOIN_S = 3;
// A permission prompt nobody answers must not keep "进入" disabled for ever.
const CHECKING_MAX_MS = 10000;
const METER_INTERVAL_MS = 50;
const METER_FLOOR_DB = -60;
const METER_DECAY = 0.85; // per tick: a peak fades over about a second
const VOICE_LEVEL = 0.25; // a level that means the microphone hears something
const TONE_HZ = 880;
const PREFS_KEY = "tingshen.devices";

const DENIED = new Set(["NotAllowedError", "PermissionDeniedError", "SecurityError"]);
const MISSING = new Set(["NotFoundError", "DevicesNotFoundError", "OverconstrainedError"]);
const BUSY = new Set(["NotReadableError", "TrackStartError", "AbortError"]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v != null) node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY) || "{}") || {};
  } catch {
    return {};
  }
}

function savePrefs(prefs) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch { /* not kept across visits */ }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function cameraAdvice(name) {
  if (name === "unsupported") return t("此浏览器无法使用摄像头和麦克风。请使用最新版本的 Chrome、Edge、Firefox 或 Safari，并通过 https 地址打开本页。");
  if (name === "ended") return t("摄像头已断开。请检查连接线，然后点击“重新检测”。");
  if (DENIED.has(name)) return t("浏览器未允许使用摄像头。请点击地址栏左侧的锁形图标或摄像头图标，将“摄像头”设为“允许”，然后点击“重新检测”。");
  if (MISSING.has(name)) return t("未找到摄像头。请插好摄像头，然后点击“重新检测”。");
  if (BUSY.has(name)) return t("摄像头正被其他程序使用（例如其他视频会议软件）。请关闭该程序，然后点击“重新检测”。");
  return t("摄像头无法启动（{name}）。请点击“重新检测”，或不使用摄像头进入。", { name });
}

function micAdvice(name) {
  if (name === "unsupported") return t("此浏览器无法使用摄像头和麦克风。请使用最新版本的 Chrome、Edge、Firefox 或 Safari，并通过 https 地址打开本页。");
  if (name === "ended") return t("麦克风已断开。请检查连接线，然后点击“重新检测”。");
  if (DENIED.has(name)) return t("浏览器未允许使用麦克风。请点击地址栏左侧的锁形图标或摄像头图标，将“麦克风”设为“允许”，然后点击“重新检测”。");
  if (MISSING.has(name)) return t("未找到麦克风。请插好麦克风或耳机，然后点击“重新检测”。");
  if (BUSY.has(name)) return t("麦克风正被其他程序使用（例如其他视频会议软件）。请关闭该程序，然后点击“重新检测”。");
  return t("麦克风无法启动（{name}）。请点击“重新检测”，或不使用麦克风进入。", { name });
}

/**
 * Check the camera, microphone, speaker and connection inside `container` (emptied at the end).
 * Resolves with a MediaStream of the chosen devices (tracks running) or null.
 */
export function deviceCheck(container, { video = true, audio = true, kiosk = false } = {}) {
  return new Promise((resolve) => {
    const prefs = loadPrefs();
    const off = new AbortController(); // every listener of this check, removed at the end
    const listen = (target, type, fn, opts = {}) =>
      target.addEventListener(type, fn, { ...opts, signal: off.signal });
    const device = (want, pref) => ({
      want, status: want ? "pending" : "unused", error: "", track: null, skip: false,
      preferred: pref || "",
    });
    const S = {
      camera: device(video, prefs.camera),
      mic: device(audio, prefs.mic),
      heard: false, // the microphone picked up sound at least once
      speaker: { state: "idle", sink: prefs.speaker || "" },
      net: { state: "checking", rtt: null, problem: "" },
      devices: { videoinput: [], audioinput: [], audiooutput: [] },
      patient: false, // checking took long enough: let them in anyway
      countdown: null,
      done: false,
    };
    let audioContext = null;
    let meter = null; // { source, analyser, timer } while the microphone is measured
    let level = 0;
    let countdownTimer = null;
    let socket = null;
    let toneAudio = null;

    // -- the page ------------------------------------------------------------------------------

    const ui = {
      title: el("h2"),
      intro: el("p", { class: "dc-intro" }),
      video: el("video", { id: "dc-video", autoplay: true, muted: true, playsinline: true }),
      placeholder: el("p", { class: "dc-placeholder" }),
      cameraTitle: el("span"),
      cameraBadge: el("span", { class: "dc-badge" }),
      cameraLabel: el("span"),
      cameraSelect: el("select", { id: "dc-camera-select" }),
      cameraAdvice: el("p", { id: "dc-camera-advice", class: "dc-advice", role: "alert" }),
      cameraRetry: el("button", { type: "button", class: "dc-retry" }),
      noCamera: el("input", { type: "checkbox", id: "dc-no-camera" }),
      noCameraLabel: el("span"),
      micTitle: el("span"),
      micBadge: el("span", { class: "dc-badge" }),
      meterBar: el("div", { class: "dc-meter-bar" }),
      micStatus: el("p", { class: "dc-note" }),
      micLabel: el("span"),
      micSelect: el("select", { id: "dc-mic-select" }),
      micAdvice: el("p", { id: "dc-mic-advice", class: "dc-advice", role: "alert" }),
      micRetry: el("button", { type: "button", class: "dc-retry" }),
      noMic: el("input", { type: "checkbox", id: "dc-no-mic" }),
      noMicLabel: el("span"),
      speakerTitle: el("span"),
      speakerBadge: el("span", { class: "dc-badge" }),
      speakerLabel: el("span"),
      speakerSelect: el("select", { id: "dc-speaker-select" }),
      play: el("button", { type: "button", id: "dc-play" }),
      question: el("p", { class: "dc-question" }),
      heard: el("button", { type: "button", id: "dc-heard" }),
      notHeard: el("button", { type: "button", id: "dc-not-heard" }),
      speakerAdvice: el("p", { id: "dc-speaker-advice", class: "dc-advice" }),
      netTitle: el("span"),
      netBadge: el("span", { class: "dc-badge" }),
      netResult: el("p", { class: "dc-net-result" }),
      netAdvice: el("p", { id: "dc-connection-advice", class: "dc-advice" }),
      netRetry: el("button", { type: "button", class: "dc-retry" }),
      summary: el("p", { id: "dc-summary", class: "dc-summary", role: "status" }),
      countdown: el("p", { id: "dc-countdown", class: "dc-countdown", "aria-live": "polite" }),
      join: el("button", { type: "button", id: "dc-join", class: "dc-join" }),
    };
    ui.meter = el("div", { id: "dc-meter", class: "dc-meter", role: "meter",
      "aria-valuemin": "0", "aria-valuemax": "1", "aria-valuenow": "0", "data-level": "0" },
    ui.meterBar);
    const heading = (title, badge) => el("h3", {}, title, badge);
    ui.cameraBox = el("section", { class: "dc-box dc-camera" },
      heading(ui.cameraTitle, ui.cameraBadge),
      el("div", { class: "dc-preview" }, ui.video, ui.placeholder),
      el("label", { class: "dc-pick" }, ui.cameraLabel, ui.cameraSelect),
      ui.cameraAdvice, ui.cameraRetry,
      el("label", { class: "dc-skip" }, ui.noCamera, ui.noCameraLabel));
    ui.micBox = el("section", { class: "dc-box dc-mic" },
      heading(ui.micTitle, ui.micBadge), ui.meter, ui.micStatus,
      el("label", { class: "dc-pick" }, ui.micLabel, ui.micSelect),
      ui.micAdvice, ui.micRetry,
      el("label", { class: "dc-skip" }, ui.noMic, ui.noMicLabel));
    ui.speakerPick = el("label", { class: "dc-pick" }, ui.speakerLabel, ui.speakerSelect);
    ui.answers = el("div", { class: "dc-answers" }, ui.question, ui.heard, ui.notHeard);
    ui.speakerBox = el("section", { id: "dc-speaker", class: "dc-box dc-speaker",
      "data-state": "idle" },
    heading(ui.speakerTitle, ui.speakerBadge), ui.speakerPick, ui.play, ui.answers, ui.speakerAdvice);
    ui.netBox = el("section", { id: "dc-connection", class: "dc-box dc-connection",
      "data-state": "checking" },
    heading(ui.netTitle, ui.netBadge), ui.netResult, ui.netAdvice, ui.netRetry);
    const root = el("div", { class: kiosk ? "dc dc-kiosk" : "dc" },
      el("header", { class: "dc-head" }, ui.title, ui.intro),
      el("div", { class: "dc-grid" },
        video ? ui.cameraBox : null,
        el("div", { class: "dc-side" }, audio ? ui.micBox : null, ui.speakerBox, ui.netBox)),
      el("footer", { class: "dc-actions" }, ui.summary, ui.countdown, ui.join));
    ui.video.muted = true; // the property, not only the attribute, lets it autoplay
    container.replaceChildren(root);

    // -- state and rendering -------------------------------------------------------------------

    function overall() {
      const used = [S.camera, S.mic].filter((d) => d.want);
      if (used.some((d) => d.status === "pending")) return "checking";
      if (used.some((d) => d.status === "error" && !d.skip)) return "blocked";
      return "ready";
    }

    function chosen() {
      return [S.camera, S.mic].filter((d) => d.want && !d.skip && d.status === "ok");
    }

    function fillSelect(select, list, current, fallback) {
      // Rebuilt only when something changed: a rebuild closes a list the user has open.
      const sig = JSON.stringify([list.map((d) => [d.deviceId, d.label]), current,
        fallback(1)]);
      if (select.dataset.sig === sig) return;
      select.dataset.sig = sig;
      const options = list.map((d, i) => {
        const option = el("option", { value: d.deviceId }, d.label || fallback(i + 1));
        option.selected = d.deviceId === current;
        return option;
      });
      select.replaceChildren(...options);
      select.disabled = list.length < 2;
    }

    function badge(node, kind, text) {
      node.dataset.kind = kind;
      node.textContent = text;
    }

    function deviceBadge(node, dev) {
      if (dev.skip) badge(node, "off", t("不使用"));
      else if (dev.status === "ok") badge(node, "ok", t("正常"));
      else if (dev.status === "error") badge(node, "bad", t("不可用"));
      else badge(node, "wait", t("检测中"));
    }

    function renderDevice(dev, parts) {
      const { box, advice, retry, skip, adviceText, badgeNode } = parts;
      deviceBadge(badgeNode, dev);
      box.dataset.state = dev.status;
      advice.hidden = dev.status !== "error";
      advice.textContent = dev.status === "error" ? adviceText(dev.error) : "";
      retry.hidden = dev.status !== "error";
      retry.textContent = t("重新检测");
      skip.checked = dev.skip;
    }

    function render() {
      if (S.done) return;
      const state = overall();
      container.dataset.state = state;
      ui.title.textContent = t("设备检测");
      ui.intro.textContent = kiosk
        ? t("正在检查摄像头、麦克风和网络，完成后将自动进入庭审。")
        : t("进入庭审前，请确认摄像头、麦克风、扬声器和网络工作正常。");

      ui.cameraTitle.textContent = t("摄像头");
      ui.cameraLabel.textContent = t("选择摄像头");
      fillSelect(ui.cameraSelect, S.devices.videoinput, S.camera.track?.getSettings().deviceId,
        (n) => t("摄像头 {n}", { n }));
      ui.noCameraLabel.textContent = t("不使用摄像头进入");
      renderDevice(S.camera, { box: ui.cameraBox, advice: ui.cameraAdvice,
        retry: ui.cameraRetry, skip: ui.noCamera, adviceText: cameraAdvice,
        badgeNode: ui.cameraBadge });
      const showing = S.camera.status === "ok" && !S.camera.skip;
      ui.placeholder.hidden = showing;
      ui.placeholder.textContent = S.camera.status === "pending"
        ? t("正在打开摄像头…") : t("无摄像头画面");

      ui.micTitle.textContent = t("麦克风");
      ui.micLabel.textContent = t("选择麦克风");
      fillSelect(ui.micSelect, S.devices.audioinput, S.mic.track?.getSettings().deviceId,
        (n) => t("麦克风 {n}", { n }));
      ui.noMicLabel.textContent = t("不使用麦克风进入");
      renderDevice(S.mic, { box: ui.micBox, advice: ui.micAdvice,
        retry: ui.micRetry, skip: ui.noMic, adviceText: micAdvice,
        badgeNode: ui.micBadge });
      ui.micStatus.hidden = S.mic.status !== "ok";
      ui.micStatus.textContent = S.heard
        ? t("麦克风工作正常。")
        : t("请对着麦克风说话，音量条应随声音跳动。");

      renderSpeaker();
      renderNet();

      const nothing = chosen().length === 0;
      if (state === "checking") ui.summary.textContent = t("正在检测设备…");
      else if (state === "blocked") {
        ui.summary.textContent = t("部分设备不可用。您仍可进入，但其他人可能看不到或听不到您。");
      } else if (nothing) {
        ui.summary.textContent = t("您将不使用摄像头和麦克风进入，其他人看不到也听不到您。");
      } else ui.summary.textContent = t("设备正常，可以进入。");
      ui.summary.dataset.state = state;
      ui.join.textContent = t("进入");
      ui.join.disabled = state === "checking" && !S.patient;
      ui.countdown.hidden = S.countdown === null;
      ui.countdown.textContent = S.countdown === null
        ? "" : t("{n} 秒后自动进入", { n: S.countdown });
    }

    function renderSpeaker() {
      const sp = S.speaker;
      ui.speakerBox.dataset.state = sp.state;
      ui.speakerTitle.textContent = t("扬声器");
      if (sp.state === "ok") badge(ui.speakerBadge, "ok", t("正常"));
      else if (sp.state === "failed") badge(ui.speakerBadge, "warn", t("未听到"));
      else if (sp.state === "error") badge(ui.speakerBadge, "bad", t("不可用"));
      else badge(ui.speakerBadge, "wait", t("未测试"));
      ui.speakerLabel.textContent = t("选择扬声器");
      const canPick = canSetSink() && S.devices.audiooutput.length > 1;
      ui.speakerPick.hidden = !canPick;
      if (canPick) {
        fillSelect(ui.speakerSelect, S.devices.audiooutput, sp.sink || "default",
          (n) => t("扬声器 {n}", { n }));
      }
      ui.play.textContent = sp.state === "playing" ? t("正在播放提示音…") : t("播放提示音");
      ui.play.disabled = sp.state === "playing";
      // A kiosk is checked by its technicians: the question would only hold the inmate up.
      ui.answers.hidden = kiosk || !["asked", "ok", "failed"].includes(sp.state);
      ui.question.textContent = t("听到提示音了吗？");
      ui.heard.textContent = t("听到了");
      ui.notHeard.textContent = t("没听到");
      ui.heard.setAttribute("aria-pressed", String(sp.state === "ok"));
      ui.notHeard.setAttribute("aria-pressed", String(sp.state === "failed"));
      ui.speakerAdvice.hidden = !["failed", "ok", "error"].includes(sp.state);
      if (sp.state === "ok") ui.speakerAdvice.textContent = t("扬声器工作正常。");
      else if (sp.state === "error") {
        ui.speakerAdvice.textContent = t("无法播放提示音。请检查扬声器或耳机，然后再试一次。");
      } else {
        ui.speakerAdvice.textContent = t("请检查：音箱或耳机已接好并打开，系统音量没有静音；如有多个扬声器，请选择另一个后再试一次。");
      }
    }

    function renderNet() {
      const net = S.net;
      ui.netBox.dataset.state = net.state;
      if (net.rtt !== null) ui.netBox.dataset.rttMs = String(net.rtt);
      else delete ui.netBox.dataset.rttMs;
      ui.netTitle.textContent = t("网络连接");
      if (net.state === "ok") badge(ui.netBadge, "ok", t("正常"));
      else if (net.state === "slow") badge(ui.netBadge, "warn", t("较慢"));
      else if (net.state === "failed") badge(ui.netBadge, "bad", t("不可用"));
      else badge(ui.netBadge, "wait", t("检测中"));
      ui.netRetry.textContent = t("重新检测");
      ui.netRetry.hidden = net.state === "checking";
      if (net.state === "checking") ui.netResult.textContent = t("正在检测与服务器的连接…");
      else if (net.rtt !== null) {
        ui.netResult.textContent = t("与服务器的往返延迟：{ms} 毫秒", { ms: net.rtt });
      } else ui.netResult.textContent = t("无法连接到服务器。");
      let advice = "";
      if (net.problem === "socket") {
        advice = t("无法连接到庭审服务器。请检查网络连接，然后点击“重新检测”。");
      } else if (net.problem === "rtc") {
        advice = t("此浏览器不支持音视频通话。请使用最新版本的 Chrome、Edge、Firefox 或 Safari。");
      } else if (net.state === "slow") {
        advice = t("网络较慢，画面和声音可能卡顿。建议使用有线网络或靠近无线路由器，并关闭其他占用网络的程序。");
      } else if (net.state === "ok") advice = t("网络连接正常。");
      ui.netAdvice.textContent = advice;
      ui.netAdvice.dataset.kind = net.state;
    }

    // -- camera and microphone -----------------------------------------------------------------

    function adopt(dev, track) {
      if (S.done) { track.stop(); return; }
      if (dev.track && dev.track !== track) dev.track.stop();
      dev.track = track;
      dev.status = "ok";
      dev.error = "";
      listen(track, "ended", () => {
        if (dev.track !== track || S.done) return;
        dev.track = null;
        dev.status = "error";
        dev.error = "ended";
        if (dev === S.mic) stopMeter();
        else ui.video.srcObject = null;
        changed();
      }, { once: true });
      if (dev === S.camera) {
        ui.video.srcObject = new MediaStream([track]);
        ui.video.play().catch(() => { /* autoplay muted video: plays once visible */ });
      } else startMeter(track);
    }

    function constraint(dev, kind) {
      const id = dev.preferred;
      const c = id ? { deviceId: { exact: id } } : {};
      if (kind === "video") Object.assign(c, { width: { ideal: 1280 }, height: { ideal: 720 } });
      return Object.keys(c).length ? c : true;
    }

    // Ask for `devs` together (one permission prompt); when that fails, one by one, so the
    // advice names what failed and what works is kept.
    async function acquire(devs) {
      devs = devs.filter((d) => d.want);
      if (!devs.length) return;
      if (!navigator.mediaDevices?.getUserMedia) {
        for (const d of devs) Object.assign(d, { status: "error", error: "unsupported" });
        changed();
        return;
      }
      for (const d of devs) {
        // One camera at a time: some systems cannot open a second while the first is held.
        if (d.track) { d.track.stop(); d.track = null; }
        d.status = "pending";
      }
      if (devs.includes(S.camera)) ui.video.srcObject = null;
      if (devs.includes(S.mic)) stopMeter();
      changed();
      const constraints = {};
      if (devs.includes(S.camera)) constraints.video = constraint(S.camera, "video");
      if (devs.includes(S.mic)) constraints.audio = constraint(S.mic, "audio");
      try {
        const stream = await navigator.mediaDevices.getUserMedia(constraints);
        const [videoTrack] = stream.getVideoTracks();
        const [audioTrack] = stream.getAudioTracks();
        if (videoTrack) adopt(S.camera, videoTrack);
        if (audioTrack) adopt(S.mic, audioTrack);
      } catch (e) {
        const name = e && e.name ? e.name : "Error";
        // A remembered device that is gone: try the default before giving up.
        const stale = devs.filter((d) => d.preferred && MISSING.has(name));
        if (stale.length) {
          for (const d of stale) d.preferred = "";
          await acquire(devs);
          return;
        }
        if (devs.length > 1) {
          for (const d of devs) await acquire([d]);
          return;
        }
        console.warn("getUserMedia", constraints, e);
        Object.assign(devs[0], { status: "error", error: name });
      }
      await listDevices();
      changed();
    }

    async function listDevices() {
      if (!navigator.mediaDevices?.enumerateDevices) return;
      try {
        const all = await navigator.mediaDevices.enumerateDevices();
        for (const kind of Object.keys(S.devices)) {
          const seen = new Set();
          S.devices[kind] = all.filter((d) => d.kind === kind && d.deviceId
            && !seen.has(d.deviceId) && seen.add(d.deviceId));
        }
      } catch { /* the pickers stay as they were */ }
    }

    // -- microphone level ----------------------------------------------------------------------

    function context() {
      if (!audioContext) {
        const Ctx = window.AudioContext || window.webkitAudioContext;
        if (!Ctx) return null;
        audioContext = new Ctx();
      }
      return audioContext;
    }

    function startMeter(track) {
      stopMeter();
      const ctx = context();
      if (!ctx) return;
      // Created before any click, the context may start suspended: resume on the first one.
      if (ctx.state === "suspended") ctx.resume().catch(() => {});
      const source = ctx.createMediaStreamSource(new MediaStream([track]));
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      source.connect(analyser);
      const buffer = new Float32Array(analyser.fftSize);
      const timer = setInterval(() => {
        analyser.getFloatTimeDomainData(buffer);
        let sum = 0;
        for (const v of buffer) sum += v * v;
        const rms = Math.sqrt(sum / buffer.length);
        const db = rms > 0 ? 20 * Math.log10(rms) : -Infinity;
        const now = Math.min(1, Math.max(0, (db - METER_FLOOR_DB) / -METER_FLOOR_DB));
        level = Math.max(now, level * METER_DECAY);
        const shown = level < 0.005 ? 0 : level;
        ui.meter.dataset.level = shown.toFixed(3);
        ui.meter.setAttribute("aria-valuenow", shown.toFixed(2));
        ui.meterBar.style.transform = `scaleX(${shown})`;
        ui.meterBar.dataset.loud = String(shown >= VOICE_LEVEL);
        if (!S.heard && now >= VOICE_LEVEL) { S.heard = true; render(); }
      }, METER_INTERVAL_MS);
      meter = { source, analyser, timer };
    }

    function stopMeter() {
      if (!meter) return;
      clearInterval(meter.timer);
      meter.source.disconnect();
      meter = null;
      level = 0;
      ui.meter.dataset.level = "0";
      ui.meterBar.style.transform = "scaleX(0)";
    }

    // -- speaker -------------------------------------------------------------------------------

    function canSetSink() {
      return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
    }

    async function playTone() {
      const ctx = context();
      if (!ctx) { S.speaker.state = "error"; render(); return; }
      S.speaker.state = "playing";
      render();
      try {
        await ctx.resume();
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = TONE_HZ;
        const at = ctx.currentTime + 0.05;
        gain.gain.setValueAtTime(0, at);
        // Two soft beeps, ramped so they do not click.
        for (const start of [0, 0.45]) {
          gain.gain.linearRampToValueAtTime(0.3, at + start + 0.03);
          gain.gain.setValueAtTime(0.3, at + start + 0.3);
          gain.gain.linearRampToValueAtTime(0, at + start + 0.33);
        }
        let out = ctx.destination;
        const sink = S.speaker.sink;
        if (canSetSink() && sink && sink !== "default") {
          const dest = ctx.createMediaStreamDestination();
          toneAudio = toneAudio || new Audio();
          toneAudio.srcObject = dest.stream;
          await toneAudio.setSinkId(sink);
          await toneAudio.play();
          out = dest;
        }
        osc.connect(gain).connect(out);
        osc.start(at);
        osc.stop(at + 0.9);
        await new Promise((done) => { osc.onended = done; });
        osc.disconnect();
        if (toneAudio) toneAudio.pause();
        if (!S.done) S.speaker.state = "asked";
      } catch (e) {
        console.warn("speaker test", e);
        if (!S.done) S.speaker.state = "error";
      }
      render();
    }

    // -- connection ----------------------------------------------------------------------------

    async function checkConnection() {
      S.net = { state: "checking", rtt: null, problem: "" };
      render();
      const rtts = [];
      let problem = "";
      try {
        rtts.push(...await pingServer());
      } catch (e) {
        console.warn("connection check", e);
        problem = "socket";
      }
      if (S.done) return;
      const rtt = rtts.length ? Math.round(median(rtts)) : null;
      if (!problem && typeof window.RTCPeerConnection !== "function") problem = "rtc";
      let state = "ok";
      if (problem) state = "failed";
      else if (rtt > SLOW_RTT_MS) state = "slow";
      S.net = { state, rtt, problem };
      changed();
    }

    function pingServer() {
      return new Promise((done, fail) => {
        const scheme = location.protocol === "https:" ? "wss" : "ws";
        const ws = new WebSocket(`${scheme}://${location.host}/ws`);
        socket = ws;
        const rtts = [];
        let sentAt = 0;
        let timer = setTimeout(() => finish(new Error("no connection")), OPEN_TIMEOUT_MS);
        const finish = (error) => {
          clearTimeout(timer);
          if (socket === ws) socket = null;
          ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
          if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
          if (error) fail(error);
          else done(rtts);
        };
        const ping = () => {
          clearTimeout(timer);
          timer = setTimeout(() => finish(new Error("no pong")), PONG_TIMEOUT_MS);
          sentAt = performance.now();
          ws.send(JSON.stringify({ type: "ping", ref: String(rtts.length + 1) }));
        };
        ws.onopen = ping;
        ws.onmessage = (event) => {
          let message;
          try { message = JSON.parse(event.data); } catch { return; }
          if (message.type !== "pong" || message.ref !== String(rtts.length + 1)) return;
          rtts.push(performance.now() - sentAt);
          if (rtts.length >= PINGS) finish();
          else ping();
        };
        ws.onerror = () => finish(new Error("socket error"));
        ws.onclose = () => finish(new Error("socket closed"));
      });
    }

    // -- kiosk ---------------------------------------------------------------------------------

    function updateCountdown() {
      const due = kiosk && !S.done && overall() === "ready" && chosen().length > 0;
      if (due && countdownTimer === null) {
        S.countdown = KIOSK_AUTO_JOIN_S;
        countdownTimer = setInterval(() => {
          S.countdown -= 1;
          if (S.countdown <= 0) finish();
          else render();
        }, 1000);
      } else if (!due && countdownTimer !== null) {
        clearInterval(countdownTimer);
        countdownTimer = null;
        S.countdown = null;
      }
    }

    function changed() {
      updateCountdown();
      render();
    }

    // -- the end -------------------------------------------------------------------------------

    function finish() {
      if (S.done) return;
      S.done = true;
      off.abort();
      clearInterval(countdownTimer);
      stopMeter();
      if (socket) socket.close(1000);
      if (toneAudio) { toneAudio.pause(); toneAudio.srcObject = null; }
      if (audioContext) audioContext.close().catch(() => {});
      ui.video.pause();
      ui.video.srcObject = null;
      const keep = chosen();
      for (const dev of [S.camera, S.mic]) {
        if (dev.track && !keep.includes(dev)) dev.track.stop();
      }
      const id = (dev) => dev.track?.getSettings().deviceId || dev.preferred || undefined;
      savePrefs({ camera: id(S.camera), mic: id(S.mic), speaker: S.speaker.sink || undefined });
      container.replaceChildren();
      delete container.dataset.state;
      resolve(keep.length ? new MediaStream(keep.map((d) => d.track)) : null);
    }

    // -- wiring --------------------------------------------------------------------------------

    listen(ui.join, "click", finish);
    listen(ui.cameraRetry, "click", () => acquire([S.camera]));
    listen(ui.micRetry, "click", () => acquire([S.mic]));
    listen(ui.netRetry, "click", checkConnection);
    listen(ui.play, "click", playTone);
    listen(ui.heard, "click", () => { S.speaker.state = "ok"; render(); });
    listen(ui.notHeard, "click", () => { S.speaker.state = "failed"; render(); });
    listen(ui.noCamera, "change", () => { S.camera.skip = ui.noCamera.checked; changed(); });
    listen(ui.noMic, "change", () => { S.mic.skip = ui.noMic.checked; changed(); });
    listen(ui.cameraSelect, "change", () => {
      S.camera.preferred = ui.cameraSelect.value;
      acquire([S.camera]);
    });
    listen(ui.micSelect, "change", () => {
      S.mic.preferred = ui.micSelect.value;
      acquire([S.mic]);
    });
    listen(ui.speakerSelect, "change", () => {
      S.speaker.sink = ui.speakerSelect.value;
      if (S.speaker.state !== "playing") S.speaker.state = "idle";
      render();
    });
    listen(window, "langchange", render);
    listen(document, "pointerdown", () => {
      if (audioContext && audioContext.state === "suspended") audioContext.resume().catch(() => {});
    });
    if (navigator.mediaDevices?.addEventListener) {
      // A device plugged in after a "not found" is picked up without a click.
      listen(navigator.mediaDevices, "devicechange", async () => {
        await listDevices();
        const missing = [S.camera, S.mic].filter((d) => d.status === "error"
          && (MISSING.has(d.error) || d.error === "ended"));
        if (missing.length) await acquire(missing);
        else render();
      });
    }
    setTimeout(() => { S.patient = true; if (!S.done) render(); }, CHECKING_MAX_MS);

    render();
    acquire([S.camera, S.mic]);
    checkConnection();
  });
}

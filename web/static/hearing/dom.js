// Small DOM helpers shared by the hearing page's modules: building elements, line icons, the
// status line, and times in the reader's language and the court's time zone.
import { formatCourt, toDateInput } from "/static/court-time.js";
import { lang } from "/static/i18n.js";

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "class") node.className = v;
    else if (k === "on") for (const [event, fn] of Object.entries(v)) node.addEventListener(event, fn);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v != null) node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child != null && child !== false) node.append(child);
  }
  return node;
}

// Line icons drawn in the page (24×24, stroked in the text colour): nothing is fetched.
const ICONS = {
  mic: ["M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z", "M5.5 11a6.5 6.5 0 0 0 13 0",
    "M12 17.5V21", "M8.5 21h7"],
  "mic-off": ["M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z",
    "M5.5 11a6.5 6.5 0 0 0 13 0", "M12 17.5V21", "M8.5 21h7", "M4 4l16 16"],
  camera: ["M3.5 7h11v10h-11z", "M14.5 10.5l6-3.5v10l-6-3.5"],
  "camera-off": ["M3.5 7h11v10h-11z", "M14.5 10.5l6-3.5v10l-6-3.5", "M3 4l17 16"],
  hand: ["M8 12.5V6.2a1.4 1.4 0 0 1 2.8 0V11", "M10.8 11V4.7a1.4 1.4 0 0 1 2.8 0V11",
    "M13.6 11V5.9a1.4 1.4 0 0 1 2.8 0V13",
    "M16.4 9.4a1.4 1.4 0 0 1 2.8 0V14c0 4-2.6 7-6.4 7-2.9 0-4.6-1.5-5.9-4l-1.8-3.4a1.4 1.4 0 0 1 2.4-1.4L8 13.6"],
  screen: ["M3 4.5h18v11.5H3z", "M8 20h8", "M12 16v4"],
  exhibit: ["M6 3h8l4 4v14H6z", "M14 3v4h4", "M9 12h6", "M9 15.5h6"],
  consult: ["M6.5 11h11v9.5h-11z", "M8.8 11V8a3.2 3.2 0 0 1 6.4 0v3", "M12 14.8v2.2"],
  back: ["M10 6l-6 6 6 6", "M4 12h16"],
  prev: ["M15 5l-7 7 7 7"],
  next: ["M9 5l7 7-7 7"],
  stop: ["M6 6h12v12H6z"],
  user: ["M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z", "M4.5 20.5c.8-3.9 3.8-6 7.5-6s6.7 2.1 7.5 6"],
};

const SVG = "http://www.w3.org/2000/svg";

export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", `icon icon-${name}`);
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

// A button's icon and label, replaced together when the label changes.
export function setButton(button, iconName, label) {
  const key = `${iconName}|${label}`;
  if (button.dataset.drawn === key) return;
  button.dataset.drawn = key;
  button.replaceChildren(icon(iconName), el("span", { class: "label" }, label));
}

let statusTimer = null;

// One line for what just happened; information fades after a while, problems stay until the
// next message.
export function status(text, kind = "info") {
  const line = $("status");
  if (!line) return;
  clearTimeout(statusTimer);
  line.textContent = text;
  line.dataset.kind = kind;
  line.hidden = !text;
  if (kind === "info" && text) statusTimer = setTimeout(() => { line.hidden = true; }, 6000);
}

const locale = () => (lang === "en" ? "en-GB" : "zh-CN");

export function formatDateTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return formatCourt(when, locale(), {
    year: "numeric", month: "long", day: "numeric", weekday: "short",
    hour: "2-digit", minute: "2-digit", hour12: false,
  });
}

export function formatTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return formatCourt(when, locale(), { hour: "2-digit", minute: "2-digit", hour12: false });
}

// A scheduled span: the date once when both ends fall on the same day at the court.
export function formatRange(startIso, endIso) {
  const start = new Date(startIso);
  const end = new Date(endIso);
  if (Number.isNaN(end.getTime())) return formatDateTime(startIso);
  const sameDay = toDateInput(start) === toDateInput(end);
  return `${formatDateTime(startIso)} – ${sameDay ? formatTime(endIso) : formatDateTime(endIso)}`;
}

// Seconds on the hearing timeline as m:ss or h:mm:ss.
export function formatOffset(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

// The first character of a name, for a tile without video (a Chinese surname, or an initial).
export function initial(name) {
  const first = [...(name || "").trim()][0] || "?";
  return first.toUpperCase();
}

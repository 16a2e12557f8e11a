// The court's calendar: wall-clock times in the court's time zone (TIME_ZONE, from the server),
// whatever zone the reader's computer is in. A clerk in another zone, or on a laptop set to UTC,
// schedules and reads hearings in the court's time, as the parties' links and documents show it.
// Days are held as the instant of the court's midnight; arithmetic goes through wall-clock parts
// (Date.UTC normalises day and hour overflow), never through the browser's local zone.
import { TIME_ZONE } from "/static/labels.js";

const PARTS = new Intl.DateTimeFormat("en-US", {
  timeZone: TIME_ZONE, hourCycle: "h23", weekday: "short",
  year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric",
  second: "numeric",
});
const WEEKDAY = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

// The court's wall clock at `when`: { year, month (1–12), day, hour, minute, second, weekday
// (0 = Monday) }.
export function courtParts(when) {
  const parts = {};
  for (const { type, value } of PARTS.formatToParts(new Date(when))) parts[type] = value;
  return {
    year: +parts.year, month: +parts.month, day: +parts.day, hour: +parts.hour,
    minute: +parts.minute, second: +parts.second, weekday: WEEKDAY[parts.weekday],
  };
}

const wallMs = (p) => Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second || 0);

// How far the court's clock is ahead of UTC at the instant `ms`.
const offsetAt = (ms) => wallMs(courtParts(ms)) - ms;

// The instant when the court's clock reads year-month-day hour:minute (fields may overflow:
// day 32 is the next month's first). A time skipped by a daylight-saving jump lands after it
// (a day whose midnight is skipped, as in Cairo or Beirut, starts at 01:00); a time the clock
// reads twice is its first.
export function courtInstant(year, month, day, hour = 0, minute = 0) {
  const wanted = Date.UTC(year, month - 1, day, hour, minute);
  // The offsets in force a day either side: the answer has one of them (zones change their
  // offset at most once in a day).
  const offsets = [...new Set([offsetAt(wanted - 86_400_000), offsetAt(wanted + 86_400_000)])];
  const found = offsets.map((o) => wanted - o).filter((ms) => offsetAt(ms) + ms === wanted);
  if (found.length) return new Date(Math.min(...found));
  // Skipped: the wall time read with the offset before the jump (the smaller) is after it.
  return new Date(wanted - Math.min(...offsets));
}

// The court's midnight starting the day of `when`, `days` later (negative: earlier).
export function courtDay(when, days = 0) {
  const p = courtParts(when);
  return courtInstant(p.year, p.month, p.day + days);
}

// `hour`:`minute` on the court's day `day`.
export function atHour(day, hour, minute = 0) {
  const p = courtParts(day);
  return courtInstant(p.year, p.month, p.day, hour, minute);
}

// Monday, the court's midnight, of the week of `when`.
export const mondayOf = (when) => courtDay(when, -courtParts(when).weekday);

const pad = (n) => String(n).padStart(2, "0");

// "2026-11-23": the court's date of `when` (the value of an <input type="date">, and a key).
export function toDateInput(when) {
  const p = courtParts(when);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
}

// The value of an <input type="datetime-local"> showing `when` on the court's clock, and back.
export function toLocalInput(when) {
  const p = courtParts(when);
  return `${toDateInput(when)}T${pad(p.hour)}:${pad(p.minute)}`;
}

const INPUT = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?/;

// An <input type="datetime-local"> or <input type="date"> value read on the court's clock.
export function fromLocalInput(value) {
  const match = INPUT.exec(value || "");
  if (!match) return null;
  const [, y, mo, d, h = "0", mi = "0"] = match;
  return courtInstant(+y, +mo, +d, +h, +mi);
}

// Intl formatting on the court's clock.
export function formatCourt(when, locale, options) {
  return new Intl.DateTimeFormat(locale, { ...options, timeZone: TIME_ZONE })
    .format(when instanceof Date ? when : new Date(when));
}

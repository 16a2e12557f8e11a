// The week calendar's geometry: weeks from Monday, where a hearing falls in a day's 8:00–20:00
// column, side-by-side columns for overlapping blocks, and the short form of a case number.
// Days and hours are the court's (court-time.js), not the reader's computer's.
import { atHour, courtDay, mondayOf } from "/static/court-time.js";

export { mondayOf };

export const DAY_FROM_H = 8;
export const DAY_TO_H = 20;

// Where [start, end) falls in `day`'s 8:00–20:00 column, in percent; null when not that day.
export function placement(start, end, day) {
  const next = courtDay(day, 1);
  if (end <= day || start >= next) return null;
  const from = atHour(day, DAY_FROM_H);
  const to = atHour(day, DAY_TO_H);
  const span = to - from;
  const a = Math.max(start, from), b = Math.min(end, to);
  if (a < b) {
    return { top: ((a - from) / span) * 100, height: ((b - a) / span) * 100,
      clippedTop: start < from, clippedBottom: end > to, outside: false };
  }
  // On this day but outside the grid's hours: pinned to the nearer edge.
  const before = end <= from;
  return { top: before ? 0 : 100, height: 0, outside: before ? "before" : "after" };
}

// Side-by-side columns for blocks that overlap in one lane on one day.
export function arrange(items) {
  items.sort((a, b) => a.start - b.start || b.end - a.end);
  let group = [], groupEnd = -Infinity;
  const flush = () => {
    const ends = [];
    for (const item of group) {
      let col = ends.findIndex((e) => e <= item.start);
      if (col < 0) { col = ends.length; ends.push(0); }
      ends[col] = item.end;
      item.col = col;
    }
    for (const item of group) item.cols = ends.length;
  };
  for (const item of items) {
    if (item.start >= groupEnd && group.length) { flush(); group = []; groupEnd = -Infinity; }
    group.push(item);
    groupEnd = Math.max(groupEnd, item.end);
  }
  if (group.length) flush();
  return items;
}

// In a narrow block the end of a case number tells hearings apart: "(2026)京0105刑初12号" shows
// as "刑初12号" (the year and the court's code are the same all week); the tooltip has it all.
export function shortCase(caseNumber) {
  const match = /^[(（]\d{4}[)）][^\d]*\d+(\D.*)$/u.exec(caseNumber);
  return match ? match[1] : caseNumber;
}

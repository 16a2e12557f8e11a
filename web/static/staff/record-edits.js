// The clerk's structural edits of the trial record on the review page (each one makes the
// record's next version; earlier versions are kept) and the side-by-side comparison of two
// versions.
import { t } from "/static/i18n.js";
import { roleLabel } from "/static/labels.js";
import { $, el, errorText, fmtDateTime, showStatus } from "/static/staff/common.js";

// Who may speak in the record: everyone of the hearing but observers.
function speakers(people) {
  return [...people.entries()].filter(([, p]) => p.role && p.role !== "observer");
}

function speakerSelect(people, selected) {
  const select = el("select", { name: "speaker", "aria-label": t("发言人") });
  for (const [id, p] of speakers(people)) {
    const option = el("option", { value: id }, `${roleLabel(p.role)} ${p.name}`);
    if (id === selected) option.selected = true;
    select.append(option);
  }
  return select;
}

// The toolbar under a line: change its speaker, delete it, merge it with the next, split it
// where the cursor is, insert a missing line after it.
export function structureTools(line, next, ctx) {
  const send = async (body, done) => {
    try {
      await ctx.api(`${ctx.base}/transcript/edits`, { method: "POST", body, keepSession: true });
      ctx.S.structure = null;
      await ctx.reload();
      showStatus(done);
    } catch (e) {
      showStatus(errorText(e), "error");
    }
  };
  const speaker = speakerSelect(ctx.S.people, line.participant_id);
  const splitText = el("input", { name: "split", value: line.text, "aria-label": t("在光标处拆分") });
  const addSpeaker = speakerSelect(ctx.S.people, line.participant_id);
  const addText = el("input", { name: "insert", placeholder: t("漏记的内容"), maxlength: "4000" });
  const button = (action, label, onclick, kind = "small") =>
    el("button", { type: "button", class: kind, dataset: { edit: action }, onclick }, label);
  return el("div", { class: "structure-tools", dataset: { lineId: line.id } },
    el("div", { class: "row" }, speaker, button("speaker", t("改发言人"), () => send(
      { action: "speaker", line_ids: [line.id], participant_id: speaker.value },
      t("已更改发言人。")))),
    el("div", { class: "row" }, splitText, button("split", t("在光标处拆分"), () => send(
      { action: "split", line_ids: [line.id], at: splitText.selectionStart || 0 },
      t("已拆分。")))),
    el("div", { class: "row" }, addSpeaker, addText, button("insert", t("在此后插入"), () => {
      const text = addText.value.trim();
      if (!text) return showStatus(t("内容不能为空。"), "error");
      const end = next ? Math.max(line.end, Math.min(next.start, line.end + 5)) : line.end + 5;
      return send({ action: "insert", participant_id: addSpeaker.value, text,
        start: line.end, end }, t("已插入。"));
    })),
    el("div", { class: "row" },
      next ? button("merge", t("与下一行合并"), () => send(
        { action: "merge", line_ids: [line.id, next.id] }, t("已合并。"))) : null,
      button("delete", t("删除本行"), () => {
        if (window.confirm(t("删除这一行？删除前的版本仍会保留。"))) {
          send({ action: "delete", line_ids: [line.id] }, t("已删除。"));
        }
      }, "small danger")));
}

// -- versions, compared side by side ------------------------------------------------------------

const EDITS = { delete: "删除", insert: "插入", speaker: "更改发言人", merge: "合并", split: "拆分" };

export async function loadVersions(ctx) {
  const { items } = await ctx.api(`${ctx.base}/transcript/versions`, { keepSession: true });
  ctx.S.versions = items;
  const label = (v) => (v.edit
    ? t("第 {n} 版：{edit}（{who}，{at}）", { n: v.version, edit: t(EDITS[v.edit] || v.edit),
      who: ctx.who(v.made_by, v.made_by_name), at: fmtDateTime(v.at) })
    : v.version === 1 ? t("第 1 版：庭审实时记录") : t("第 {n} 版：据录音重新转写", { n: v.version }));
  const box = $("versions");
  box.hidden = items.length < 2;
  for (const [id, pick] of [["compare-a", items.length - 2], ["compare-b", items.length - 1]]) {
    const select = $(id);
    select.replaceChildren(...items.map((v) => el("option", { value: String(v.version) }, label(v))));
    if (items[pick]) select.value = String(items[pick].version);
  }
}

// The longest common subsequence of lines (speaker and text) aligns the two versions.
function aligned(a, b) {
  const key = (l) => `${l.participant_id}\u0000${l.text}`;
  const n = a.length, m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = key(a[i]) === key(b[j]) ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const rows = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && key(a[i]) === key(b[j])) rows.push(["same", a[i++], b[j++]]);
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) rows.push(["added", null, b[j++]]);
    else rows.push(["removed", a[i++], null]);
  }
  return rows;
}

export async function compare(ctx) {
  const [va, vb] = [$("compare-a").value, $("compare-b").value];
  const [a, b] = await Promise.all([va, vb].map((v) =>
    ctx.api(`${ctx.base}/transcript?version=${encodeURIComponent(v)}`, { keepSession: true })));
  const cell = (line) => (line ? el("td", {},
    el("span", { class: "speaker" }, (ctx.S.people.get(line.participant_id) || { name: line.participant }).name),
    " ", line.text) : el("td", { class: "empty" }));
  $("compare-table").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", {}, t("第 {n} 版", { n: va })), el("th", {}, t("第 {n} 版", { n: vb })))),
    el("tbody", {}, ...aligned(a.items, b.items).map(([kind, left, right]) =>
      el("tr", { class: kind, dataset: { change: kind } }, cell(left), cell(right)))));
  $("compare-table").hidden = false;
}

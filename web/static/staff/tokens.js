// Integrations' API tokens (administrators): create one (its secret is shown here once, never
// again), list them with their last use on the court's clock, revoke one.
import { t } from "/static/i18n.js";
import {
  $, api, confirmDialog, copiedMessage, copyText, el, errorText, fmtDateTime, listAll, showStatus,
  startStaffPage,
} from "/static/staff/common.js";

const SCOPE_ZH = { schedule: "排期", read_records: "查阅", manage_places: "场所" };
const S = { tokens: [], courts: new Map() };

function render() {
  $("token-rows").replaceChildren(...S.tokens.map((tok) => el("tr", { dataset: { tokenId: tok.id } },
    el("td", {}, tok.name),
    el("td", {}, tok.scopes.map((s) => t(SCOPE_ZH[s] || s)).join("、")),
    el("td", {}, tok.court_id ? S.courts.get(tok.court_id) || "" : t("所有法院")),
    el("td", {}, tok.created_by_name || tok.created_by),
    el("td", {}, fmtDateTime(tok.created_at)),
    el("td", { class: "last-used" }, tok.last_used_at ? fmtDateTime(tok.last_used_at) : t("从未使用")),
    el("td", { class: "state" }, tok.revoked
      ? t("已于 {time} 吊销", { time: fmtDateTime(tok.revoked_at) }) : t("有效")),
    el("td", { class: "actions" }, tok.revoked ? null : el("button", {
      type: "button", class: "small danger", "data-action": "revoke", onclick: () => revoke(tok),
    }, t("吊销"))))));
  $("token-empty").hidden = S.tokens.length > 0;
  $("token-table").hidden = S.tokens.length === 0;
}

async function revoke(tok) {
  const sure = await confirmDialog({
    title: t("吊销令牌“{name}”？", { name: tok.name }),
    paragraphs: [t("使用该令牌的系统下一次请求即被拒绝。吊销后不能恢复。")],
    confirm: t("吊销"), danger: true,
  });
  if (!sure) return;
  try {
    await api(`/tokens/${tok.id}/revoke`, { method: "POST" });
    showStatus(t("令牌“{name}”已吊销。", { name: tok.name }));
    await reload();
  } catch (e) {
    showStatus(errorText(e), "error");
  }
}

async function create(event) {
  event.preventDefault();
  const form = $("token-form");
  const body = {
    name: $("token-name").value.trim(),
    scopes: [...form.querySelectorAll('input[name="scope"]:checked')].map((box) => box.value),
  };
  if ($("token-court").value) body.court_id = $("token-court").value;
  $("token-form-message").textContent = "";
  if (!body.scopes.length) {
    $("token-form-message").textContent = t("请至少选择一项权限范围。");
    return;
  }
  try {
    const made = await api("/tokens", { method: "POST", body });
    $("token-secret").value = made.secret;
    $("token-created").hidden = false;
    form.reset();
    await reload();
  } catch (e) {
    $("token-form-message").textContent = errorText(e);
  }
}

async function reload() {
  const [courts, tokens] = await Promise.all([listAll("/courts"), api("/tokens")]);
  S.courts = new Map(courts.map((c) => [c.id, c.name]));
  $("token-court").replaceChildren(
    el("option", { value: "" }, t("所有法院")),
    ...courts.map((c) => el("option", { value: c.id }, c.name)));
  S.tokens = tokens.items;
  render();
}

function init() {
  $("token-form").addEventListener("submit", create);
  $("token-copy").addEventListener("click", async () => {
    showStatus(copiedMessage(await copyText($("token-secret").value, $("token-secret"))));
  });
  window.addEventListener("langchange", render);
}

startStaffPage({ init, reload });

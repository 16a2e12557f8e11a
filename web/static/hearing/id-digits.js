// The last digits of the participant's ID number, when the court has them on file
// (docs/signaling.md, `id_digits`): asked for before joining, and again when the server says
// they are missing or wrong. Kept in this page only, never in storage, so that a reconnect
// joins with them again and a new page asks again.
import { t } from "/static/i18n.js";
import { $, formatTime } from "/static/hearing/dom.js";
import { S, onRender, render } from "/static/hearing/state.js";

export const ID_DIGITS_ERRORS = new Set(["id_digits_required", "id_digits_wrong", "id_digits_locked"]);
const PATTERN = /^[0-9]{3}[0-9Xx]$/;

let typed = null; // resolves the promise of askIdDigits

// Show the form (with why the server asked, a refusal's error message) and resolve once the
// participant has typed the digits.
export function askIdDigits(refusal = null) {
  S.idDigits = null;
  S.idDigitsAsk = refusal || { code: "id_digits_required" };
  render();
  return new Promise((resolve) => { typed = resolve; });
}

function reasonText(ask) {
  if (ask.code === "id_digits_wrong") {
    return t("号码不符，还可以再试 {n} 次。", { n: ask.tries_left ?? "?" });
  }
  if (ask.code === "id_digits_locked") {
    return t("输入错误次数过多，请于 {at} 后再试。", { at: formatTime(ask.locked_until) });
  }
  return "";
}

let shown = null;

function renderIdDigits(state) {
  const error = $("id-digits-error");
  if (state !== "id-digits") {
    shown = null;
    return;
  }
  if (shown === S.idDigitsAsk) return;
  shown = S.idDigitsAsk;
  const text = reasonText(S.idDigitsAsk);
  error.textContent = text;
  error.hidden = !text;
  const input = $("id-digits-input");
  input.value = "";
  input.removeAttribute("aria-invalid");
  input.focus();
}

export function setupIdDigits() {
  onRender(renderIdDigits);
  $("id-digits-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("id-digits-input");
    const value = input.value.trim();
    if (!PATTERN.test(value)) {
      const error = $("id-digits-error");
      error.textContent = t("请输入 4 位：数字，末位可以是 X。");
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    S.idDigits = value.toUpperCase();
    S.idDigitsAsk = null;
    render();
    const resolve = typed;
    typed = null;
    if (resolve) resolve(S.idDigits);
  });
}

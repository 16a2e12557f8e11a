// Chinese by default, English on request: every user-facing string is written in Chinese in the
// page or the script, and looked up here for English. Elements marked `data-i18n` are swapped in
// place (their Chinese is kept in `data-zh`); scripts call `t("中文")` for what they build.
import EN from "/static/lang/en.js";

const KEY = "tingshen.lang";
const LANGS = ["zh", "en"];

function initial() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (LANGS.includes(asked)) return asked;
  try {
    const saved = localStorage.getItem(KEY);
    if (LANGS.includes(saved)) return saved;
  } catch { /* storage may be disabled */ }
  return "zh";
}

export let lang = initial();

// The string in the current language; `{name}` placeholders are filled from `vars`.
export function t(zh, vars = {}) {
  const text = lang === "en" && EN[zh] !== undefined ? EN[zh] : zh;
  return text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

const ATTRS = ["title", "placeholder", "aria-label"];

export function applyI18n(root = document) {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  for (const node of root.querySelectorAll("[data-i18n]")) {
    if (node.dataset.zh === undefined) node.dataset.zh = node.textContent.trim();
    node.textContent = t(node.dataset.zh);
  }
  for (const attr of ATTRS) {
    const data = `i18n${attr.replace(/(^|-)(\w)/g, (m, d, c) => c.toUpperCase())}`;
    for (const node of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      if (node.dataset[data] === "") node.dataset[data] = node.getAttribute(attr) || "";
      node.setAttribute(attr, t(node.dataset[data]));
    }
  }
  const toggle = document.getElementById("lang-switch");
  if (toggle) {
    toggle.textContent = lang === "en" ? "中文" : "English";
    toggle.setAttribute("lang", lang === "en" ? "zh-CN" : "en");
  }
}

export function setLang(next) {
  if (!LANGS.includes(next) || next === lang) return;
  lang = next;
  try { localStorage.setItem(KEY, next); } catch { /* not kept across visits */ }
  applyI18n();
  window.dispatchEvent(new CustomEvent("langchange", { detail: { lang } }));
}

const toggle = document.getElementById("lang-switch");
if (toggle) toggle.addEventListener("click", () => setLang(lang === "en" ? "zh" : "en"));
applyI18n();

// Evidence (举证质证): upload an exhibit, show it to everyone in the main stage, turn its pages,
// show an earlier one again. The server keeps each exhibit with its SHA-256; the page shows the
// first 12 hex digits so that everyone can compare what they see with the record.
import { t } from "/static/i18n.js";
import { $, el, icon, status } from "/static/hearing/dom.js";
import { S, isControl, isObserver, nameOf, send } from "/static/hearing/state.js";

const TYPES = new Map([
  ["application/pdf", "PDF"], ["image/png", "PNG"], ["image/jpeg", "JPEG"],
]);
const SHA_SHOWN = 12;

const api = (path) => `/api/v1/hearings/${encodeURIComponent(S.hearingId)}${path}`;

// A page image, fetched with the join token in a header (never in a URL) and shown from memory.
const PAGES_KEPT = 8;
const pageImages = new Map(); // `${exhibit id}/${page}` -> Promise of an object URL

function pageImage(exhibitId, page) {
  const key = `${exhibitId}/${page}`;
  if (!pageImages.has(key)) {
    pageImages.set(key, fetch(api(`/exhibits/${encodeURIComponent(exhibitId)}/pages/${page}`),
      { headers: { Authorization: `Bearer ${S.token}` } })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((blob) => URL.createObjectURL(blob)));
    pageImages.get(key).catch(() => pageImages.delete(key));
    while (pageImages.size > PAGES_KEPT) {
      const [oldest, url] = pageImages.entries().next().value;
      pageImages.delete(oldest);
      url.then((u) => URL.revokeObjectURL(u), () => {});
    }
  }
  return pageImages.get(key);
}

export const mayPresent = () => S.admitted && !isObserver() && !S.kiosk;

// -- the main stage ----------------------------------------------------------------------------

function pageButton(iconName, label, onClick, disabled, extra = {}) {
  const button = el("button", { type: "button", class: "quiet", ...extra },
    icon(iconName), el("span", { class: "label" }, label));
  button.disabled = disabled;
  button.addEventListener("click", onClick);
  return button;
}

// Draws the exhibit being shown into `container`; false when none is.
export function renderExhibitStage(container) {
  const { exhibit, page, presenter_id: presenter } = S.exhibit;
  if (!exhibit) {
    const stale = container.querySelector(".exhibit-view");
    if (stale) stale.remove();
    return false;
  }
  const pages = exhibit.pages || 1;
  const controls = presenter === S.participantId || isControl();
  const signature = JSON.stringify([exhibit, page, presenter, controls,
    document.documentElement.lang, nameOf(presenter)]);
  const existing = container.querySelector(".exhibit-view");
  if (existing && existing.dataset.signature === signature) return true;

  const sha = String(exhibit.sha256 || "");
  const kind = TYPES.get(exhibit.media_type) || exhibit.media_type;
  const head = el("header", { class: "exhibit-head" },
    el("span", { class: "kicker" }, t("证据")),
    el("strong", { class: "title", id: "exhibit-title-shown" }, exhibit.title || "—"),
    el("span", { class: "meta" }, kind),
    el("span", { class: "meta", id: "exhibit-page" }, t("第 {n} / {total} 页", { n: page, total: pages })),
    el("span", { class: "meta hash", id: "exhibit-sha", title: `SHA-256 ${sha}` },
      `SHA-256 ${sha.slice(0, SHA_SHOWN)}`),
    presenter ? el("span", { class: "meta" }, t("出示人：{name}", { name: nameOf(presenter) })) : null);
  const img = el("img", { id: "exhibit-image",
    alt: t("{title}，第 {n} 页", { title: exhibit.title || "", n: page }),
    dataset: { exhibitId: exhibit.id, page: String(page) } });
  const failed = el("p", { class: "exhibit-failed", hidden: true }, t("此页无法显示"));
  const fail = () => { failed.hidden = false; img.hidden = true; };
  img.addEventListener("error", fail);
  const turn = (to) => send({ type: "present", exhibit_id: exhibit.id, page: to });
  const footer = controls ? el("footer", { class: "exhibit-controls" },
    pageButton("prev", t("上一页"), () => turn(page - 1), page <= 1, { id: "exhibit-prev" }),
    pageButton("next", t("下一页"), () => turn(page + 1), page >= pages, { id: "exhibit-next" }),
    pageButton("stop", t("停止出示"), () => send({ type: "present", exhibit_id: null }), false,
      { id: "exhibit-stop" })) : null;
  const view = el("section", { class: "exhibit-view", id: "exhibit-view",
    dataset: { signature, exhibitId: exhibit.id } },
  head, el("div", { class: "exhibit-page" }, img, failed), footer);
  // The image stays if only the labels changed (no reload, no flicker).
  const kept = existing && existing.querySelector("img");
  if (kept && kept.dataset.exhibitId === exhibit.id && kept.dataset.page === String(page)) {
    kept.alt = img.alt;
    view.querySelector(".exhibit-page").replaceChildren(kept, failed);
    failed.hidden = !kept.hidden;
  } else {
    pageImage(exhibit.id, page).then((url) => { img.src = url; }, fail);
  }
  for (const child of [...container.children]) if (child.classList.contains("exhibit-view")) child.remove();
  container.prepend(view);
  return true;
}

// -- the upload and list dialog ----------------------------------------------------------------

function errorText(statusCode, text) {
  try {
    const body = JSON.parse(text);
    const error = body.error || body;
    if (error && error.message) return error.code ? `${error.code}: ${error.message}` : error.message;
  } catch { /* not JSON: say what HTTP said */ }
  return `HTTP ${statusCode}`;
}

// XMLHttpRequest rather than fetch: it reports upload progress, which a large PDF needs.
function upload(file, title, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", api(`/exhibits?title=${encodeURIComponent(title)}`));
    xhr.setRequestHeader("Content-Type", file.type);
    xhr.setRequestHeader("Authorization", `Bearer ${S.token}`);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 201) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new Error(`HTTP ${xhr.status}`));
        }
      } else {
        reject(new Error(errorText(xhr.status, xhr.responseText)));
      }
    });
    xhr.addEventListener("error", () => reject(new Error(t("上传失败，请检查网络后重试"))));
    xhr.send(file);
  });
}

let items = [];

async function loadList() {
  const list = $("exhibit-list");
  try {
    const r = await fetch(api("/exhibits"), { headers: { Authorization: `Bearer ${S.token}` } });
    const text = await r.text();
    if (!r.ok) throw new Error(errorText(r.status, text));
    items = JSON.parse(text).items || [];
  } catch (e) {
    list.replaceChildren(el("li", { class: "error" }, e.message || String(e)));
    return;
  }
  drawList();
}

function drawList() {
  const list = $("exhibit-list");
  const shown = S.exhibit.exhibit ? S.exhibit.exhibit.id : null;
  if (!items.length) {
    list.replaceChildren(el("li", { class: "empty" }, t("本案尚无证据")));
    return;
  }
  list.replaceChildren(...items.map((x) => {
    const button = el("button", { type: "button", dataset: { exhibitId: x.id } },
      x.id === shown ? t("正在出示") : t("出示"));
    button.disabled = x.id === shown;
    button.addEventListener("click", () => {
      send({ type: "present", exhibit_id: x.id, page: 1 });
      $("exhibit-dialog").close();
    });
    return el("li", { dataset: { exhibitId: x.id } },
      el("div", { class: "item" },
        el("strong", {}, x.title || "—"),
        el("span", { class: "meta" }, [TYPES.get(x.media_type) || x.media_type,
          t("{n} 页", { n: x.pages || 1 }), `SHA-256 ${String(x.sha256 || "").slice(0, SHA_SHOWN)}`]
          .join(" · "))),
      button);
  }));
}

function resetForm() {
  $("exhibit-form").reset();
  $("exhibit-progress").hidden = true;
  $("exhibit-error").hidden = true;
  $("exhibit-upload").disabled = false;
}

export function openExhibits() {
  resetForm();
  $("exhibit-dialog").showModal();
  loadList();
}

export function setupExhibits() {
  const form = $("exhibit-form");
  const error = $("exhibit-error");
  const progress = $("exhibit-progress");
  $("exhibit-cancel").addEventListener("click", () => $("exhibit-dialog").close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("exhibit-file").files[0];
    error.hidden = true;
    if (!file) return;
    if (!TYPES.has(file.type)) {
      error.textContent = t("只能出示 PDF、PNG 或 JPEG 文件");
      error.hidden = false;
      return;
    }
    const title = $("exhibit-title").value.trim() || file.name.replace(/\.[^.]+$/, "");
    $("exhibit-upload").disabled = true;
    progress.hidden = false;
    progress.removeAttribute("value");
    try {
      const exhibit = await upload(file, title, (fraction) => { progress.value = fraction; });
      send({ type: "present", exhibit_id: exhibit.id, page: 1 });
      status(t("已上传并出示：{title}", { title: exhibit.title || title }));
      $("exhibit-dialog").close();
    } catch (e) {
      error.textContent = e.message || String(e);
      error.hidden = false;
      progress.hidden = true;
      $("exhibit-upload").disabled = false;
    }
  });
  window.addEventListener("langchange", () => {
    if ($("exhibit-dialog").open) drawList();
  });
}

// Private consultation between a defendant or party and their lawyer: ask the court, wait,
// talk privately (the court neither hears nor records it), come back.
import { t } from "/static/i18n.js";
import { CONSULTING_ROLES, CONSULT_ROLES, COUNSEL_ROLES, roleLabel } from "/static/labels.js";
import { $, el, setButton, status } from "/static/hearing/dom.js";
import {
  S, consultationOf, myConsultation, nameOf, onRender, partnerIn, send,
} from "/static/hearing/state.js";

export const mayConsult = () => CONSULT_ROLES.has(S.role) && S.admitted;

// Who this person may consult: their lawyer(s), or a lawyer's defendants and parties, present
// and admitted.
export function candidates() {
  const wanted = COUNSEL_ROLES.has(S.role) ? CONSULTING_ROLES : COUNSEL_ROLES;
  return S.participants.filter((p) => wanted.has(p.role) && p.present && p.admitted
    && p.participant_id !== S.participantId);
}

export function myRequest() {
  return S.consultations.requests.find((r) => r.participant_id === S.participantId) || null;
}

function requestToMe() {
  return S.consultations.requests.find((r) => r.with === S.participantId) || null;
}

let withdrawn = false;

// The court's answer shows as a change of `consultations`: a request that disappears without a
// consultation starting was refused (unless this page withdrew it).
export function consultationsChanged(next) {
  const before = myRequest() || requestToMe();
  S.consultations = next;
  if (before && !myRequest() && !requestToMe()) {
    if (myConsultation()) status(t("法庭已准许私下会见"));
    else if (!withdrawn) status(t("法庭未准许私下会见申请"), "warn");
  }
  if (!myRequest()) withdrawn = false;
}

export function requestLabel() {
  return S.role === "lawyer" ? t("申请与当事人私下会见") : t("申请与律师私下会见");
}

function openPicker() {
  const list = $("consult-candidates");
  const people = candidates();
  list.replaceChildren(...people.map((p) => {
    const busy = !!consultationOf(p.participant_id);
    const button = el("button", { type: "button", class: "primary",
      dataset: { participantId: p.participant_id } }, t("申请"));
    button.disabled = busy;
    button.addEventListener("click", () => {
      send({ type: "consult", action: "request", with: p.participant_id });
      $("consult-dialog").close();
    });
    return el("li", {},
      el("span", { class: "who" }, el("strong", {}, p.name), " ", el("span", { class: "role" },
        roleLabel(p.role)), busy ? el("span", { class: "tag consult" }, t("私下会见中")) : null),
      button);
  }));
  $("consult-none").hidden = people.length > 0;
  $("consult-dialog").showModal();
}

function endConsultation() {
  withdrawn = true;
  send({ type: "consult", action: "end" });
}

export function setupConsult() {
  $("btn-consult").addEventListener("click", () => {
    if (myRequest()) endConsultation();
    else openPicker();
  });
  $("consult-cancel").addEventListener("click", () => $("consult-dialog").close());
  $("btn-consult-return").addEventListener("click", endConsultation);
}

onRender(() => {
  const button = $("btn-consult");
  button.hidden = !mayConsult();
  const pending = $("consult-pending");
  const mine = myRequest();
  const incoming = requestToMe();
  const consultation = myConsultation();
  if (!button.hidden) {
    if (mine) setButton(button, "consult", t("撤回会见申请"));
    else setButton(button, "consult", requestLabel());
    button.setAttribute("aria-pressed", String(!!mine));
    button.disabled = !mine && (!!consultation || candidates().length === 0 || !!incoming);
    button.title = candidates().length === 0 && !mine
      ? (S.role === "lawyer" ? t("当事人不在庭") : t("律师不在庭")) : "";
  }
  if (mine && !consultation) {
    pending.textContent = t("已申请与 {name} 私下会见，等待法庭准许", { name: nameOf(mine.with) });
  } else if (incoming && !consultation) {
    pending.textContent = t("{name} 申请与您私下会见，等待法庭准许", { name: nameOf(incoming.participant_id) });
  } else {
    pending.textContent = "";
  }
  pending.hidden = !pending.textContent;
  const banner = $("consult-banner");
  banner.hidden = !consultation;
  if (consultation) {
    $("consult-with").textContent = t("与 {name} 私下会见中", { name: nameOf(partnerIn(consultation)) });
  }
});

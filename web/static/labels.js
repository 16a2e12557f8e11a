// The court's vocabulary, from the server (GET /api/v1/vocabulary, defined in courtrooms): its
// words for roles, states, kinds and locations, and which roles and states go together. Loaded
// before any module that imports this one runs, so every page reads it synchronously.
import { t } from "/static/i18n.js";

async function load() {
  const reply = await fetch("/api/v1/vocabulary", { headers: { Accept: "application/json" } });
  if (!reply.ok) throw new Error(`the court's vocabulary: HTTP ${reply.status}`);
  return reply.json();
}

export const VOCABULARY = await load();

// The court's time zone: every time a page shows is the court's local time.
export const TIME_ZONE = VOCABULARY.time_zone;
// How the pages name it (北京时间, or UTC+09:00 elsewhere): shown where times are entered.
export const TIME_ZONE_LABEL = VOCABULARY.time_zone_label;

export const ROLE_ZH = VOCABULARY.roles;
export const STATE_ZH = VOCABULARY.states;
export const KIND_ZH = VOCABULARY.kinds;
export const LOCATION_ZH = VOCABULARY.locations;

// Roles in the order the court lists them.
export const ROLE_ORDER = Object.keys(ROLE_ZH);
export const CONTROL_ROLES = new Set(VOCABULARY.role_sets.controls_hearing);
// Who may ask for a private consultation, and everyone who takes part in one.
export const CONSULTING_ROLES = new Set(VOCABULARY.role_sets.consulting);
export const COUNSEL_ROLES = new Set(VOCABULARY.role_sets.counsel);
export const CONSULT_ROLES = new Set([...CONSULTING_ROLES, ...COUNSEL_ROLES]);
export const COURTROOM_ROLES = new Set(VOCABULARY.role_sets.in_courtroom);
// Who may be asked for the last digits of their ID number at the join (not the court, not
// observers).
export const ID_DIGITS_ROLES = new Set(VOCABULARY.role_sets.id_digits);
// Whom an interpreter may interpret for.
export const INTERPRETED_ROLES = new Set(VOCABULARY.role_sets.interpreted);
export const EDITABLE_STATES = new Set(VOCABULARY.state_sets.editable);
export const FINISHED_STATES = new Set(VOCABULARY.state_sets.finished);
// The states each hearing command may be given in.
export const COMMANDS_IN = VOCABULARY.commands;

export const roleLabel = (role) => t(ROLE_ZH[role] || role);
export const stateLabel = (state) => t(STATE_ZH[state] || state);
export const kindLabel = (kind) => t(KIND_ZH[kind] || kind);
export const locationLabel = (loc) => t(LOCATION_ZH[loc] || loc);

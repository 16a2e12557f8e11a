"""The court's vocabulary: its words for roles, hearing states, kinds and locations (Chinese,
the pages' language; /static/lang/ has their English), and which roles and states go together.

Defined here once. The pages receive it as JSON (`GET /api/v1/vocabulary`); the sets themselves
live beside their enums in courtrooms/models.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from courtrooms.lifecycle import TRANSITIONS
from courtrooms.models import (
    ACTIVE_STATES,
    CONSULTING_ROLES,
    CONTROL_ROLES,
    COUNSEL_ROLES,
    COURTROOM_ROLES,
    EDITABLE_STATES,
    FINISHED_STATES,
    ID_DIGITS_ROLES,
    INTERPRETED_ROLES,
    LIVE_STATES,
    REVIEW_ROLES,
)

# In the order the court lists people: the bench, the prosecution, the defence, the rest.
ROLE_ZH = {
    "judge": "审判员", "clerk": "书记员", "prosecutor": "公诉人", "lawyer": "律师",
    "defendant": "被告人", "party": "当事人", "witness": "证人", "interpreter": "翻译人员",
    "observer": "旁听/监督",
}
STATE_ZH = {
    "scheduled": "已排期", "open": "候审中", "in_session": "庭审中", "recess": "休庭",
    "closed": "已闭庭", "cancelled": "已取消",
}
KIND_ZH = {
    "trial": "庭审", "arraignment": "远程提讯", "parole": "减刑假释庭审", "mediation": "调解",
    "creditors_meeting": "债权人会议", "petition": "视频接访",
}
LOCATION_ZH = {"courtroom": "法庭", "prison": "监所", "remote": "远程"}


def _listed(members: Iterable[StrEnum], order: Iterable[str]) -> list[str]:
    """`members` as values, in `order` (the words' order), so the JSON is stable."""
    values = {m.value for m in members}
    return [v for v in order if v in values]


def vocabulary() -> dict[str, Any]:
    """The words and sets as JSON-ready data: what every page shows and decides by."""
    return {
        "roles": dict(ROLE_ZH),
        "states": dict(STATE_ZH),
        "kinds": dict(KIND_ZH),
        "locations": dict(LOCATION_ZH),
        "role_sets": {
            "controls_hearing": _listed(CONTROL_ROLES, ROLE_ZH),
            "may_review": _listed(REVIEW_ROLES, ROLE_ZH),
            "consulting": _listed(CONSULTING_ROLES, ROLE_ZH),
            "counsel": _listed(COUNSEL_ROLES, ROLE_ZH),
            "in_courtroom": _listed(COURTROOM_ROLES, ROLE_ZH),
            # Asked for the last digits of their ID number at the join, when on file.
            "id_digits": _listed(ID_DIGITS_ROLES, ROLE_ZH),
            # Whom an interpreter may interpret for.
            "interpreted": _listed(INTERPRETED_ROLES, ROLE_ZH),
        },
        "state_sets": {
            "active": _listed(ACTIVE_STATES, STATE_ZH),
            "live": _listed(LIVE_STATES, STATE_ZH),
            "editable": _listed(EDITABLE_STATES, STATE_ZH),
            "finished": _listed(FINISHED_STATES, STATE_ZH),
        },
        # The states each command of the hearing may be given in (courtrooms/lifecycle.py).
        "commands": {
            action.value: _listed(sources, STATE_ZH)
            for action, (sources, _target) in TRANSITIONS.items()
        },
    }

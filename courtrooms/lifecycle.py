"""The hearing state machine: scheduled → open → in_session ⇄ recess → closed, or cancelled."""

from __future__ import annotations

import enum

from courtrooms.errors import InvalidTransition
from courtrooms.models import HearingState

S = HearingState


class HearingAction(enum.StrEnum):
    OPEN = "open"
    START = "start"
    RECESS = "recess"
    RESUME = "resume"
    CLOSE = "close"
    CANCEL = "cancel"


TRANSITIONS: dict[HearingAction, tuple[frozenset[HearingState], HearingState]] = {
    HearingAction.OPEN: (frozenset({S.SCHEDULED}), S.OPEN),
    HearingAction.START: (frozenset({S.OPEN}), S.IN_SESSION),
    HearingAction.RECESS: (frozenset({S.IN_SESSION}), S.RECESS),
    HearingAction.RESUME: (frozenset({S.RECESS}), S.IN_SESSION),
    HearingAction.CLOSE: (frozenset({S.IN_SESSION, S.RECESS}), S.CLOSED),
    HearingAction.CANCEL: (frozenset({S.SCHEDULED, S.OPEN}), S.CANCELLED),
}


def next_state(current: HearingState, action: HearingAction) -> HearingState:
    """The state `action` leads to from `current`, or `InvalidTransition`."""
    sources, target = TRANSITIONS[action]
    if current not in sources:
        raise InvalidTransition(action.value, current.value)
    return target

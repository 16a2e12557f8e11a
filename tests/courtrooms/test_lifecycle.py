"""The hearing state machine, pair by pair, against the transitions the issue specifies."""

from __future__ import annotations

import itertools

import pytest

from courtrooms.errors import InvalidTransition
from courtrooms.lifecycle import HearingAction, next_state
from courtrooms.models import HearingState

S = HearingState
A = HearingAction

# Written out from the issue, not read back from `lifecycle.TRANSITIONS`.
EXPECTED: dict[tuple[HearingState, HearingAction], HearingState] = {
    (S.SCHEDULED, A.OPEN): S.OPEN,
    (S.OPEN, A.START): S.IN_SESSION,
    (S.IN_SESSION, A.RECESS): S.RECESS,
    (S.RECESS, A.RESUME): S.IN_SESSION,
    (S.IN_SESSION, A.CLOSE): S.CLOSED,
    (S.RECESS, A.CLOSE): S.CLOSED,
    (S.SCHEDULED, A.CANCEL): S.CANCELLED,
    (S.OPEN, A.CANCEL): S.CANCELLED,
}

ALL_PAIRS = list(itertools.product(HearingState, HearingAction))
REFUSED = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


def test_every_state_and_action_is_covered() -> None:
    assert len(ALL_PAIRS) == 6 * 6
    assert len(EXPECTED) + len(REFUSED) == len(ALL_PAIRS)


@pytest.mark.parametrize(("state", "action"), list(EXPECTED), ids=lambda v: v.value)
def test_allowed_transition_reaches_its_state(state: HearingState, action: HearingAction) -> None:
    assert next_state(state, action) is EXPECTED[(state, action)]


@pytest.mark.parametrize(("state", "action"), REFUSED, ids=lambda v: v.value)
def test_other_transitions_are_refused(state: HearingState, action: HearingAction) -> None:
    with pytest.raises(InvalidTransition) as caught:
        next_state(state, action)
    assert caught.value.current_state == state.value
    assert caught.value.details["current_state"] == state.value
    assert action.value in caught.value.message
    assert caught.value.code == "invalid_transition"


@pytest.mark.parametrize("state", [S.CLOSED, S.CANCELLED])
def test_finished_hearings_accept_no_action(state: HearingState) -> None:
    for action in HearingAction:
        with pytest.raises(InvalidTransition):
            next_state(state, action)

"""The routing rules, table-tested: who receives whose audio and video, what is on the record."""

from __future__ import annotations

from dataclasses import replace

import pytest

from signaling.routing import route
from signaling.seats import Seat

ACTIVE = {"state": "active", "with": "", "id": "c1", "since": "2026-12-01T00:00:00+00:00"}
REQUESTED = {"state": "requested", "with": "", "id": None, "since": "2026-12-01T00:00:00+00:00"}


def seat(pid: str, role: str, **changes: object) -> Seat:
    base = Seat(participant_id=pid, name=pid, role=role, location="remote", present=True,
                admitted=True)
    return replace(base, **changes)  # type: ignore[arg-type]


JUDGE = seat("judge", "judge")
LAWYER = seat("lawyer", "lawyer")
DEFENDANT = seat("defendant", "defendant")
OBSERVER = seat("observer", "observer")


def received(seats: list[Seat], subscriber: str) -> set[tuple[str, str]]:
    return set(route(seats).sources.get(subscriber, ()))


def recorded(seats: list[Seat]) -> set[tuple[str, str]]:
    return set(route(seats).on_record)


def everything(*pids: str) -> set[tuple[str, str]]:
    return {(p, k) for p in pids for k in ("audio", "video")}


@pytest.mark.parametrize(("seats", "subscriber", "expected"), [
    # Everyone in the hearing receives everyone else, never themselves.
    ([JUDGE, LAWYER, DEFENDANT], "judge", everything("lawyer", "defendant")),
    ([JUDGE, LAWYER, DEFENDANT], "defendant", everything("judge", "lawyer")),
    # Muted audio (by the court or by oneself) goes to nobody; the video still does.
    ([JUDGE, replace(DEFENDANT, muted_by_court=True)], "judge", {("defendant", "video")}),
    ([JUDGE, replace(DEFENDANT, muted_self=True)], "judge", {("defendant", "video")}),
    # A consultation: its two receive each other only; the court receives neither.
    ([JUDGE, replace(LAWYER, consultation=ACTIVE), replace(DEFENDANT, consultation=ACTIVE)],
     "judge", set()),
    ([JUDGE, replace(LAWYER, consultation=ACTIVE), replace(DEFENDANT, consultation=ACTIVE)],
     "lawyer", everything("defendant")),
    # Asked for but not granted: still in the hearing.
    ([JUDGE, replace(LAWYER, consultation=REQUESTED), DEFENDANT], "judge",
     everything("lawyer", "defendant")),
    # The lobby receives nothing and is received by nobody.
    ([JUDGE, replace(DEFENDANT, admitted=False)], "defendant", set()),
    ([JUDGE, replace(DEFENDANT, admitted=False)], "judge", set()),
    # Someone away is received by nobody (their seat is kept for a rejoin).
    ([JUDGE, replace(DEFENDANT, present=False)], "judge", set()),
    # Observers receive the hearing and publish nothing.
    ([JUDGE, OBSERVER], "observer", everything("judge")),
    ([JUDGE, OBSERVER], "judge", set()),
    # The consultation holds even when the partner is away.
    ([JUDGE, replace(LAWYER, consultation=ACTIVE, present=False),
      replace(DEFENDANT, consultation=ACTIVE)], "judge", set()),
])
def test_who_receives_what(seats: list[Seat], subscriber: str,
                           expected: set[tuple[str, str]]) -> None:
    assert received(seats, subscriber) == expected


@pytest.mark.parametrize(("seats", "expected"), [
    ([JUDGE, LAWYER], everything("judge", "lawyer")),
    # The record holds what the court heard: not muted audio, not a consultation.
    ([JUDGE, replace(LAWYER, muted_by_court=True)],
     everything("judge") | {("lawyer", "video")}),
    ([JUDGE, replace(LAWYER, consultation=ACTIVE), replace(DEFENDANT, consultation=ACTIVE)],
     everything("judge")),
    ([JUDGE, replace(DEFENDANT, admitted=False)], everything("judge")),
    ([JUDGE, OBSERVER], everything("judge")),
    # A lone participant is still recorded: the court's record does not need an audience.
    ([JUDGE], everything("judge")),
    ([], set()),
])
def test_what_is_on_the_record(seats: list[Seat], expected: set[tuple[str, str]]) -> None:
    assert recorded(seats) == expected


def test_sources_follow_arrival_order() -> None:
    sources = route([JUDGE, LAWYER, DEFENDANT]).sources["judge"]
    assert [p for p, _ in sources] == ["lawyer", "lawyer", "defendant", "defendant"]


def test_the_judges_video_is_kept_longest_on_a_weak_link() -> None:
    seats = [seat("d", "defendant"), seat("j", "judge"), seat("l", "lawyer"),
             seat("j2", "judge", present=False), seat("o", "observer")]
    assert route(seats).prominent == ("j",)
    # A judge in the lobby sends nothing, so there is nothing of theirs to keep.
    assert route([seat("j", "judge", admitted=False)]).prominent == ()

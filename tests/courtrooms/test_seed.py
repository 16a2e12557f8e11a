"""The demo court: a hearing starting now, reachable by its three invitations and the terminal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from courtrooms.errors import AccessDenied
from courtrooms.lifecycle import HearingAction
from courtrooms.models import HearingState, Location, Role
from courtrooms.schemas import AuditQuery, CourtroomQuery, HearingQuery, PageQuery
from courtrooms.seed import ACTOR, seed_demo
from courtrooms.service import Registry
from tests.conftest import FakeClock


async def test_seed_creates_a_hearing_ready_to_join(registry: Registry, clock: FakeClock) -> None:
    clock.advance(timedelta(seconds=37, microseconds=5))
    demo = await seed_demo(registry, "zh")

    assert demo.courtroom.court_id == demo.court.id
    hearing = await registry.get_hearing(demo.hearing.id)
    assert hearing.courtroom_id == demo.courtroom.id
    assert hearing.state is HearingState.SCHEDULED
    assert hearing.language == "zh"
    assert hearing.scheduled_start <= clock.now < hearing.scheduled_end
    assert clock.now - hearing.scheduled_start < timedelta(minutes=1)

    by_role = {p.role: p for p in hearing.participants}
    assert set(by_role) == {Role.JUDGE, Role.DEFENDANT, Role.LAWYER}
    assert by_role[Role.JUDGE].location is Location.COURTROOM
    assert by_role[Role.DEFENDANT].location is Location.PRISON
    assert by_role[Role.DEFENDANT].terminal_id == demo.terminal.id
    assert by_role[Role.LAWYER].location is Location.REMOTE
    assert by_role[Role.LAWYER].terminal_id is None

    assert len(demo.invites) == 3
    for invite in demo.invites:
        grant = await registry.resolve_join_token(invite.token)
        assert grant.hearing.id == hearing.id
        assert grant.participant.id == by_role[invite.role].id
        assert (grant.participant.name, grant.participant.location) == (
            invite.name, invite.location,
        )

    assignment = await registry.terminal_assignment(demo.terminal_key)
    assert assignment.hearing is not None and assignment.hearing.id == hearing.id
    assert assignment.participant is not None
    assert assignment.participant.id == by_role[Role.DEFENDANT].id
    assert assignment.token is not None

    report = await registry.verify_audit()
    assert report.ok and report.events > 0
    events, _ = await registry.audit_events(AuditQuery(limit=200))
    assert {e.actor for e in events} <= {ACTOR, f"terminal:{demo.terminal.id}"}


async def test_seed_language_is_the_given_one(registry: Registry) -> None:
    demo = await seed_demo(registry, "en")
    assert (await registry.get_hearing(demo.hearing.id)).language == "en"


async def test_seeding_again_ends_the_first_and_reuses_the_court(
    registry: Registry, clock: FakeClock
) -> None:
    first = await seed_demo(registry, "zh")
    clock.advance(timedelta(minutes=10))

    second = await seed_demo(registry, "zh")  # would raise ScheduleConflict if not ended

    assert second.hearing.id != first.hearing.id
    assert second.hearing.case_number != first.hearing.case_number
    assert (await registry.get_hearing(first.hearing.id)).state is HearingState.CANCELLED
    assert (await registry.get_hearing(second.hearing.id)).state is HearingState.SCHEDULED

    assert (second.court.id, second.courtroom.id) == (first.court.id, first.courtroom.id)
    assert second.terminal.id == first.terminal.id
    assert (await registry.list_courts(PageQuery()))[1] == 1
    assert (await registry.list_courtrooms(CourtroomQuery()))[1] == 1
    assert (await registry.list_terminals(PageQuery()))[1] == 1
    assert (await registry.list_hearings(HearingQuery()))[1] == 2

    # The key was rotated: only the new one opens the terminal, for the new hearing.
    assert second.terminal_key != first.terminal_key
    with pytest.raises(AccessDenied):
        await registry.terminal_assignment(first.terminal_key)
    assignment = await registry.terminal_assignment(second.terminal_key)
    assert assignment.hearing is not None and assignment.hearing.id == second.hearing.id

    for invite in first.invites:
        with pytest.raises(AccessDenied):
            await registry.resolve_join_token(invite.token)
    for invite in second.invites:
        grant = await registry.resolve_join_token(invite.token)
        assert grant.hearing.id == second.hearing.id
    assert (await registry.verify_audit()).ok


async def test_seeding_ends_the_previous_demo_whatever_its_state(
    registry: Registry, clock: FakeClock
) -> None:
    op, st, rc = HearingAction.OPEN, HearingAction.START, HearingAction.RECESS
    progressions = [
        ([op], HearingState.CANCELLED),
        ([op, st], HearingState.CLOSED),
        ([op, st, rc], HearingState.CLOSED),
    ]
    previous = await seed_demo(registry, "zh")
    for actions, ended_as in progressions:
        for action in actions:
            await registry.transition(previous.hearing.id, action, "clerk:test")
        clock.advance(timedelta(minutes=3))
        demo = await seed_demo(registry, "zh")
        assert (await registry.get_hearing(previous.hearing.id)).state is ended_as, actions
        assert demo.courtroom.id == previous.courtroom.id
        grant = await registry.resolve_join_token(demo.invites[0].token)
        assert grant.hearing.id == demo.hearing.id
        previous = demo
    assert (await registry.list_hearings(HearingQuery()))[1] == 4
    active = HearingQuery(state=HearingState.SCHEDULED)
    assert [h.id for h in (await registry.list_hearings(active))[0]] == [previous.hearing.id]

"""The demo court: a hearing starting now, reachable by its three invitations and the terminal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from courtrooms.accounts import StaffAccounts
from courtrooms.errors import AccessDenied, SignInRefused
from courtrooms.lifecycle import HearingAction
from courtrooms.models import HearingState, Location, Role, StaffRole
from courtrooms.registry import Registry
from courtrooms.schemas import (
    AuditQuery,
    CourtroomQuery,
    HearingIn,
    HearingQuery,
    PageQuery,
    ParticipantIn,
    PrisonTerminalIn,
)
from courtrooms.seed import ACTOR, DEMO_CASE_PREFIX, DEMO_PRISON, DEMO_TERMINAL, seed_demo
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

    # The key printed the first time stays the terminal's (a kiosk may be using it); it now
    # opens the new hearing. No new key is made, so none is printed.
    assert first.terminal_key is not None and second.terminal_key is None
    assignment = await registry.terminal_assignment(first.terminal_key)
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



async def test_seeding_again_touches_nothing_the_demo_did_not_create(
    registry: Registry, clock: FakeClock
) -> None:
    """A clerk's hearing whose case number starts like the demo's, and a terminal named like the
    demo's, are the clerk's: a second seeding neither ends, renumbers nor re-keys them."""
    clerk = "clerk:test"
    own_terminal, own_key = await registry.create_terminal(
        PrisonTerminalIn(name=DEMO_TERMINAL, prison=DEMO_PRISON), clerk
    )
    first = await seed_demo(registry, "zh")
    assert first.terminal.id != own_terminal.id and first.terminal_key is not None

    now = clock.now.replace(second=0, microsecond=0)
    own = await registry.create_hearing(
        HearingIn(
            case_number=f"{DEMO_CASE_PREFIX}2号", title="Not the demo", kind=first.hearing.kind,
            scheduled_start=now, scheduled_end=now + timedelta(hours=1),
        ),
        clerk,
        "zh",
    )
    lawyer = await registry.add_participant(
        own.id, ParticipantIn(name="赵律师", role=Role.LAWYER, location=Location.REMOTE), clerk
    )
    defendant = await registry.add_participant(
        own.id,
        ParticipantIn(name="钱某某", role=Role.DEFENDANT, location=Location.PRISON,
                      terminal_id=own_terminal.id),
        clerk,
    )
    await registry.transition(own.id, HearingAction.OPEN, clerk)
    clock.advance(timedelta(minutes=5))

    second = await seed_demo(registry, "zh")

    assert (await registry.get_hearing(own.id)).state is HearingState.OPEN
    for token in (lawyer.token, defendant.token):
        assert (await registry.resolve_join_token(token)).hearing.id == own.id
    assert (await registry.get_hearing(first.hearing.id)).state is HearingState.CANCELLED
    assert second.hearing.case_number not in {own.case_number, first.hearing.case_number}
    assert second.hearing.case_number.startswith(DEMO_CASE_PREFIX)
    assert second.terminal.id == first.terminal.id

    # Both kiosks keep working with the keys they were given, each for its own hearing.
    kiosk = await registry.terminal_assignment(own_key)
    assert kiosk.hearing is not None and kiosk.hearing.id == own.id
    demo_kiosk = await registry.terminal_assignment(first.terminal_key)
    assert demo_kiosk.hearing is not None and demo_kiosk.hearing.id == second.hearing.id

    events, total = await registry.audit_events(AuditQuery(limit=200))
    assert total <= 200
    by_seed = [e for e in events if e.actor == ACTOR]
    assert not [e for e in by_seed if e.hearing_id == own.id], by_seed
    assert not [e for e in by_seed if e.action == "terminal.key_rotated"], by_seed



async def test_the_demo_court_has_a_judge_a_clerk_and_a_supervisor_with_fresh_passwords(
    registry: Registry,
) -> None:
    accounts = StaffAccounts(registry.db, registry.clock)
    first = await seed_demo(registry, "zh")
    assert {frozenset(s.account.staff_roles) for s in first.staff} == {
        frozenset({StaffRole.JUDGE}), frozenset({StaffRole.CLERK}),
        frozenset({StaffRole.SUPERVISOR})}
    for staff in first.staff:
        assert staff.account.court_id == first.court.id
        assert (await accounts.authenticate(staff.account.login, staff.password)).id == \
            staff.account.id
    # The demo judge and clerk are the hearing's: the judge's seat is the account's, entered
    # from "my hearings".
    judge, clerk = first.staff[0].account, first.staff[1].account
    hearing = await registry.get_hearing(first.hearing.id)
    assert (hearing.judge_account_id, hearing.clerk_account_id) == (judge.id, clerk.id)
    [seat] = [p for p in hearing.participants if p.role is Role.JUDGE]
    assert (seat.account_id, seat.name) == (judge.id, judge.name)
    assert (await registry.enter(hearing.id, judge.id, judge.actor)).participant.id == seat.id
    # A second run keeps the accounts and gives them new passwords (printed again); the old
    # ones open nothing. A disabled one is left disabled and not printed.
    await accounts.disable(first.staff[2].account.login, "clerk:test")
    second = await seed_demo(registry, "zh")
    assert [s.account.id for s in second.staff] == [s.account.id for s in first.staff[:2]]
    for old, new in zip(first.staff, second.staff, strict=False):
        assert old.password != new.password
        with pytest.raises(SignInRefused):
            await accounts.authenticate(old.account.login, old.password)
        assert (await accounts.authenticate(new.account.login, new.password)).id == \
            new.account.id
    assert len(await accounts.accounts()) == 3
    await accounts.disable(first.staff[0].account.login, "clerk:test")
    third = await seed_demo(registry, "zh")
    assert [s.account.login for s in third.staff] == ["demo-clerk"]
    # Without its judge's account, the demo's judge is named as before.
    hearing = await registry.get_hearing(third.hearing.id)
    assert hearing.judge_account_id is None
    assert [(p.name, p.account_id) for p in hearing.participants if p.role is Role.JUDGE] == [
        ("王审判员", None)]

"""Participants' join tokens and prison terminals' device keys, against real SQLite and real
PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from courtrooms.accounts import StaffAccounts
from courtrooms.errors import (
    AccessDenied,
    HearingFinished,
    InvalidInput,
    NotEditable,
    NotPermitted,
)
from courtrooms.lifecycle import HearingAction
from courtrooms.models import (
    JoinToken,
    Location,
    Role,
    StaffRole,
)
from courtrooms.registry import Registry
from courtrooms.schemas import AuditQuery, HearingPatch, ParticipantIn
from tests.conftest import FakeClock
from tests.courtrooms.builders import (
    ACTOR,
    add_defendant,
    add_judge,
    add_remote,
    at,
    database_text,
    make_account,
    make_court,
    make_hearing,
    make_room,
    make_terminal,
)

OPEN, START, CLOSE, CANCEL = (
    HearingAction.OPEN,
    HearingAction.START,
    HearingAction.CLOSE,
    HearingAction.CANCEL,
)


# -- join tokens ---------------------------------------------------------------------------


async def test_token_resolves_to_its_participant(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0.25, 2)
    judge = await add_judge(registry, hearing)
    lawyer = await add_remote(registry, hearing)
    assert judge.token != lawyer.token
    grant = await registry.resolve_join_token(lawyer.token)
    assert grant.participant.id == lawyer.participant.id
    assert grant.participant.role is Role.LAWYER
    assert grant.hearing.id == hearing.id
    assert (await registry.resolve_join_token(judge.token)).participant.id == judge.participant.id


async def test_token_window_opens_thirty_minutes_before_start(
    registry: Registry, clock: FakeClock
) -> None:
    hearing = await make_hearing(registry, 2, 3)  # starts at 03:00, link opens at 02:30
    issued = await add_remote(registry, hearing)
    assert issued.valid_from == at(1.5)
    with pytest.raises(AccessDenied) as caught:
        await registry.resolve_join_token(issued.token)
    assert caught.value.details["opens_at"] == at(1.5).isoformat()
    clock.advance(timedelta(hours=1.5) - timedelta(microseconds=1))
    with pytest.raises(AccessDenied):
        await registry.resolve_join_token(issued.token)
    clock.advance(timedelta(microseconds=1))
    assert (await registry.resolve_join_token(issued.token)).hearing.id == hearing.id
    clock.advance(timedelta(hours=5))  # long past the scheduled end, not yet closed
    assert (await registry.resolve_join_token(issued.token)).hearing.id == hearing.id


async def test_token_expires_its_grace_after_the_scheduled_end(
    registry: Registry, clock: FakeClock
) -> None:
    hearing = await make_hearing(registry, 2, 3)  # ends at 04:00 (the clock starts at 01:00)
    issued = await add_remote(registry, hearing)
    clock.advance(timedelta(hours=3) + registry.join_grace)  # the grace's last instant
    assert (await registry.resolve_join_token(issued.token)).hearing.id == hearing.id
    clock.advance(timedelta(microseconds=1))
    with pytest.raises(AccessDenied, match="expired") as caught:
        await registry.resolve_join_token(issued.token)
    assert caught.value.details["expired_at"] == (at(3) + registry.join_grace).isoformat()


@pytest.mark.parametrize("finish", [[CANCEL], [OPEN, START, CLOSE]], ids=["cancelled", "closed"])
async def test_token_invalid_once_hearing_finished(
    registry: Registry, finish: list[HearingAction]
) -> None:
    hearing = await make_hearing(registry, 0, 1)
    issued = await add_remote(registry, hearing)
    await registry.resolve_join_token(issued.token)
    for action in finish:
        await registry.transition(hearing.id, action, ACTOR)
    with pytest.raises(AccessDenied):
        await registry.resolve_join_token(issued.token)


async def test_the_join_window_is_one_public_check(registry: Registry, clock: FakeClock) -> None:
    """Exhibits check the window through the same call joining does."""
    hearing = await make_hearing(registry, 2, 3)
    with pytest.raises(AccessDenied, match="opens at"):
        registry.check_join_window(hearing)
    clock.now = at(1.5)
    registry.check_join_window(hearing)
    clock.now = at(3) + registry.join_grace + timedelta(microseconds=1)
    with pytest.raises(AccessDenied, match="expired"):
        registry.check_join_window(hearing)
    clock.now = at(2.5)
    await registry.transition(hearing.id, CANCEL, ACTOR)
    with pytest.raises(HearingFinished, match="cancelled"):
        registry.check_join_window(await registry.get_hearing(hearing.id))


async def test_revoked_token_refused(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0, 1)
    issued = await add_remote(registry, hearing)
    other = await add_judge(registry, hearing)
    assert await registry.revoke_tokens(hearing.id, issued.participant.id, ACTOR) == 1
    with pytest.raises(AccessDenied):
        await registry.resolve_join_token(issued.token)
    # Only that participant's tokens were revoked.
    assert (await registry.resolve_join_token(other.token)).participant.id == other.participant.id


async def test_reissue_revokes_the_old_token(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0, 1)
    old = await add_remote(registry, hearing)
    new = await registry.reissue_token(hearing.id, old.participant.id, ACTOR)
    assert new.token != old.token
    with pytest.raises(AccessDenied):
        await registry.resolve_join_token(old.token)
    grant = await registry.resolve_join_token(new.token)
    assert grant.participant.id == old.participant.id


async def test_tokens_are_stored_only_as_sha256(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0, 1)
    issued = await add_remote(registry, hearing)
    async with registry.db.read() as session:
        hashes = (
            await session.scalars(
                select(JoinToken.token_hash).where(
                    JoinToken.participant_id == issued.participant.id
                )
            )
        ).all()
    assert hashes == [hashlib.sha256(issued.token.encode()).hexdigest()]
    assert issued.token not in await database_text(registry, "join_tokens")
    assert issued.token not in await database_text(registry)


async def test_unknown_token_refused(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0, 1)
    issued = await add_remote(registry, hearing)
    for token in ["", "not-a-token", issued.token[:-1], issued.token + "x", "\udcff"]:
        with pytest.raises(AccessDenied):
            await registry.resolve_join_token(token)


async def test_removed_participant_token_refused(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0, 1)
    issued = await add_remote(registry, hearing)
    await registry.remove_participant(hearing.id, issued.participant.id, ACTOR)
    with pytest.raises(AccessDenied):
        await registry.resolve_join_token(issued.token)
    assert (await registry.get_hearing(hearing.id)).participants == []


# -- interpreters --------------------------------------------------------------------------


def interpreter(party: object) -> ParticipantIn:
    return ParticipantIn(name="翻译 陈某", role=Role.INTERPRETER, location=Location.REMOTE,
                         interprets_for_id=party)


async def test_an_interpreter_is_linked_to_a_party_of_the_same_hearing(
        registry: Registry) -> None:
    hearing, other = await make_hearing(registry, 0, 1), await make_hearing(registry, 2, 3)
    terminal, _ = await make_terminal(registry)
    defendant = (await add_defendant(registry, hearing, terminal)).participant
    judge = (await add_judge(registry, hearing)).participant
    elsewhere = (await add_remote(registry, other)).participant
    added = await registry.add_participant(hearing.id, interpreter(defendant.id), ACTOR)
    assert added.participant.interprets_for_id == defendant.id
    stored = {p.id: p for p in await registry.list_participants(hearing.id)}
    assert stored[added.participant.id].interprets_for_id == defendant.id
    for wrong, words in [(judge.id, "judge"), (elsewhere.id, "not a participant of this"),
                         (terminal, "not a participant of this")]:
        with pytest.raises(InvalidInput) as refused:
            await registry.add_participant(hearing.id, interpreter(wrong), ACTOR)
        assert refused.value.field == "interprets_for_id"
        assert words in refused.value.message
    assert len(await registry.list_participants(hearing.id)) == 3  # nothing more was added


async def test_only_an_interpreter_names_a_party() -> None:
    with pytest.raises(ValueError, match="only an interpreter"):
        ParticipantIn(name="李律师", role=Role.LAWYER, location=Location.REMOTE,
                      interprets_for_id=uuid.uuid4())


async def test_a_party_with_an_interpreter_is_removed_after_them(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0, 1)
    party = (await add_defendant(registry, hearing, (await make_terminal(registry))[0])
             ).participant
    linked = (await registry.add_participant(hearing.id, interpreter(party.id), ACTOR)
              ).participant
    with pytest.raises(NotEditable, match="翻译 陈某"):
        await registry.remove_participant(hearing.id, party.id, ACTOR)
    await registry.remove_participant(hearing.id, linked.id, ACTOR)
    await registry.remove_participant(hearing.id, party.id, ACTOR)
    assert await registry.list_participants(hearing.id) == []


# -- terminal assignment -------------------------------------------------------------------


async def test_unknown_device_key_denied(registry: Registry) -> None:
    await make_terminal(registry)
    with pytest.raises(AccessDenied):
        await registry.terminal_assignment("not-the-key")


async def test_terminal_without_hearing(registry: Registry) -> None:
    terminal_id, key = await make_terminal(registry)
    assignment = await registry.terminal_assignment(key)
    assert assignment.terminal.id == terminal_id
    assert (assignment.hearing, assignment.participant, assignment.token) == (None, None, None)


async def test_terminal_before_window_gets_hearing_but_no_token(
    registry: Registry, clock: FakeClock
) -> None:
    terminal_id, key = await make_terminal(registry)
    hearing = await make_hearing(registry, 2, 3)
    defendant = await add_defendant(registry, hearing, terminal_id)
    assignment = await registry.terminal_assignment(key)
    assert assignment.hearing is not None and assignment.hearing.id == hearing.id
    assert assignment.participant is not None
    assert assignment.participant.id == defendant.participant.id
    assert assignment.opens_at == at(1.5)
    assert assignment.token is None


async def test_terminal_inside_window_gets_token_for_its_participant(
    registry: Registry, clock: FakeClock
) -> None:
    terminal_id, key = await make_terminal(registry)
    hearing = await make_hearing(registry, 2, 3)
    await add_remote(registry, hearing)
    defendant = await add_defendant(registry, hearing, terminal_id)
    clock.advance(timedelta(hours=1.5))
    assignment = await registry.terminal_assignment(key)
    assert assignment.token is not None
    grant = await registry.resolve_join_token(assignment.token)
    assert grant.participant.id == defendant.participant.id
    assert grant.participant.terminal_id == terminal_id
    assert grant.hearing.id == hearing.id
    assert assignment.token not in await database_text(registry)
    # Every poll gets the same token: one is issued, not one per poll.
    for _ in range(3):
        assert (await registry.terminal_assignment(key)).token == assignment.token
    async with registry.db.read() as session:
        issued = (await session.scalars(select(JoinToken).where(
            JoinToken.participant_id == defendant.participant.id,
            JoinToken.issued_to == "terminal"))).all()
    assert len(issued) == 1


async def test_terminal_skips_finished_and_past_hearings(
    registry: Registry, clock: FakeClock
) -> None:
    terminal_id, key = await make_terminal(registry)
    cancelled = await make_hearing(registry, 0, 1)
    await add_defendant(registry, cancelled, terminal_id)
    await registry.transition(cancelled.id, CANCEL, ACTOR)
    never_opened = await make_hearing(registry, 1, 2)
    await add_defendant(registry, never_opened, terminal_id)
    upcoming = await make_hearing(registry, 4, 5)
    await add_defendant(registry, upcoming, terminal_id)
    clock.advance(timedelta(hours=2.5))  # `never_opened` is over
    assignment = await registry.terminal_assignment(key)
    assert assignment.hearing is not None and assignment.hearing.id == upcoming.id


async def test_live_hearing_keeps_terminal_past_its_end(
    registry: Registry, clock: FakeClock
) -> None:
    terminal_id, key = await make_terminal(registry)
    live = await make_hearing(registry, 0, 1)
    await add_defendant(registry, live, terminal_id)
    following = await make_hearing(registry, 1, 2)
    await add_defendant(registry, following, terminal_id)
    await registry.transition(live.id, OPEN, ACTOR)
    await registry.transition(live.id, START, ACTOR)
    clock.advance(timedelta(hours=1, minutes=10))  # overrunning into the next hearing's window
    assignment = await registry.terminal_assignment(key)
    assert assignment.hearing is not None and assignment.hearing.id == live.id
    assert assignment.token is not None
    assert (await registry.resolve_join_token(assignment.token)).hearing.id == live.id


async def test_live_hearing_wins_over_an_earlier_scheduled_one(
    registry: Registry, clock: FakeClock
) -> None:
    terminal_id, key = await make_terminal(registry)
    scheduled = await make_hearing(registry, 1, 2)
    await add_defendant(registry, scheduled, terminal_id)
    opened_early = await make_hearing(registry, 3, 4)
    await add_defendant(registry, opened_early, terminal_id)
    await registry.transition(opened_early.id, OPEN, ACTOR)
    assignment = await registry.terminal_assignment(key)
    assert assignment.hearing is not None and assignment.hearing.id == opened_early.id


# -- a judge's or clerk's seat held by their account ---------------------------------------


async def test_a_judge_given_by_account_is_named_by_it_and_is_the_hearing_s_judge(
    registry: Registry,
) -> None:
    court = await make_court(registry)
    room = await make_room(registry, court)
    judge = await make_account(registry, "王审判员", StaffRole.JUDGE, court)
    hearing = await make_hearing(registry, 1, 3, room)
    assert hearing.judge_account_id is None
    seat = await registry.add_participant(
        hearing.id, ParticipantIn(account_id=judge.id, role=Role.JUDGE,
                                  location=Location.COURTROOM), ACTOR)
    assert (seat.participant.name, seat.participant.account_id) == ("王审判员", judge.id)
    got = await registry.get_hearing(hearing.id)
    assert got.judge_account_id == judge.id  # the seat names the hearing's judge
    assert (await registry.token_grant(seat.token)).participant.id == seat.participant.id

    # Refused, each with the field named: the account twice, a clerk as judge, a judge of
    # another court, another judge's account once the hearing has its judge.
    clerk = await make_account(registry, "赵书记员", StaffRole.CLERK, court)
    far = await make_account(registry, "李审判员", StaffRole.JUDGE, await make_court(registry))
    other = await make_account(registry, "钱审判员", StaffRole.JUDGE, court)
    for account_id, message in ((judge.id, "already has their seat"),
                                (clerk.id, "not an enabled judge"),
                                (far.id, "another court"),
                                (other.id, "the hearing's judge is another account")):
        with pytest.raises(InvalidInput, match=message) as refused:
            await registry.add_participant(
                hearing.id, ParticipantIn(account_id=account_id, role=Role.JUDGE,
                                          location=Location.COURTROOM), ACTOR)
        assert refused.value.field == "account_id"
    # The clerk's seat names the hearing's clerk, who had none.
    await registry.add_participant(hearing.id, ParticipantIn(
        account_id=clerk.id, role=Role.CLERK, location=Location.COURTROOM), ACTOR)
    assert (await registry.get_hearing(hearing.id)).clerk_account_id == clerk.id


@pytest.mark.parametrize(("fields", "message"), [
    ({"role": "lawyer", "account_id": str(uuid.uuid4())}, "only a judge's or clerk's seat"),
    ({"role": "judge", "account_id": str(uuid.uuid4()), "name": "王审判员"}, "named by the "
     "account"),
    ({"role": "judge"}, "name is required"),
])
def test_a_seat_is_named_or_an_account_s(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ParticipantIn.model_validate_json(json.dumps({"location": "courtroom", **fields}))


async def test_the_judge_enters_their_own_seat_from_the_account_and_no_one_else_does(
    registry: Registry, clock: FakeClock,
) -> None:
    court = await make_court(registry)
    judge = await make_account(registry, "王审判员", StaffRole.JUDGE, court)
    other = await make_account(registry, "李审判员", StaffRole.JUDGE, court)
    hearing = await make_hearing(registry, 0.25, 2, await make_room(registry, court),
                                 judge=judge)
    assert not (await registry.get_hearing(hearing.id)).participants
    # No seat given by the clerk: entering makes it, in the courtroom, named by the account.
    first = await registry.enter(hearing.id, judge.id, judge.actor)
    seat = first.participant
    assert (seat.name, seat.role, seat.location, seat.account_id) == (
        "王审判员", Role.JUDGE, Location.COURTROOM, judge.id)
    assert (await registry.resolve_join_token(first.token)).participant.id == seat.id
    # Entering again: the same seat, and the previous entry's join no longer opens it.
    again = await registry.enter(hearing.id, judge.id, judge.actor)
    assert again.participant.id == seat.id and again.token != first.token
    with pytest.raises(AccessDenied, match="revoked"):
        await registry.resolve_join_token(first.token)
    assert (await registry.resolve_join_token(again.token)).participant.id == seat.id
    assert len((await registry.get_hearing(hearing.id)).participants) == 1
    # Another judge of the court: not theirs.
    with pytest.raises(NotPermitted, match="neither the hearing's judge nor its clerk"):
        await registry.enter(hearing.id, other.id, other.actor)
    # Audited as the account.
    events = (await registry.audit_events(AuditQuery(hearing_id=hearing.id, limit=50)))[0]
    entered = [e for e in events if e.action in ("participant.added", "token.issued")]
    assert {e.actor for e in entered} == {judge.actor}
    assert [e.data["issued_to"] for e in entered if e.action == "token.issued"] == [
        "account", "account"]
    # Disabled, the judge's open entry no longer opens the seat (the clerk's links would).
    await StaffAccounts(registry.db, registry.clock).disable(judge.login, ACTOR)
    with pytest.raises(AccessDenied, match="revoked"):
        await registry.token_grant(again.token)
    # Over: nobody enters a closed hearing.
    for action in (OPEN, START, CLOSE):
        await registry.transition(hearing.id, action, ACTOR)
    with pytest.raises(HearingFinished):
        await registry.enter(hearing.id, judge.id, judge.actor)


async def test_a_judge_typed_by_the_account_s_name_enters_that_seat(registry: Registry) -> None:
    court = await make_court(registry)
    judge = await make_account(registry, "王芳", StaffRole.JUDGE, court)
    hearing = await make_hearing(registry, 0.25, 2, await make_room(registry, court),
                                 judge=judge)
    typed = await add_judge(registry, hearing, "王　芳")  # padded, as documents write it
    entered = await registry.enter(hearing.id, judge.id, judge.actor)
    assert (entered.participant.id, entered.participant.account_id) == (
        typed.participant.id, judge.id)
    # The clerk's link still opens it: nothing was taken from the seat but its anonymity.
    assert (await registry.resolve_join_token(typed.token)).participant.id == typed.participant.id
    assert len((await registry.get_hearing(hearing.id)).participants) == 1


async def test_a_new_judge_account_takes_the_seat_the_old_one_held(registry: Registry) -> None:
    court = await make_court(registry)
    judge = await make_account(registry, "王审判员", StaffRole.JUDGE, court)
    successor = await make_account(registry, "钱审判员", StaffRole.JUDGE, court)
    hearing = await make_hearing(registry, 0.25, 3, await make_room(registry, court),
                                 judge=judge)
    seat = await registry.add_participant(hearing.id, ParticipantIn(
        account_id=judge.id, role=Role.JUDGE, location=Location.COURTROOM), ACTOR)
    moved = await registry.update_hearing(hearing.id,
                                          HearingPatch(judge_account_id=successor.id), ACTOR)
    [held] = moved.participants
    assert (held.id, held.account_id, held.name) == (seat.participant.id, successor.id,
                                                     "钱审判员")
    with pytest.raises(AccessDenied, match="revoked"):  # the old judge's link
        await registry.token_grant(seat.token)
    # No judge account: the seat stays, named as it was, no account's; what the account's
    # entry gave no longer opens it.
    entered = await registry.enter(hearing.id, successor.id, successor.actor)
    cleared = await registry.update_hearing(hearing.id, HearingPatch(judge_account_id=None),
                                            ACTOR)
    assert [(p.name, p.account_id) for p in cleared.participants] == [("钱审判员", None)]
    with pytest.raises(AccessDenied, match="revoked"):
        await registry.token_grant(entered.token)
    with pytest.raises(NotPermitted):
        await registry.enter(hearing.id, successor.id, successor.actor)

"""Hearings in the registry, against real SQLite and real PostgreSQL: CRUD, transitions,
schedule conflicts."""

from __future__ import annotations

import uuid
from datetime import timedelta, timezone

import pytest

from courtrooms.errors import (
    InvalidInput,
    InvalidTransition,
    NotEditable,
    ScheduleConflict,
)
from courtrooms.lifecycle import HearingAction
from courtrooms.models import (
    HearingKind,
    HearingState,
    Location,
    Role,
    StaffRole,
)
from courtrooms.registry import Registry
from courtrooms.schemas import (
    AuditQuery,
    HearingIn,
    HearingPatch,
    HearingQuery,
    ParticipantIn,
)
from tests.conftest import FakeClock
from tests.courtrooms.builders import (
    ACTOR,
    add_defendant,
    add_judge,
    at,
    make_account,
    make_court,
    make_hearing,
    make_room,
    make_terminal,
)

OPEN, START, RECESS, RESUME, CLOSE, CANCEL = (
    HearingAction.OPEN,
    HearingAction.START,
    HearingAction.RECESS,
    HearingAction.RESUME,
    HearingAction.CLOSE,
    HearingAction.CANCEL,
)


def conflicting_ids(error: ScheduleConflict) -> set[str]:
    return {c["hearing_id"] for c in error.conflicts}


def resources(error: ScheduleConflict) -> set[str]:
    return {c["resource"] for c in error.conflicts}


# -- hearings ------------------------------------------------------------------------------


async def test_hearing_create_and_get(registry: Registry, clock: FakeClock) -> None:
    room = await make_room(registry)
    hearing = await make_hearing(registry, 1, 2, room, case_number="(2026)京01刑初1号")
    assert hearing.state is HearingState.SCHEDULED
    assert hearing.language == "zh"  # the default language passed to create_hearing
    detail = await registry.get_hearing(hearing.id)
    assert detail.case_number == "(2026)京01刑初1号"
    assert detail.courtroom_id == room.id
    assert (detail.scheduled_start, detail.scheduled_end) == (at(1), at(2))
    assert detail.scheduled_start.tzinfo is not None
    assert detail.participants == []
    assert detail.created_at == clock.now
    assert detail.started_at is None and detail.closed_at is None


async def test_hearing_without_language_takes_the_default_given(registry: Registry) -> None:
    def hearing_in(language: str | None) -> HearingIn:
        return HearingIn(
            case_number="(2026)新01民初1号", title="调解", kind=HearingKind.MEDIATION,
            scheduled_start=at(1), scheduled_end=at(2), language=language,
        )

    uyghur = await registry.create_hearing(hearing_in(None), ACTOR, "ug")
    assert (await registry.get_hearing(uyghur.id)).language == "ug"
    mandarin = await registry.create_hearing(hearing_in("zh"), ACTOR, "ug")
    assert (await registry.get_hearing(mandarin.id)).language == "zh"


async def test_hearing_language_given_wins_over_default(registry: Registry) -> None:
    hearing = await make_hearing(registry, 1, 2, language="bo")
    assert (await registry.get_hearing(hearing.id)).language == "bo"


async def test_hearing_in_unknown_courtroom_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidInput) as caught:
        await registry.create_hearing(
            HearingIn(
                case_number="1", title="t", kind=HearingKind.MEDIATION,
                courtroom_id=uuid.uuid4(), scheduled_start=at(1), scheduled_end=at(2),
            ),
            ACTOR, "zh",
        )
    assert caught.value.field == "courtroom_id"


async def test_list_hearings_overlap_window(registry: Registry) -> None:
    early = await make_hearing(registry, 1, 2)
    middle = await make_hearing(registry, 3, 4)
    late = await make_hearing(registry, 5, 6)

    async def listed(**query: object) -> list[uuid.UUID]:
        items, _ = await registry.list_hearings(HearingQuery.model_validate(query))
        return [h.id for h in items]

    assert await listed() == [early.id, middle.id, late.id]
    # Overlap of [from, to): a hearing ending exactly at `from` or starting at `to` is out.
    assert await listed(**{"from": at(2), "to": at(5)}) == [middle.id]
    assert await listed(**{"from": at(1.5), "to": at(5.5)}) == [early.id, middle.id, late.id]
    assert await listed(**{"from": at(3.5)}) == [middle.id, late.id]
    assert await listed(to=at(3)) == [early.id]
    assert await listed(**{"from": at(6)}) == []


async def test_list_hearings_window_in_another_time_zone(registry: Registry) -> None:
    hearing = await make_hearing(registry, 1, 2)
    beijing = timezone(timedelta(hours=8))
    query = HearingQuery.model_validate(
        {"from": at(1.5).astimezone(beijing), "to": at(1.75).astimezone(beijing)}
    )
    assert [h.id for h in (await registry.list_hearings(query))[0]] == [hearing.id]
    query = HearingQuery.model_validate({"to": at(1).astimezone(beijing)})
    assert (await registry.list_hearings(query))[1] == 0


async def test_list_hearings_filters(registry: Registry) -> None:
    room_a = await make_room(registry, name="A")
    room_b = await make_room(registry, name="B")
    terminal_id, _ = await make_terminal(registry)
    in_a = await make_hearing(registry, 1, 2, room_a)
    in_b = await make_hearing(registry, 1, 2, room_b)
    nowhere = await make_hearing(registry, 3, 4)
    await add_defendant(registry, in_b, terminal_id)
    await registry.transition(nowhere.id, CANCEL, ACTOR)

    async def listed(**query: object) -> set[uuid.UUID]:
        items, total = await registry.list_hearings(HearingQuery.model_validate(query))
        assert total == len(items)
        return {h.id for h in items}

    assert await listed(courtroom_id=room_a.id) == {in_a.id}
    assert await listed(terminal_id=terminal_id) == {in_b.id}
    assert await listed(state="cancelled") == {nowhere.id}
    assert await listed(state="scheduled") == {in_a.id, in_b.id}
    assert await listed(state="scheduled", courtroom_id=room_b.id) == {in_b.id}
    assert await listed(terminal_id=uuid.uuid4()) == set()


async def test_list_hearings_paging_total(registry: Registry) -> None:
    ids = [(await make_hearing(registry, i, i + 1)).id for i in range(5)]
    items, total = await registry.list_hearings(HearingQuery(limit=2, offset=1))
    assert total == 5
    assert [h.id for h in items] == ids[1:3]
    items, total = await registry.list_hearings(HearingQuery(limit=2, offset=4))
    assert (total, [h.id for h in items]) == (5, ids[4:])


async def test_update_hearing(registry: Registry, clock: FakeClock) -> None:
    hearing = await make_hearing(registry, 1, 2)
    clock.advance(timedelta(minutes=5))
    updated = await registry.update_hearing(
        hearing.id, HearingPatch(title="新标题", scheduled_end=at(3)), ACTOR
    )
    assert updated.updated_at == clock.now
    detail = await registry.get_hearing(hearing.id)
    assert (detail.title, detail.scheduled_end) == ("新标题", at(3))
    with pytest.raises(InvalidInput):
        await registry.update_hearing(hearing.id, HearingPatch(scheduled_end=at(0.5)), ACTOR)
    assert (await registry.get_hearing(hearing.id)).scheduled_end == at(3)


async def test_update_refused_once_in_session(registry: Registry) -> None:
    hearing = await make_hearing(registry, 1, 2)
    await registry.update_hearing(hearing.id, HearingPatch(title="while scheduled"), ACTOR)
    await registry.transition(hearing.id, OPEN, ACTOR)
    await registry.update_hearing(hearing.id, HearingPatch(title="while open"), ACTOR)
    await registry.transition(hearing.id, START, ACTOR)
    with pytest.raises(NotEditable) as caught:
        await registry.update_hearing(hearing.id, HearingPatch(title="in session"), ACTOR)
    assert caught.value.details["current_state"] == "in_session"
    await registry.transition(hearing.id, RECESS, ACTOR)
    with pytest.raises(NotEditable):
        await registry.update_hearing(hearing.id, HearingPatch(scheduled_end=at(5)), ACTOR)
    detail = await registry.get_hearing(hearing.id)
    assert (detail.title, detail.scheduled_end) == ("while open", at(2))


async def test_transitions_set_started_and_closed_times(
    registry: Registry, clock: FakeClock
) -> None:
    hearing = await make_hearing(registry, 1, 2)
    clock.advance(timedelta(minutes=1))
    opened = await registry.transition(hearing.id, OPEN, ACTOR)
    assert opened.state is HearingState.OPEN and opened.started_at is None
    clock.advance(timedelta(minutes=1))
    started_at = clock.now
    await registry.transition(hearing.id, START, ACTOR)
    clock.advance(timedelta(minutes=10))
    await registry.transition(hearing.id, RECESS, ACTOR)
    clock.advance(timedelta(minutes=10))
    resumed = await registry.transition(hearing.id, RESUME, ACTOR)
    assert resumed.state is HearingState.IN_SESSION
    assert resumed.started_at == started_at  # resuming does not restart the hearing
    clock.advance(timedelta(minutes=30))
    closed = await registry.transition(hearing.id, CLOSE, ACTOR)
    detail = await registry.get_hearing(hearing.id)
    assert detail.state is HearingState.CLOSED
    assert (detail.started_at, detail.closed_at) == (started_at, clock.now)
    assert closed.closed_at == clock.now


async def test_cancel_sets_closed_time_and_refused_transition_changes_nothing(
    registry: Registry, clock: FakeClock
) -> None:
    hearing = await make_hearing(registry, 1, 2)
    with pytest.raises(InvalidTransition):
        await registry.transition(hearing.id, START, ACTOR)
    assert (await registry.get_hearing(hearing.id)).state is HearingState.SCHEDULED
    await registry.transition(hearing.id, CANCEL, ACTOR)
    detail = await registry.get_hearing(hearing.id)
    assert (detail.state, detail.closed_at, detail.started_at) == (
        HearingState.CANCELLED, clock.now, None,
    )


# -- schedule conflicts --------------------------------------------------------------------


async def test_courtroom_double_booking_on_create(registry: Registry) -> None:
    room = await make_room(registry)
    first = await make_hearing(registry, 1, 3, room)
    with pytest.raises(ScheduleConflict) as caught:
        await make_hearing(registry, 2, 4, room)
    assert conflicting_ids(caught.value) == {str(first.id)}
    assert resources(caught.value) == {"courtroom"}
    assert (await registry.list_hearings(HearingQuery()))[1] == 1
    # A different courtroom, or no courtroom, is free at the same time.
    await make_hearing(registry, 2, 4, await make_room(registry, name="Other"))
    await make_hearing(registry, 2, 4)


async def test_conflict_lists_every_conflicting_hearing(registry: Registry) -> None:
    room = await make_room(registry)
    first = await make_hearing(registry, 1, 2, room)
    second = await make_hearing(registry, 3, 4, room)
    await make_hearing(registry, 5, 6, room)
    with pytest.raises(ScheduleConflict) as caught:
        await make_hearing(registry, 1.5, 3.5, room)
    assert conflicting_ids(caught.value) == {str(first.id), str(second.id)}


async def test_courtroom_double_booking_when_moving(registry: Registry) -> None:
    room = await make_room(registry)
    other_room = await make_room(registry, name="Other")
    first = await make_hearing(registry, 1, 2, room)
    second = await make_hearing(registry, 3, 4, room)
    with pytest.raises(ScheduleConflict) as caught:
        await registry.update_hearing(
            second.id, HearingPatch(scheduled_start=at(1.5)), ACTOR
        )
    assert conflicting_ids(caught.value) == {str(first.id)}
    elsewhere = await make_hearing(registry, 1, 2, other_room)
    with pytest.raises(ScheduleConflict) as caught:
        await registry.update_hearing(elsewhere.id, HearingPatch(courtroom_id=room.id), ACTOR)
    assert conflicting_ids(caught.value) == {str(first.id)}
    detail = await registry.get_hearing(second.id)
    assert (detail.scheduled_start, detail.courtroom_id) == (at(3), room.id)
    assert (await registry.get_hearing(elsewhere.id)).courtroom_id == other_room.id
    # Moving a hearing within its own slot does not conflict with itself.
    await registry.update_hearing(second.id, HearingPatch(scheduled_start=at(2.5)), ACTOR)


async def test_judge_double_booking_when_added(registry: Registry) -> None:
    # One judge written differently: case and spacing (also the padding of 王　芳) do not count.
    spellings = [("Judge Wang", "Judge Wang"), ("Judge  Wang", " judge wang"), ("王芳", "王　芳")]
    for day, (first_judge, second_judge) in enumerate(spellings):
        base = 24 * day
        room_a = await make_room(registry, name=f"A{day}")
        room_b = await make_room(registry, name=f"B{day}")
        first = await make_hearing(registry, base + 1, base + 3, room_a)
        second = await make_hearing(registry, base + 2, base + 4, room_b)
        await add_judge(registry, first, first_judge)
        with pytest.raises(ScheduleConflict) as caught:
            await add_judge(registry, second, second_judge)
        assert conflicting_ids(caught.value) == {str(first.id)}, second_judge
        assert resources(caught.value) == {"judge"}
        assert (await registry.get_hearing(second.id)).participants == []


async def test_same_name_in_another_role_or_another_judge_is_no_conflict(
    registry: Registry,
) -> None:
    first = await make_hearing(registry, 1, 3)
    second = await make_hearing(registry, 2, 4)
    await add_judge(registry, first, "Judge Wang")
    await add_judge(registry, second, "Judge Li")
    await registry.add_participant(
        second.id,
        ParticipantIn(name="Judge Wang", role=Role.WITNESS, location=Location.REMOTE),
        ACTOR,
    )
    assert len((await registry.get_hearing(second.id)).participants) == 2


async def test_judge_double_booking_when_moving(registry: Registry) -> None:
    first = await make_hearing(registry, 1, 2, await make_room(registry, name="A"))
    second = await make_hearing(registry, 3, 4, await make_room(registry, name="B"))
    await add_judge(registry, first, "Judge Wang")
    await add_judge(registry, second, "JUDGE WANG")
    with pytest.raises(ScheduleConflict) as caught:
        await registry.update_hearing(
            second.id, HearingPatch(scheduled_start=at(1.5), scheduled_end=at(2.5)), ACTOR
        )
    assert conflicting_ids(caught.value) == {str(first.id)}
    assert resources(caught.value) == {"judge"}
    assert (await registry.get_hearing(second.id)).scheduled_start == at(3)


async def test_a_judge_who_is_an_account_is_found_by_it_whatever_name_was_typed(
    registry: Registry,
) -> None:
    court = await make_court(registry)
    judge = await make_account(registry, "王芳", StaffRole.JUDGE, court)
    room_a, room_b = (await make_room(registry, court, "A"), await make_room(registry, court, "B"))
    # The first hearing's judge is the account; its judge participant was typed otherwise.
    first = await make_hearing(registry, 1, 3, room_a, judge=judge)
    await add_judge(registry, first, "王法官")

    def judged_by_account(error: ScheduleConflict) -> list[tuple[str, str, str]]:
        return [(c["hearing_id"], c["judge"], c["judge_account_id"]) for c in error.conflicts]

    expected = [(str(first.id), "王芳", str(judge.id))]
    # Scheduled with the same account over it: refused, the account named.
    with pytest.raises(ScheduleConflict) as caught:
        await make_hearing(registry, 2, 4, room_b, judge=judge)
    assert judged_by_account(caught.value) == expected
    # Checked before saving, as the calendar does.
    second = await make_hearing(registry, 5, 6, room_b)
    check = HearingIn(case_number="(2026)京01刑初9号", title="李某诈骗案",
                      kind=HearingKind.TRIAL, courtroom_id=room_b.id, scheduled_start=at(2),
                      scheduled_end=at(4), judge_account_id=judge.id)
    assert [(c["hearing_id"], c["judge_account_id"]) for c in
            await registry.schedule_conflicts(check)] == [(str(first.id), str(judge.id))]
    assert await registry.schedule_conflicts(check.model_copy(update={"judge_account_id": None})
                                             ) == []
    # Given the account as its judge, or its seat, or moved over the first: refused.
    with pytest.raises(ScheduleConflict):
        await registry.update_hearing(second.id, HearingPatch(
            judge_account_id=judge.id, scheduled_start=at(2), scheduled_end=at(4)), ACTOR)
    moved = await registry.update_hearing(second.id, HearingPatch(
        scheduled_start=at(2), scheduled_end=at(4)), ACTOR)
    with pytest.raises(ScheduleConflict) as caught:
        await registry.add_participant(second.id, ParticipantIn(
            account_id=judge.id, role=Role.JUDGE, location=Location.COURTROOM), ACTOR)
    assert judged_by_account(caught.value) == expected
    assert (await registry.get_hearing(moved.id)).judge_account_id is None
    # Another judge's account is no conflict.
    other = await make_account(registry, "李明", StaffRole.JUDGE, court)
    await registry.update_hearing(second.id, HearingPatch(judge_account_id=other.id), ACTOR)


async def test_terminal_double_booking(registry: Registry) -> None:
    terminal_id, _ = await make_terminal(registry)
    first = await make_hearing(registry, 1, 3)
    second = await make_hearing(registry, 2, 4)
    later = await make_hearing(registry, 5, 6)
    await add_defendant(registry, first, terminal_id, "张某")
    with pytest.raises(ScheduleConflict) as caught:
        await add_defendant(registry, second, terminal_id, "李某")
    assert conflicting_ids(caught.value) == {str(first.id)}
    assert resources(caught.value) == {"prison_terminal"}
    # Moving a hearing that uses the terminal onto the first one's window.
    await add_defendant(registry, later, terminal_id, "赵某")
    with pytest.raises(ScheduleConflict) as caught:
        await registry.update_hearing(later.id, HearingPatch(scheduled_start=at(2.5)), ACTOR)
    assert conflicting_ids(caught.value) == {str(first.id)}


async def test_adjacent_windows_do_not_conflict(registry: Registry) -> None:
    room = await make_room(registry)
    terminal_id, _ = await make_terminal(registry)
    first = await make_hearing(registry, 1, 2, room)
    await add_judge(registry, first, "Judge Wang")
    await add_defendant(registry, first, terminal_id)
    before = await make_hearing(registry, 0, 1, room)
    after = await make_hearing(registry, 2, 3, room)
    for hearing in (before, after):
        await add_judge(registry, hearing, "Judge Wang")
        await add_defendant(registry, hearing, terminal_id)
    # ... and moving one to touch the other from the other side is fine too.
    await registry.update_hearing(
        after.id, HearingPatch(scheduled_start=at(2), scheduled_end=at(2.5)), ACTOR
    )
    assert (await registry.list_hearings(HearingQuery(courtroom_id=room.id)))[1] == 3


@pytest.mark.parametrize("finish", [[CANCEL], [OPEN, START, CLOSE]], ids=["cancelled", "closed"])
async def test_finished_hearings_do_not_block(
    registry: Registry, finish: list[HearingAction]
) -> None:
    room = await make_room(registry)
    terminal_id, _ = await make_terminal(registry)
    first = await make_hearing(registry, 1, 2, room)
    await add_judge(registry, first, "Judge Wang")
    await add_defendant(registry, first, terminal_id)
    for action in finish:
        await registry.transition(first.id, action, ACTOR)
    second = await make_hearing(registry, 1, 2, room)
    await add_judge(registry, second, "Judge Wang")
    await add_defendant(registry, second, terminal_id)
    assert len((await registry.get_hearing(second.id)).participants) == 2


async def test_live_hearings_still_block(registry: Registry) -> None:
    room = await make_room(registry)
    first = await make_hearing(registry, 1, 2, room)
    await registry.transition(first.id, OPEN, ACTOR)
    await registry.transition(first.id, START, ACTOR)
    await registry.transition(first.id, RECESS, ACTOR)
    with pytest.raises(ScheduleConflict) as caught:
        await make_hearing(registry, 1.5, 2.5, room)
    assert conflicting_ids(caught.value) == {str(first.id)}


async def test_a_hearing_whose_server_died_in_session_is_interrupted_until_the_court_decides(
    registry: Registry, clock: FakeClock
) -> None:
    hearing = await make_hearing(registry, 1, 2)
    await registry.transition(hearing.id, OPEN, ACTOR)
    assert await registry.interrupt(hearing.id) is None  # not in session: left as it is
    await registry.transition(hearing.id, START, ACTOR)
    clock.advance(timedelta(minutes=5))
    interrupted = await registry.interrupt(hearing.id)
    assert interrupted is not None
    assert interrupted.state is HearingState.RECESS
    assert interrupted.interrupted_at == clock.now
    assert (await registry.get_hearing(hearing.id)).state is HearingState.RECESS
    events, _ = await registry.audit_events(AuditQuery(hearing_id=hearing.id))
    [event] = [e for e in events if e.action == "hearing.interrupted"]
    assert event.actor == "system" and event.data == {"from": "in_session", "to": "recess"}
    assert await registry.interrupt(hearing.id) is None  # once
    # The court resumes: the flag goes, the hearing is in session again.
    resumed = await registry.transition(hearing.id, RESUME, ACTOR)
    assert resumed.state is HearingState.IN_SESSION and resumed.interrupted_at is None
    # Or closes an interrupted hearing.
    await registry.interrupt(hearing.id)
    closed = await registry.transition(hearing.id, CLOSE, ACTOR)
    assert closed.state is HearingState.CLOSED and closed.interrupted_at is None
    assert (await registry.get_hearing(hearing.id)).interrupted_at is None

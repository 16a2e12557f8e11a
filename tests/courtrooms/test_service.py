"""The registry against real SQLite and real PostgreSQL: CRUD, schedule conflicts, tokens."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta, timezone

import pytest
from sqlalchemy import select

from courtrooms.errors import (
    AccessDenied,
    InUse,
    InvalidInput,
    InvalidTransition,
    NotEditable,
    NotFound,
    ScheduleConflict,
)
from courtrooms.lifecycle import HearingAction
from courtrooms.models import (
    HearingKind,
    HearingState,
    JoinToken,
    Location,
    PrisonTerminal,
    Role,
)
from courtrooms.schemas import (
    CourtIn,
    CourtPatch,
    CourtroomIn,
    CourtroomPatch,
    CourtroomQuery,
    HearingIn,
    HearingPatch,
    HearingQuery,
    PageQuery,
    ParticipantIn,
    PrisonTerminalIn,
    PrisonTerminalPatch,
)
from courtrooms.service import Registry
from tests.conftest import FakeClock
from tests.courtrooms.builders import (
    ACTOR,
    add_defendant,
    add_judge,
    add_remote,
    at,
    database_text,
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


# -- courts --------------------------------------------------------------------------------


async def test_court_create_get_list_update_delete(registry: Registry, clock: FakeClock) -> None:
    court = await registry.create_court(CourtIn(name="北京市第一中级人民法院"), ACTOR)
    assert court.created_at == clock.now
    assert (await registry.get_court(court.id)).name == "北京市第一中级人民法院"

    await registry.create_court(CourtIn(name="A Court"), ACTOR)
    items, total = await registry.list_courts(PageQuery())
    assert total == 2
    assert [c.name for c in items] == sorted(c.name for c in items)

    updated = await registry.update_court(court.id, CourtPatch(name="Renamed"), ACTOR)
    assert updated.name == "Renamed"
    assert (await registry.get_court(court.id)).name == "Renamed"

    await registry.delete_court(court.id, ACTOR)
    with pytest.raises(NotFound):
        await registry.get_court(court.id)
    assert (await registry.list_courts(PageQuery()))[1] == 1


async def test_court_names_are_unique(registry: Registry) -> None:
    await registry.create_court(CourtIn(name="Court A"), ACTOR)
    other = await registry.create_court(CourtIn(name="Court B"), ACTOR)
    with pytest.raises(InvalidInput) as caught:
        await registry.create_court(CourtIn(name="Court A"), ACTOR)
    assert caught.value.field == "name"
    with pytest.raises(InvalidInput) as caught:
        await registry.update_court(other.id, CourtPatch(name="Court A"), ACTOR)
    assert caught.value.field == "name"
    assert (await registry.get_court(other.id)).name == "Court B"


async def test_court_list_pages(registry: Registry) -> None:
    for i in range(5):
        await registry.create_court(CourtIn(name=f"Court {i}"), ACTOR)
    items, total = await registry.list_courts(PageQuery(limit=2, offset=2))
    assert total == 5
    assert [c.name for c in items] == ["Court 2", "Court 3"]


async def test_unknown_court_is_not_found(registry: Registry) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound):
        await registry.get_court(missing)
    with pytest.raises(NotFound):
        await registry.update_court(missing, CourtPatch(name="x"), ACTOR)
    with pytest.raises(NotFound):
        await registry.delete_court(missing, ACTOR)


async def test_court_with_courtrooms_cannot_be_deleted(registry: Registry) -> None:
    court = await make_court(registry)
    room = await make_room(registry, court)
    with pytest.raises(InUse):
        await registry.delete_court(court.id, ACTOR)
    assert (await registry.get_court(court.id)).id == court.id
    await registry.delete_courtroom(room.id, ACTOR)
    await registry.delete_court(court.id, ACTOR)
    with pytest.raises(NotFound):
        await registry.get_court(court.id)


# -- courtrooms ----------------------------------------------------------------------------


async def test_courtroom_create_get_list_update_delete(registry: Registry) -> None:
    court = await make_court(registry)
    other_court = await make_court(registry)
    room = await registry.create_courtroom(CourtroomIn(court_id=court.id, name="第一法庭"), ACTOR)
    await registry.create_courtroom(CourtroomIn(court_id=court.id, name="第二法庭"), ACTOR)
    await registry.create_courtroom(CourtroomIn(court_id=other_court.id, name="X"), ACTOR)
    fetched = await registry.get_courtroom(room.id)
    assert (fetched.court_id, fetched.name) == (court.id, "第一法庭")

    items, total = await registry.list_courtrooms(CourtroomQuery(court_id=court.id))
    assert total == 2
    assert {r.name for r in items} == {"第一法庭", "第二法庭"}
    assert (await registry.list_courtrooms(CourtroomQuery()))[1] == 3

    await registry.update_courtroom(room.id, CourtroomPatch(name="第三法庭"), ACTOR)
    assert (await registry.get_courtroom(room.id)).name == "第三法庭"

    await registry.delete_courtroom(room.id, ACTOR)
    with pytest.raises(NotFound):
        await registry.get_courtroom(room.id)


async def test_courtroom_names_are_unique_within_a_court(registry: Registry) -> None:
    court = await make_court(registry)
    other_court = await make_court(registry)
    await make_room(registry, court, "第一法庭")
    second = await make_room(registry, court, "第二法庭")
    with pytest.raises(InvalidInput) as caught:
        await make_room(registry, court, "第一法庭")
    assert caught.value.field == "name"
    with pytest.raises(InvalidInput):
        await registry.update_courtroom(second.id, CourtroomPatch(name="第一法庭"), ACTOR)
    # Another court may have its own 第一法庭.
    elsewhere = await make_room(registry, other_court, "第一法庭")
    assert elsewhere.court_id == other_court.id


async def test_courtroom_in_unknown_court_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidInput) as caught:
        await registry.create_courtroom(CourtroomIn(court_id=uuid.uuid4(), name="Room"), ACTOR)
    assert caught.value.field == "court_id"
    assert (await registry.list_courtrooms(CourtroomQuery()))[1] == 0


async def test_courtroom_on_the_record_of_a_hearing_cannot_be_deleted(
    registry: Registry,
) -> None:
    room = await make_room(registry)
    hearing = await make_hearing(registry, 1, 2, room)
    await registry.transition(hearing.id, CANCEL, ACTOR)
    with pytest.raises(InUse):
        await registry.delete_courtroom(room.id, ACTOR)
    assert (await registry.get_courtroom(room.id)).id == room.id


# -- prison terminals ----------------------------------------------------------------------


async def test_terminal_device_key_is_returned_once_and_only_hashed(registry: Registry) -> None:
    terminal, key = await registry.create_terminal(
        PrisonTerminalIn(name="提讯终端一号", prison="第一监狱"), ACTOR
    )
    assert len(key) >= 32
    async with registry.db.read() as session:
        row = await session.get(PrisonTerminal, terminal.id)
    assert row is not None
    assert row.device_key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in await database_text(registry)

    fetched = await registry.get_terminal(terminal.id)
    assert key not in repr(vars(fetched))

    _, second_key = await registry.create_terminal(
        PrisonTerminalIn(name="提讯终端二号", prison="第一监狱"), ACTOR
    )
    assert second_key != key


async def test_terminal_list_update_rotate_delete(registry: Registry) -> None:
    terminal_id, key = await make_terminal(registry, "B terminal")
    await make_terminal(registry, "A terminal")
    items, total = await registry.list_terminals(PageQuery())
    assert total == 2
    assert [t.name for t in items] == ["A terminal", "B terminal"]

    await registry.update_terminal(terminal_id, PrisonTerminalPatch(prison="第二监狱"), ACTOR)
    fetched = await registry.get_terminal(terminal_id)
    assert (fetched.name, fetched.prison) == ("B terminal", "第二监狱")

    _, new_key = await registry.rotate_terminal_key(terminal_id, ACTOR)
    assert new_key != key
    with pytest.raises(AccessDenied):
        await registry.terminal_assignment(key)
    assert (await registry.terminal_assignment(new_key)).terminal.id == terminal_id
    assert new_key not in await database_text(registry)

    await registry.delete_terminal(terminal_id, ACTOR)
    with pytest.raises(NotFound):
        await registry.get_terminal(terminal_id)


async def test_terminal_on_the_record_of_a_hearing_cannot_be_deleted(registry: Registry) -> None:
    terminal_id, _ = await make_terminal(registry)
    hearing = await make_hearing(registry, 1, 2)
    await add_defendant(registry, hearing, terminal_id)
    with pytest.raises(InUse):
        await registry.delete_terminal(terminal_id, ACTOR)
    assert (await registry.get_terminal(terminal_id)).id == terminal_id


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

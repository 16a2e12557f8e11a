"""Courts, courtrooms and prison terminals in the registry, against real SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from courtrooms.errors import (
    AccessDenied,
    InUse,
    InvalidInput,
    NotFound,
)
from courtrooms.lifecycle import HearingAction
from courtrooms.models import (
    PrisonTerminal,
)
from courtrooms.registry import Registry
from courtrooms.schemas import (
    CourtIn,
    CourtPatch,
    CourtroomIn,
    CourtroomPatch,
    CourtroomQuery,
    PageQuery,
    PrisonTerminalIn,
    PrisonTerminalPatch,
)
from tests.conftest import FakeClock
from tests.courtrooms.builders import (
    ACTOR,
    add_defendant,
    database_text,
    make_court,
    make_hearing,
    make_room,
    make_terminal,
)

CANCEL = HearingAction.CANCEL


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

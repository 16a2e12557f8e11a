"""The last digits of a party's ID number: kept only as a salted hash, asked for at the join,
a few wrong tries then a lockout; against real SQLite and real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import select

from courtrooms.errors import AccessDenied, IdDigitsLocked, IdDigitsRequired, IdDigitsWrong
from courtrooms.id_digits import FAILED, LOCKOUT, TRIES, id_digits_match
from courtrooms.invitations import IssuedToken
from courtrooms.models import AuditEvent, Hearing, Location, Participant, Role
from courtrooms.registry import Registry
from courtrooms.schemas import AuditQuery, ParticipantIn
from tests.conftest import FakeClock
from tests.courtrooms.builders import ACTOR, database_text, make_hearing, make_terminal


async def add_party(registry: Registry, hearing: Hearing, digits: str | None = "123X",
                    name: str = "王某", **fields: object) -> IssuedToken:
    data = {"name": name, "role": "party", "location": "remote", **fields}
    if digits is not None:
        data["id_number_last4"] = digits
    return await registry.add_participant(
        hearing.id, ParticipantIn.model_validate_json(json.dumps(data)), ACTOR)


async def failures_audited(registry: Registry, hearing: Hearing) -> list[AuditEvent]:
    events, _ = await registry.audit_events(AuditQuery(hearing_id=hearing.id, limit=200))
    return [e for e in events if e.action == FAILED]


async def stored(registry: Registry, participant_id: uuid.UUID) -> Participant:
    async with registry.db.read() as session:
        row = await session.get(Participant, participant_id)
        assert row is not None
        return row


async def test_only_a_salted_hash_is_stored(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0.25, 2)
    first = await add_party(registry, hearing, "123x")
    second = await add_party(registry, hearing, "123X", name="李某")
    without = await add_party(registry, hearing, None, name="赵某")
    one, two = (await stored(registry, first.participant.id),
                await stored(registry, second.participant.id))
    assert one.id_digits_hash is not None and two.id_digits_hash is not None
    assert one.id_digits_hash.startswith("scrypt$")
    # A salt of its own: the same digits hash differently.
    assert one.id_digits_hash != two.id_digits_hash
    assert id_digits_match(one.id_digits_hash, "123X")
    assert id_digits_match(one.id_digits_hash, "123x")  # an x is an X
    assert not id_digits_match(one.id_digits_hash, "1230")
    assert (await stored(registry, without.participant.id)).id_digits_hash is None
    assert first.participant.id_digits_on_file and not without.participant.id_digits_on_file
    # Nowhere in the database in clear, the audit chain included; the audit says they are on
    # file.
    text = await database_text(registry)
    assert "123X" not in text and "123x" not in text
    added = [e for e in (await registry.audit_events(AuditQuery(hearing_id=hearing.id)))[0]
             if e.action == "participant.added"]
    assert [e.data["id_digits_on_file"] for e in added] == [True, True, False]
    assert all("id_number_last4" not in e.data for e in added)


async def test_the_join_asks_for_them_and_a_right_answer_passes(registry: Registry) -> None:
    hearing = await make_hearing(registry, 0.25, 2)
    party = await add_party(registry, hearing, "4567")
    grant = await registry.resolve_join_token(party.token)
    assert grant.needs_id_digits
    with pytest.raises(IdDigitsRequired) as required:
        await registry.check_id_digits(grant, None)
    assert required.value.field == "id_digits"
    with pytest.raises(IdDigitsWrong) as wrong:
        await registry.check_id_digits(grant, "4568")
    assert wrong.value.details["tries_left"] == TRIES - 1
    [event] = await failures_audited(registry, hearing)
    assert event.actor == f"participant:{party.participant.id}"
    assert event.data["participant_id"] == str(party.participant.id)
    assert event.data["failures"] == 1 and event.data["locked_until"] is None
    assert "4568" not in repr(event.data) and "4567" not in repr(event.data)
    await registry.check_id_digits(grant, "4567")
    # A right answer clears the count.
    assert (await stored(registry, party.participant.id)).id_digits_failures == 0
    # Refusals are access refusals: the socket answers them like a bad token.
    assert issubclass(IdDigitsWrong, AccessDenied) and issubclass(IdDigitsLocked, AccessDenied)


async def test_wrong_tries_lock_the_participant_out_for_minutes(
    registry: Registry, clock: FakeClock
) -> None:
    hearing = await make_hearing(registry, 0.25, 3)
    party = await add_party(registry, hearing, "0009")
    grant = await registry.resolve_join_token(party.token)
    for n in range(1, TRIES):
        with pytest.raises(IdDigitsWrong) as wrong:
            await registry.check_id_digits(grant, f"{n:04d}")
        assert wrong.value.details["tries_left"] == TRIES - n
    with pytest.raises(IdDigitsLocked) as locked:
        await registry.check_id_digits(grant, "1111")
    until = clock.now + LOCKOUT
    assert locked.value.details["locked_until"] == until.isoformat()
    # Locked: even the right digits are not tried, and an untried join is not audited.
    with pytest.raises(IdDigitsLocked):
        await registry.check_id_digits(grant, "0009")
    events = await failures_audited(registry, hearing)
    assert [e.data["failures"] for e in events] == list(range(1, TRIES + 1))
    assert events[-1].data["locked_until"] == until.isoformat()
    # After the lockout, one try per lockout until a right one.
    clock.advance(LOCKOUT)
    with pytest.raises(IdDigitsLocked):
        await registry.check_id_digits(grant, "2222")
    with pytest.raises(IdDigitsLocked):
        await registry.check_id_digits(grant, "0009")
    clock.advance(LOCKOUT)
    await registry.check_id_digits(grant, "0009")
    row = await stored(registry, party.participant.id)
    assert row.id_digits_failures == 0 and row.id_digits_locked_until is None
    with pytest.raises(IdDigitsWrong) as wrong:
        await registry.check_id_digits(grant, "0008")
    assert wrong.value.details["tries_left"] == TRIES - 1


async def test_tries_sent_at_once_are_counted_before_they_are_checked(
    registry: Registry
) -> None:
    """Many connections at once cannot pass the limit while the first tries are hashed."""
    hearing = await make_hearing(registry, 0.25, 2)
    party = await add_party(registry, hearing, "5555")
    grant = await registry.resolve_join_token(party.token)
    results = await asyncio.gather(*(registry.check_id_digits(grant, f"{n:04d}")
                                     for n in range(3 * TRIES)), return_exceptions=True)
    assert all(isinstance(r, (IdDigitsWrong, IdDigitsLocked)) for r in results), results
    # Only the first TRIES were hashed and audited; the others found the lockout.
    assert len(await failures_audited(registry, hearing)) == TRIES
    assert sum(isinstance(r, IdDigitsLocked) for r in results) >= 3 * TRIES - TRIES


async def test_the_court_observers_and_prison_terminals_are_not_asked(
    registry: Registry
) -> None:
    hearing = await make_hearing(registry, 0.25, 2)
    terminal_id, key = await make_terminal(registry)
    defendant = await add_party(registry, hearing, "8888", name="张某", role="defendant",
                                location="prison", terminal_id=str(terminal_id))
    # Through the terminal, by its key or the token derived from it: not asked.
    by_key = await registry.resolve_device_key(key)
    assert by_key.participant.id == defendant.participant.id and not by_key.needs_id_digits
    await registry.check_id_digits(by_key, None)
    assignment = await registry.terminal_assignment(key)
    assert assignment.token is not None
    by_kiosk = await registry.resolve_join_token(assignment.token)
    assert by_kiosk.by_terminal and not by_kiosk.needs_id_digits
    # The same defendant's own invitation link is asked.
    by_link = await registry.resolve_join_token(defendant.token)
    assert by_link.needs_id_digits
    with pytest.raises(IdDigitsRequired):
        await registry.check_id_digits(by_link, None)
    # The court and observers cannot have digits on file at all.
    for role, location in ((Role.JUDGE, Location.COURTROOM), (Role.CLERK, Location.COURTROOM),
                           (Role.OBSERVER, Location.REMOTE)):
        with pytest.raises(ValueError, match="id_number_last4"):
            await add_party(registry, hearing, "1234", role=role.value, location=location.value)
    async with registry.db.read() as session:
        names = list(await session.scalars(select(Participant.name)))
    assert sorted(names) == ["张某"]

"""Seats as the court and the participants see them (signaling/seats.py)."""

from __future__ import annotations

import uuid

from courtrooms.models import Location, Participant, Role
from signaling.seats import Seat, expected_view, participants_message, seat_party


def person(role: Role, party: uuid.UUID | None = None) -> Participant:
    return Participant(id=uuid.uuid4(), hearing_id=uuid.uuid4(), name="陈某", name_key="陈某",
                       role=role, location=Location.REMOTE, interprets_for_id=party)


def test_an_interpreter_names_their_party_in_every_list() -> None:
    defendant = person(Role.DEFENDANT)
    interpreter = person(Role.INTERPRETER, defendant.id)
    assert seat_party(interpreter) == str(defendant.id) and seat_party(defendant) is None
    assert expected_view(interpreter)["interprets_for_id"] == str(defendant.id)
    assert expected_view(defendant)["interprets_for_id"] is None
    seat = Seat(participant_id=str(interpreter.id), name=interpreter.name, role="interpreter",
                location="remote", interprets_for_id=seat_party(interpreter))
    for court in (True, False):
        listed = participants_message([seat], court)["participants"]
        assert listed[0]["interprets_for_id"] == str(defendant.id)
    # A seat stored by an older process (no such field) is taken up without it.
    stored = {k: v for k, v in seat.public().items() if k in Seat.__dataclass_fields__}
    del stored["interprets_for_id"]
    assert Seat.stored(stored).interprets_for_id is None

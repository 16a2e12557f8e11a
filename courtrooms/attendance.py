"""Who was there, when, and why they were not: the attendance of a hearing, from its audit.

《人民法院在线诉讼规则》 art. 25: a party who fails to join is treated as refusing to appear, and
one who leaves after warnings as walking out, except for a network failure, damaged equipment or
a power cut. So every join and departure is audited with its cause (`attendance.joined`,
`attendance.left`), the judge's warnings too (`participant.warned`), and this module reads them
back into what the court needs: for each participant, when they were present, each absence with
its cause, and which absences were of their own choosing while the hearing was in session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from courtrooms.models import AuditEvent, Participant

# Departures the participant chose (a walk-out while in session), those the network or the
# server caused (not held against anyone), and the court's own.
CHOSEN = frozenset({"left", "page_closed"})
TECHNICAL = frozenset({"network_lost", "server_restart", "server_shutdown", "not_reading",
                       "closed_by_server"})
BY_THE_COURT = frozenset({"removed", "released", "hearing_ended"})
REPLACED = "replaced"  # the same person on another device or tab: no absence
CAUSES = CHOSEN | TECHNICAL | BY_THE_COURT | {REPLACED}

IN_SESSION_FROM = frozenset({"hearing.start", "hearing.resume"})
# A crash interrupts a hearing into recess (`Registry.interrupt`): nobody walks out of that.
IN_SESSION_UNTIL = frozenset({"hearing.recess", "hearing.close", "hearing.cancel",
                              "hearing.interrupted"})
# Back within this long (a reloaded page, a browser restarted): no walk-out.
WALK_OUT_AFTER_S = 60.0


@dataclass
class Absence:
    left_at: datetime
    cause: str
    in_session: bool  # the hearing was in session when they left
    returned_at: datetime | None = None

    @property
    def walk_out(self) -> bool:
        """Left by their own choice while the court sat and stayed away (a network failure
        never is; a page reloaded and back within a minute is not)."""
        away = (None if self.returned_at is None
                else (self.returned_at - self.left_at).total_seconds())
        return (self.cause in CHOSEN and self.in_session
                and (away is None or away >= WALK_OUT_AFTER_S))


@dataclass
class Warning:
    at: datetime
    by: str
    reason: str


@dataclass
class ParticipantAttendance:
    participant_id: uuid.UUID
    name: str
    role: str
    joined_first: datetime | None = None
    joins: int = 0
    absences: list[Absence] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    present: bool = False
    # An interpreter's party.
    interprets_for_id: uuid.UUID | None = None

    @property
    def walk_outs(self) -> int:
        return sum(1 for a in self.absences if a.walk_out)

    @property
    def network_failures(self) -> int:
        return sum(1 for a in self.absences if a.cause in TECHNICAL)

    @property
    def never_joined(self) -> bool:
        return self.joined_first is None


def attendance(events: Iterable[AuditEvent], participants: Iterable[Participant]
               ) -> list[ParticipantAttendance]:
    """Each participant's attendance, in the order they were invited, from the hearing's audit
    events (oldest first)."""
    people = {p.id: ParticipantAttendance(p.id, p.name, p.role.value,
                                          interprets_for_id=p.interprets_for_id)
              for p in participants}
    in_session = False
    for event in events:
        action = event.action
        if action in IN_SESSION_FROM:
            in_session = True
            continue
        if action in IN_SESSION_UNTIL:
            in_session = False
            continue
        person = _person(people, event.data)
        if person is None:
            continue
        at = _when(event)
        if action == "attendance.joined":
            person.joins += 1
            if person.joined_first is None:
                person.joined_first = at
            if person.absences and person.absences[-1].returned_at is None:
                person.absences[-1].returned_at = at
            person.present = True
        elif action == "attendance.left":
            cause = str(event.data.get("cause", "network_lost"))
            if cause != REPLACED:
                person.absences.append(Absence(at, cause, in_session))
            person.present = False
        elif action == "participant.warned":
            person.warnings.append(Warning(at, event.actor, str(event.data.get("reason") or "")))
    for person in people.values():
        # A departure followed by the hearing's end is no absence from the hearing.
        if person.absences and person.absences[-1].cause == "hearing_ended":
            person.absences.pop()
    return list(people.values())


def _when(event: AuditEvent) -> datetime:
    """When it happened: the wall time the server noted, else when it was written."""
    wall = event.data.get("wall")
    if isinstance(wall, int | float) and not isinstance(wall, bool):
        return datetime.fromtimestamp(wall, UTC)
    return event.at


def _person(people: dict[uuid.UUID, ParticipantAttendance], data: dict[str, Any]
            ) -> ParticipantAttendance | None:
    try:
        return people.get(uuid.UUID(str(data.get("participant_id"))))
    except ValueError:
        return None

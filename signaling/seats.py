"""What participants see of a live hearing: their seats, the roster messages made from them,
and the hearing itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from courtrooms.models import Hearing, Participant, Role

OBSERVER = Role.OBSERVER.value


@dataclass(frozen=True)
class Seat:
    """A participant's place in a live hearing; kept while they are away, for a rejoin."""

    participant_id: str
    name: str
    role: str
    location: str
    # The language they speak when it is not the hearing's, or "auto"; None: the hearing's.
    language: str | None = None
    present: bool = False
    admitted: bool = False
    muted_by_court: bool = False
    muted_self: bool = False
    camera_off: bool = False
    hand_raised: bool = False
    screen_sharing: bool = False
    # None, or a private consultation asked for or under way:
    # {"state": "requested" | "active", "with": participant id, "id": consultation id | None,
    #  "since": ISO time}
    consultation: dict[str, Any] | None = None
    connection: str = "new"
    # The device and browser session of their current connection ("device/session"), and
    # the court's last identity check: {"outcome", "device", "at", "reason"}.
    device: str | None = None
    identity: dict[str, Any] | None = None
    # An interpreter's party (their participant id): the court's list says whom they
    # interpret for.
    interprets_for_id: str | None = None

    @property
    def identity_state(self) -> str:
        """verified while on the device and session it was checked on, else unchecked (a new
        device or session is checked again); a refusal stands on any device until the court
        checks again (a new tab must not shed it)."""
        check = self.identity
        if check is None:
            return "unchecked"
        if check["outcome"] == "refused" or check.get("device") == self.device:
            return str(check["outcome"])
        return "unchecked"

    @classmethod
    def stored(cls, data: dict[str, Any]) -> Seat:
        """A seat as the bus stored it; fields this version does not know (written by a newer
        process during a rolling upgrade) are left out rather than failing the take-up."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def muted(self) -> bool:
        return self.muted_by_court or self.muted_self

    @property
    def consulting(self) -> str | None:
        """The id of the private consultation this participant is in, if any."""
        c = self.consultation
        return str(c["id"]) if c is not None and c.get("state") == "active" else None

    def public(self, court: bool = True) -> dict[str, Any]:
        """The seat as the court (or, `court` False, the other participants) sees it."""
        data = asdict(self)
        data["muted"] = self.muted
        # Device ids stay on the server; the court sees the check's outcome for now.
        del data["device"], data["identity"]
        data["identity"] = self.identity_state
        # Why a check failed is the court's to know (and the participant's own seat says it).
        data["identity_reason"] = (self.identity or {}).get("reason") \
            if court and data["identity"] == "refused" else None
        return data


def participants_message(seats: Iterable[Seat], court: bool) -> dict[str, Any]:
    """Observers (supervision) are listed to the judge and clerk only."""
    return {"type": "participants", "participants": [
        s.public(court) for s in seats if court or s.role != OBSERVER
    ]}


def consultations_message(seats: Iterable[Seat]) -> dict[str, Any]:
    """Consultations asked for and under way, for everyone in the hearing."""
    seats = list(seats)
    requests = [
        {"participant_id": s.participant_id, "with": s.consultation["with"],
         "since": s.consultation["since"]}
        for s in seats if s.consultation is not None and s.consultation["state"] == "requested"
    ]
    active: dict[str, dict[str, Any]] = {}
    for s in seats:
        if s.consulting is not None:
            entry = active.setdefault(s.consulting, {
                "id": s.consulting, "participants": [],
                "started_at": s.consultation["since"] if s.consultation else None,
            })
            entry["participants"].append(s.participant_id)
    return {"type": "consultations", "requests": requests, "active": list(active.values())}


def expected_view(participant: Participant) -> dict[str, Any]:
    """A participant of the hearing as the court's list shows one who has not joined."""
    return {"participant_id": str(participant.id), "name": participant.name,
            "role": participant.role.value, "location": participant.location.value,
            "interprets_for_id": seat_party(participant)}


def seat_party(participant: Participant) -> str | None:
    """An interpreter's party as a seat names it."""
    party = participant.interprets_for_id
    return None if party is None else str(party)


def hearing_view(hearing: Hearing) -> dict[str, Any]:
    """The hearing as the welcome shows it."""
    return {
        "id": str(hearing.id),
        "case_number": hearing.case_number,
        "title": hearing.title,
        "kind": hearing.kind.value,
        "state": hearing.state.value,
        "scheduled_start": hearing.scheduled_start.isoformat(),
        "scheduled_end": hearing.scheduled_end.isoformat(),
        "language": hearing.language,
        "auto_admit": hearing.auto_admit,
        # Its server died in session: in recess until the court resumes or closes it.
        "interrupted_at": (hearing.interrupted_at.isoformat()
                           if hearing.interrupted_at is not None else None),
        # The judge opened signing of the record so far at this recess (the `signing` message).
        "signing_open": False,
    }

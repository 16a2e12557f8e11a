"""What everyone in a live hearing sees besides each other: the exhibit on the stage, and on
arrival the record so far."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from courtrooms.errors import CourtroomsError
from courtrooms.models import Role
from signaling.errors import SignalingError
from signaling.seats import Seat

if TYPE_CHECKING:
    from signaling.hearing import Connection, LiveHearing

RECORD_LINES = 200


class Stage:
    def __init__(self, hearing: LiveHearing) -> None:
        self.hearing = hearing
        self.showing: dict[str, Any] | None = None  # the exhibit shown, `exhibit` message

    async def present(self, seat: Seat, exhibit_id: str | None, page: int) -> None:
        """Show an exhibit to everyone in the hearing, turn its page, or stop showing it."""
        hearing = self.hearing
        if seat.consulting is not None:
            raise SignalingError("forbidden", "return from the consultation to present exhibits")
        if exhibit_id is None:
            if self.showing is not None:
                self.showing = None
                hearing.broadcast(self.message())
            return
        try:
            exhibit = await hearing.services.exhibits.get(hearing.hearing_uuid,
                                                          uuid.UUID(exhibit_id))
        except (ValueError, CourtroomsError) as e:
            raise SignalingError("unknown_exhibit", f"no exhibit {exhibit_id} in this hearing",
                                 field="exhibit_id") from e
        if page > exhibit.pages:
            raise SignalingError("unknown_exhibit",
                                 f"the exhibit has {exhibit.pages} page(s)", field="page")
        same = self.showing is not None and self.showing["exhibit"]["id"] == exhibit_id
        self.showing = {
            "exhibit": {
                "id": str(exhibit.id), "title": exhibit.title, "media_type": exhibit.media_type,
                "pages": exhibit.pages, "sha256": exhibit.sha256,
                "participant_id": str(exhibit.participant_id) if exhibit.participant_id else None,
            },
            "page": page, "presenter_id": seat.participant_id,
        }
        if not same:
            await hearing.registry.record(
                hearing.hearing_uuid, f"participant:{seat.participant_id}", "exhibit.presented",
                exhibit_id=exhibit_id, sha256=exhibit.sha256)
        hearing.broadcast(self.message())

    def message(self) -> dict[str, Any]:
        if self.showing is None:
            return {"type": "exhibit", "exhibit": None, "page": None, "presenter_id": None}
        return {"type": "exhibit", **self.showing}

    async def welcome(self, connection: Connection) -> None:
        """What an admitted participant sees on arrival: the record so far, the exhibit shown.
        A witness sees none of the record: they must not learn the earlier testimony
        (《人民法院在线诉讼规则》 art. 26); from their call-in on they hear it live."""
        hearing = self.hearing
        seat = hearing.seats.get(connection.participant_id)
        if seat is not None and seat.role == Role.WITNESS.value:
            connection.send({"type": "record", "lines": []})
            connection.send(self.message())
            return
        _, lines = await hearing.services.transcripts.of_hearing(hearing.hearing_uuid)
        lines = lines[-RECORD_LINES:]
        people = {pid: (s.name, s.role) for pid, s in hearing.seats.items()}
        if any(str(line.participant_id) not in people for line in lines):
            # Spoke before this process took the hearing up: their seat is not here.
            row = await hearing.registry.get_hearing(hearing.hearing_uuid)
            people.update({str(p.id): (p.name, p.role.value) for p in row.participants})
        record = []
        for line in lines:
            name, role = people.get(str(line.participant_id), ("", ""))
            record.append({
                "type": "caption", "final": True, "participant_id": str(line.participant_id),
                "name": name, "role": role,
                "start": round(line.start, 3), "end": round(line.end, 3), "text": line.text,
                "segment_id": str(line.id),
            })
        connection.send({"type": "record", "lines": record})
        connection.send(self.message())

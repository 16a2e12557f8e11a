"""Private consultations between a lawyer and their client, asked for and granted in a live
hearing. Only the seats change here; `signaling.routing` makes the consultation private."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from courtrooms.models import CONSULTING_ROLES, COUNSEL_ROLES
from signaling.errors import SignalingError
from signaling.seats import Seat

if TYPE_CHECKING:
    from signaling.hearing import LiveHearing


def refused(message: str, field: str | None = None) -> SignalingError:
    return SignalingError("consultation_refused", message, field=field)


class Consultations:
    def __init__(self, hearing: LiveHearing) -> None:
        self.hearing = hearing

    async def request(self, seat: Seat, partner_id: str | None) -> None:
        if partner_id is None:
            raise SignalingError("invalid", "consult request needs `with`", field="with")
        partner = self.hearing.seats.get(partner_id)
        partner = self._check(seat, partner)
        if seat.consultation is not None:
            raise refused("you have already asked for or are in a consultation")
        request = {"state": "requested", "with": partner.participant_id, "id": None,
                   "since": self.hearing.registry.clock().isoformat()}
        await self.hearing.update(replace(seat, consultation=request))

    def _check(self, seat: Seat, partner: Seat | None) -> Seat:
        if partner is None or partner.participant_id == seat.participant_id:
            raise refused("the other side of a consultation must be another participant "
                          "of this hearing", "with")
        roles = {seat.role, partner.role}
        if not (roles & COUNSEL_ROLES and roles & CONSULTING_ROLES):
            raise refused("a private consultation is between a lawyer and a defendant or party",
                          "with")
        if not (partner.present and partner.admitted):
            raise refused(f"{partner.name} is not in the hearing now", "with")
        if partner.consulting is not None:
            raise refused(f"{partner.name} is already in a consultation", "with")
        return partner

    async def grant(self, requester: Seat, actor: str) -> None:
        c = requester.consultation
        if c is None or c["state"] != "requested":
            raise refused(f"{requester.name} has not asked for a consultation", "participant_id")
        partner = self._check(requester, self.hearing.seats.get(c["with"]))
        cid = uuid.uuid4().hex[:12]
        since = self.hearing.registry.clock().isoformat()
        await self.hearing.update(*(
            replace(seat, hand_raised=False,
                    consultation={"state": "active", "with": other.participant_id, "id": cid,
                                  "since": since})
            for seat, other in ((requester, partner), (partner, requester))
        ))
        await self.hearing.registry.record(
            self.hearing.hearing_uuid, actor, "consultation.started", consultation_id=cid,
            participant_ids=[requester.participant_id, partner.participant_id],
            wall=time.time())

    async def end(self, seat: Seat, actor: str) -> None:
        """End (or withdraw) `seat`'s consultation: both sides return to the hearing."""
        c = seat.consultation
        if c is None:
            raise refused(f"{seat.name} is not in a consultation")
        members = [seat]
        if c["state"] == "active":
            members += [s for s in self.hearing.seats.values()
                        if s.consulting == c["id"] and s.participant_id != seat.participant_id]
        await self.hearing.update(*(replace(s, consultation=None) for s in members))
        if c["state"] == "active":
            await self.hearing.registry.record(
                self.hearing.hearing_uuid, actor, "consultation.ended", consultation_id=c["id"],
                participant_ids=[s.participant_id for s in members],
                wall=time.time())

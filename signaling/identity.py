"""The clerk's identity checks in a live hearing (《人民法院在线诉讼规则》 art. 7: identity verified
again before each online session).

The participant holds an ID document to the camera; the judge or clerk marks them verified, or
refused with a reason. The server takes the still picture of that moment from the stream it
receives (so the picture on the record is what the court saw, not what a browser uploaded), and
`courtrooms.identity` keeps it with its sha256 in the audit. The outcome sits on the seat for
the device and browser session it was made on: a reconnect after a network drop keeps it; a
new device or a new browser session is unchecked again.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from courtrooms.errors import CourtroomsError
from courtrooms.models import CONTROL_ROLES
from media.errors import NoPicture
from signaling.errors import SignalingError
from signaling.messages import error
from signaling.seats import OBSERVER, Seat

if TYPE_CHECKING:
    from signaling.hearing import LiveHearing

IDENTITY_COMMANDS = ("verify_identity", "refuse_identity")


class IdentityDesk:
    def __init__(self, hearing: LiveHearing) -> None:
        self.hearing = hearing
        self._checking: set[str] = set()  # participants whose still is being taken

    async def check(self, target: Seat, verified: bool, reason: str | None,
                    actor_ref: str) -> None:
        """Refuse at once what cannot be checked; take the still in the background (up to a
        few seconds for a keyframe) so that the court's connection is not held meanwhile. A
        failure then reaches the court as an error message."""
        if target.participant_id in self._checking:
            raise SignalingError("busy", f"a check of {target.name} is under way",
                                 field="participant_id")
        self._validate(target, verified, reason)
        self._checking.add(target.participant_id)
        hearing = self.hearing
        hearing.tasks.spawn(self._checked(target, verified, reason, actor_ref),
                            name=f"identity-{target.participant_id[:8]}",
                            context=hearing.context)

    async def _checked(self, target: Seat, verified: bool, reason: str | None,
                       actor_ref: str) -> None:
        try:
            await self._check(target, verified, reason, actor_ref)
        except (SignalingError, CourtroomsError) as e:
            connection = self.hearing.connections.get(actor_ref.removeprefix("participant:"))
            if connection is not None:
                connection.send(error(e.code, e.message, field=e.field))
        finally:
            self._checking.discard(target.participant_id)

    @staticmethod
    def _validate(target: Seat, verified: bool, reason: str | None) -> None:
        if target.role in CONTROL_ROLES or target.role == OBSERVER:
            raise SignalingError("invalid", f"{target.name} is not one whose identity the court "
                                 "checks (the court's own and observers are not)",
                                 field="participant_id")
        if not verified and reason is None:
            raise SignalingError("invalid", "say why the identity check failed",
                                 field="reason")
        if verified and reason is not None:
            raise SignalingError("invalid", "verify_identity takes no reason", field="reason")
        if not target.present:
            raise SignalingError("invalid", f"{target.name} is not connected: the check is "
                                 "made while they hold their ID to the camera",
                                 field="participant_id")
        _seen_by_the_court(target)
        if verified:
            try:
                _shows_them(target)
            except NoPicture as e:
                raise SignalingError("no_picture", f"{target.name}: {e}; ask them to turn "
                                     "the camera on and hold their ID to it") from e

    async def _check(self, target: Seat, verified: bool, reason: str | None,
                     actor_ref: str) -> None:
        hearing = self.hearing
        try:
            _shows_them(target)
            still: bytes | None = await hearing.media.still(target.participant_id)
            _shows_them(hearing.seats.get(target.participant_id, target))  # switched meanwhile
        except NoPicture as e:
            if verified:  # nothing was seen: nothing can be verified
                raise SignalingError("no_picture", f"{target.name}: {e}; ask them to turn the "
                                     "camera on and hold their ID to it") from e
            still = None  # refused because there is nothing to see is a refusal too
        # A consultation granted while the picture was awaited: it may show the consultation.
        _seen_by_the_court(hearing.seats.get(target.participant_id, target))
        check = await hearing.services.identity.record(
            hearing.hearing_uuid, uuid.UUID(target.participant_id),
            "verified" if verified else "refused", reason=reason,
            # The audit names the device by a hash: whoever reads the audit must not be able
            # to present those ids and inherit the check.
            device=None if target.device is None
            else hashlib.sha256(target.device.encode()).hexdigest()[:32],
            still=still, actor=actor_ref)
        # The seat may have changed while the picture was taken (a reconnect): read it again.
        seat = hearing.seats.get(target.participant_id, target)
        await hearing.update(replace(seat, identity={
            "outcome": check.outcome, "device": target.device, "reason": reason,
            "at": datetime.now(UTC).isoformat(), "still_sha256": check.still_sha256}))


def _seen_by_the_court(seat: Seat) -> None:
    """Nobody outside a private consultation sees its members (signaling/routing.py): no
    picture of one is taken for the record."""
    if seat.consulting is not None:
        raise SignalingError("invalid", f"{seat.name} is in a private consultation, which the "
                             "court neither sees nor records: check them after it",
                             field="participant_id")


def _shows_them(seat: Seat) -> None:
    """A camera switched off sends black pictures, a screen share the screen in the camera's
    place: neither shows the person or their document."""
    if seat.camera_off:
        raise NoPicture("their camera is switched off")
    if seat.screen_sharing:
        raise NoPicture("they share a screen in the camera's place")

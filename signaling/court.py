"""The court's commands in a live hearing: the hearing's state, and admitting, removing,
muting participants, consultations and review permission."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from courtrooms.errors import CourtroomsError, InvalidTransition
from courtrooms.lifecycle import HearingAction
from courtrooms.models import CONTROL_ROLES, Participant, Role
from courtrooms.registry import CourtWord
from signaling.consultation import refused
from signaling.errors import Forbidden, SignalingError
from signaling.identity import IDENTITY_COMMANDS
from signaling.seats import OBSERVER, Seat

if TYPE_CHECKING:
    from signaling.hearing import LiveHearing

AUDITED_ACTIONS = {
    "admit": "participant.admitted",
    "remove": "participant.removed",
    "mute": "participant.muted",
    "unmute": "participant.unmuted",
    "send_out": "witness.sent_out",
    "release": "witness.released",
}
WITNESS_COMMANDS = ("send_out", "release")
HEARING_ACTIONS = ("open", "start", "recess", "resume", "close")
WITNESS = Role.WITNESS.value
REVIEW_COMMANDS = ("permit_review", "revoke_review")
OPEN_SIGNING = "open_signing"


class CourtCommands:
    def __init__(self, hearing: LiveHearing) -> None:
        self.hearing = hearing

    async def command(self, actor: Seat, action: str, target_id: str | None,
                      reason: str | None = None) -> None:
        if actor.role not in CONTROL_ROLES:
            raise Forbidden(f"only the judge or the clerk may {action}")
        if reason is not None and action not in ("warn", "refuse_identity"):
            raise SignalingError("invalid", f"{action} takes no reason; only warn and "
                                 "refuse_identity do", field="reason")
        if action == OPEN_SIGNING:
            if target_id is not None:
                raise SignalingError("invalid", "open_signing applies to the hearing, not a "
                                     "participant", field="participant_id")
            await self._open_signing(actor)
            return
        if action in HEARING_ACTIONS:
            if target_id is not None:
                raise SignalingError(
                    "invalid", f"{action} applies to the hearing, not a participant",
                    field="participant_id")
            await self._transition(actor, HearingAction(action))
            return
        if target_id is None:
            raise SignalingError("invalid", f"{action} needs a participant_id",
                                 field="participant_id")
        target = self.hearing.seats.get(target_id)
        if target is None:
            raise SignalingError("unknown_participant",
                                 f"participant {target_id} has not joined this hearing",
                                 field="participant_id")
        actor_ref = f"participant:{actor.participant_id}"
        consultations = self.hearing.consultations
        if action == "grant_consultation":
            await consultations.grant(target, actor_ref)
        elif action == "end_consultation":
            if target.consulting is None:
                raise refused(f"{target.name} is not in a consultation", "participant_id")
            await consultations.end(target, actor_ref)
        elif action == "deny_consultation":
            if target.consultation is None or target.consultation["state"] != "requested":
                raise refused(f"{target.name} has not asked for a consultation",
                              "participant_id")
            await consultations.end(target, actor_ref)
        elif action == "warn":
            await self._warn(target, reason, actor_ref)
        elif action in IDENTITY_COMMANDS:
            await self.hearing.identity.check(target, action == "verify_identity", reason,
                                              actor_ref)
        elif action in REVIEW_COMMANDS:
            if actor.role != Role.JUDGE.value:
                raise Forbidden("only the judge may permit reviewing the recordings")
            await self.hearing.services.recordings.permit_review(
                self.hearing.hearing_uuid, uuid.UUID(target_id), action == "permit_review",
                actor_ref)
        else:
            await self._seat_command(actor, action, target, actor_ref)

    async def admits_on_arrival(self, participant: Participant) -> bool:
        """Whether someone with no seat here yet goes straight in. The court's word outlives
        the live state: a removal stands; a witness waits outside until called in (not even
        a hearing that admits everyone lets a witness follow the trial before testifying)."""
        role = participant.role.value
        if role in CONTROL_ROLES or role == OBSERVER:
            return True
        word = await self.hearing.registry.court_word(self.hearing.hearing_uuid, participant.id)
        if role == WITNESS:
            return word is CourtWord.ADMITTED
        return bool(self.hearing.info["auto_admit"]) and word not in (
            CourtWord.REMOVED, CourtWord.RELEASED)

    async def _warn(self, target: Seat, reason: str | None, actor_ref: str) -> None:
        """The court warns a participant (for leaving, disrupting, ...): they are told at once,
        the audit keeps it (a walk-out after warnings is what the law looks for)."""
        if target.role in CONTROL_ROLES:
            raise SignalingError("invalid", "the court does not warn itself")
        words = reason or "法庭警告：请遵守法庭纪律。"
        hearing = self.hearing
        await hearing.registry.record(hearing.hearing_uuid, actor_ref, "participant.warned",
                                      participant_id=target.participant_id, reason=words,
                                      wall=time.time())
        connection = hearing.connections.get(target.participant_id)
        if connection is not None:
            connection.send({"type": "alert", "code": "warning", "message": words})
        hearing.tell_court({"type": "warned", "participant_id": target.participant_id,
                            "reason": words})

    async def _seat_command(self, actor: Seat, action: str, target: Seat, actor_ref: str
                            ) -> None:
        hearing = self.hearing
        if action in WITNESS_COMMANDS and target.role != Role.WITNESS.value:
            raise SignalingError("invalid", f"{action} is for witnesses; {target.name} is not one",
                                 field="participant_id")
        if action == "admit":
            if target.admitted:
                return
            target = replace(target, admitted=True)
        elif action == "send_out":
            if not target.admitted:
                return
            target = replace(target, admitted=False, hand_raised=False)
        elif action == "release":
            target = replace(target, admitted=False, hand_raised=False)
        elif action == "remove":
            if target.role in CONTROL_ROLES and actor.role != Role.JUDGE.value:
                raise Forbidden("only the judge may remove the judge or the clerk")
            if target.participant_id == actor.participant_id:
                raise SignalingError("invalid", "you cannot remove yourself; leave instead")
            if target.consultation is not None:
                # Out of the hearing first, then out of the consultation: on the way out the
                # removed one is never before the court (the audit write takes a while).
                await hearing.update(replace(target, admitted=False, hand_raised=False))
                await hearing.consultations.end(hearing.seats[target.participant_id], actor_ref)
                target = hearing.seats[target.participant_id]
            target = replace(target, admitted=False, hand_raised=False)
        elif action in ("mute", "unmute"):
            if target.role == Role.JUDGE.value and actor.role != Role.JUDGE.value:
                raise Forbidden("only the judge may mute or unmute the judge")
            # On the hearing timeline (the audit, with the recordings' wall clock): what the
            # court did not hear is not in the recording or the record; the review shows why.
            target = replace(target, muted_by_court=action == "mute")
        await hearing.update(target)
        await hearing.registry.record(hearing.hearing_uuid, actor_ref, AUDITED_ACTIONS[action],
                                      participant_id=target.participant_id,
                                      wall=time.time())
        if action == "admit":
            await self._admitted(target)
        elif action == "send_out":
            await self._sent_out(target)
        elif action in ("remove", "release"):
            await self._removed(target, released=action == "release")

    async def _admitted(self, seat: Seat) -> None:
        """The court let a waiting participant in."""
        connection = self.hearing.connections.get(seat.participant_id)
        if connection is not None:
            connection.send({"type": "admitted"})
            await self.hearing.stage.welcome(connection)
            await self.hearing.start_media(connection)

    async def _sent_out(self, seat: Seat) -> None:
        """The court sent a witness back outside: no media, no captions, until called again."""
        connection = self.hearing.connections.get(seat.participant_id)
        await self.hearing.media.remove(seat.participant_id)
        if connection is not None:
            connection.send({"type": "sent_out",
                             "reason": "the court asked you to wait outside until called"})

    async def _removed(self, seat: Seat, released: bool = False) -> None:
        """Out of the hearing: removed by the court, or a witness released after testifying
        (close code 4003, for the attendance log and the page's words)."""
        connection = self.hearing.connections.get(seat.participant_id)
        if connection is not None:
            connection.send({"type": "removed", "released": released,
                             "reason": "the court released you: your testimony is done"
                             if released else "the court removed you"})
            await self.hearing.media.remove(seat.participant_id)
            await connection.close(*((4003, "released by the court") if released
                                     else (4001, "removed by the court")))

    async def _open_signing(self, actor: Seat) -> None:
        """At a recess the judge chooses, the parties sign the record so far on their own
        links (courtrooms/signing.py); everyone here is told, and the court sees the version."""
        if actor.role != Role.JUDGE.value:
            raise Forbidden("only the judge opens signing of the record at a recess")
        hearing = self.hearing
        # What is read and signed is the settled record (settling would change it after).
        await hearing.recording.transcript.settle_now()
        try:
            state = await hearing.services.signing.open_at_recess(
                hearing.hearing_uuid, f"participant:{actor.participant_id}")
        except CourtroomsError as e:
            raise SignalingError(e.code, e.message) from e
        hearing.info["signing_open"] = True
        for connection in list(hearing.connections.values()):
            connection.send({"type": "signing", "open": True, "version": state.version,
                             "record_sha256": state.record_sha256})
        # The recording so far, to replay a line by before signing: this recess's files are
        # finished first (the recess's own stop may still be under way), then composited in
        # the background; the signing page offers it once ready.
        await hearing.recording.stop()
        hearing.services.composites.start(hearing.hearing_uuid)

    async def _transition(self, actor: Seat, action: HearingAction) -> None:
        """The same transition as the REST API's: the registry changes the state, the bus
        tells the hearing (here or in whichever process holds it)."""
        hearing = self.hearing
        try:
            changed = await hearing.registry.transition(
                hearing.hearing_uuid, action, f"participant:{actor.participant_id}")
        except InvalidTransition as e:
            raise SignalingError("invalid_transition", e.message) from e
        except CourtroomsError as e:
            raise SignalingError(e.code, e.message) from e
        await hearing.services.bus.publish(hearing.id,
                                           {"kind": "state", "state": changed.state.value})

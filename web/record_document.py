"""What the court's trial record holds beyond its lines (issue 18: the court's document): the
identity checks, attendance and interruptions read from the audit, and the signature block
with the drawn signatures, all in the court's local time (`transcription.export` lays them
out)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from courtrooms.errors import NotEditable
from courtrooms.identity import IdentityChecks
from courtrooms.models import AuditEvent, Hearing, HearingState
from courtrooms.signing import Signing
from transcription.export import CourtDocument, CourtNote, IdentityNote, SignatureEntry

# Departures that are no absence: the same person on another device, the end of the hearing.
NOT_ABSENT = frozenset({"replaced", "hearing_ended"})
HEARING_NOTES = {"hearing.recess": "recess", "hearing.resume": "resume",
                 "hearing.interrupted": "interrupted"}


async def court_document(hearing: Hearing, events: list[AuditEvent], identity: IdentityChecks,
                         signing: Signing, zone: ZoneInfo) -> CourtDocument:
    people = {str(p.id): p for p in hearing.participants}

    def local(event: AuditEvent, key: str = "wall") -> datetime:
        wall = event.data.get(key)
        moment = (datetime.fromtimestamp(wall, UTC) if isinstance(wall, int | float)
                  else event.at)
        return moment.astimezone(zone)

    def who(event: AuditEvent) -> tuple[str, str]:
        person = people.get(str(event.data.get("participant_id")))
        return (person.name, person.role.value) if person is not None else ("", "")

    notes = []
    away: set[object] = set()  # who left and has not come back (a new tab is no return)
    for event in events:
        pid = event.data.get("participant_id")
        if event.action in HEARING_NOTES:
            notes.append(CourtNote(local(event), HEARING_NOTES[event.action]))
        elif event.action == "attendance.left" and event.data.get("cause") not in NOT_ABSENT:
            away.add(pid)
            notes.append(CourtNote(local(event), "left", *who(event),
                                   str(event.data.get("cause", ""))))
        elif event.action == "attendance.joined" and pid in away:
            away.discard(pid)
            notes.append(CourtNote(local(event), "returned", *who(event)))
        elif event.action == "participant.warned":
            notes.append(CourtNote(local(event), "warned", *who(event),
                                   str(event.data.get("reason", ""))))
        elif event.action == "recording.gap_ended":
            notes.append(CourtNote(local(event, "began"), "recording_gap", *who(event),
                                   str(event.data.get("seconds", ""))))
    checks = []
    for check in await identity.of_hearing(hearing.id):
        person = people.get(str(check.participant_id))
        if person is not None:
            checks.append(IdentityNote(check.at.astimezone(zone), person.name,
                                       person.role.value, check.outcome, check.reason))
    signatures = []
    if hearing.state is HearingState.CLOSED:
        try:
            state = await signing.state(hearing.id)
        except NotEditable:
            state = None
        for signer in state.signers if state is not None else ():
            path = signing.signature_path(hearing.id, signer)
            picture = None
            if signer.status == "signed" and path is not None:
                picture = await asyncio.to_thread(path.read_bytes)
            signatures.append(SignatureEntry(
                signer.name, signer.role, signer.status,
                signer.at.astimezone(zone) if signer.at else None, signer.reason, picture))
    return CourtDocument(identity=checks, notes=notes, signatures=signatures)

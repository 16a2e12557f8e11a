"""Signing the trial record under /api/v1 (courtrooms/signing.py): once the hearing is closed
(or at a recess, when the judge opened signing of the record so far), each participant reads
the record with their own link, asks for corrections, and signs the version they read with a
drawn signature or refuses; the clerk decides corrections; the judge and the clerk sign last.
A party whose ID number's last digits the court has on file gives them to sign or refuse, as
at the join (a prison terminal's kiosk is not asked)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from courtrooms.access import Permission
from courtrooms.invitations import JoinGrant
from courtrooms.models import CONTROL_ROLES, Participant
from courtrooms.schemas import CorrectionRequestIn, DecisionIn, RefusalIn, SignatureIn
from courtrooms.signing import SigningState
from signaling.review import COMPOSITE_DIR
from web.endpoints import (
    API_PREFIX,
    CALLER,
    EndpointTable,
    bearer,
    body,
    file_inside,
    path_id,
    respond,
)
from web.errors import ApiError
from web.keys import HUB, RECORDINGS, REGISTRY, VIEWINGS

routes = EndpointTable(API_PREFIX)

class SigningLine(BaseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    participant: str
    role: str
    start: float = Field(description="Seconds on the hearing timeline")
    end: float
    text: str
    revision: int


class SignerOut(BaseModel):
    participant_id: uuid.UUID
    name: str
    role: str
    status: str = Field(description="pending, signed (this version), stale (signed an earlier "
                        "version: sign again) or refused")
    at: datetime | None
    reason: str | None = Field(description="Why they refused")
    signature_sha256: str | None


class CorrectionOut(BaseModel):
    id: str
    participant_id: uuid.UUID
    line_id: uuid.UUID
    text: str
    reason: str | None
    at: datetime
    status: str = Field(description="pending, accepted or refused")
    decided_by: str | None
    decision_reason: str | None


class SigningOut(BaseModel):
    record_sha256: str = Field(description="The version to sign: send it back when signing")
    version: int
    final: bool = Field(description="Everyone signed this version or a refusal is noted")
    final_at: datetime | None
    lines: list[SigningLine]
    signers: list[SignerOut]
    corrections: list[CorrectionOut]
    you: uuid.UUID | None = Field(description="The caller, when a participant")
    recording: bool = Field(default=False, description="The recording to replay lines with "
                            "is ready (GET .../signing/recording)")
    stage: str = Field(description="closed: the closed hearing's record; recess: the record "
                       "so far, at a recess the judge opened signing at (signatures then are "
                       "of that recess only, and never make the record final)")
    id_digits: bool = Field(default=False, description="The caller gives the last 4 "
                            "characters of their ID number to sign or refuse (`id_digits`)")


def _out(state: SigningState, you: Participant | None) -> SigningOut:
    names = {s.participant_id: s for s in state.signers}
    return SigningOut(
        record_sha256=state.record_sha256, version=state.version, final=state.final,
        final_at=state.final_at,
        lines=[SigningLine(
            id=li.id, participant_id=li.participant_id,
            participant=names[li.participant_id].name if li.participant_id in names else "",
            role=names[li.participant_id].role if li.participant_id in names else "",
            start=li.start, end=li.end, text=li.text, revision=li.revision)
            for li in state.lines],
        signers=[SignerOut(participant_id=s.participant_id, name=s.name, role=s.role,
                           status=s.status, at=s.at, reason=s.reason,
                           signature_sha256=s.signature_sha256) for s in state.signers],
        corrections=[CorrectionOut(**vars(r)) for r in state.requests],
        you=you.id if you is not None else None, stage=state.stage)


def _participant(request: web.Request, what: str) -> Participant:
    participant = request[CALLER].participant
    if participant is None:
        raise ApiError(403, "forbidden", f"{what} with their own link; staff do not do it "
                       "for them")
    return participant


async def _grant(request: web.Request) -> JoinGrant | None:
    """What the caller's join token grants, when a participant called with one."""
    token = bearer(request)
    if request[CALLER].participant is None or token is None:
        return None
    return await request.app[REGISTRY].token_grant(token)


async def _check_id_digits(request: web.Request, digits: str | None) -> None:
    """The signer's ID number digits, when the court has them (courtrooms/id_digits.py)."""
    grant = await _grant(request)
    if grant is not None:
        await request.app[REGISTRY].check_id_digits(grant, digits)


@routes.route("GET", "/hearings/{id}/signing", auth="participant", tag="signing",
              staff=Permission.SEE,
              summary="The closed hearing's record to read and sign: its lines, the version's "
                      "sha256, who signed or refused, and the corrections asked for",
              response=SigningOut, errors=(404, 409))
async def get_signing(request: web.Request) -> web.Response:
    hearing_id = path_id(request)
    state = await request.app[HUB].signing.state(hearing_id)
    await request.app[VIEWINGS].audit(hearing_id, request[CALLER].actor, "signing.viewed")
    files, _ = await request.app[RECORDINGS].of_hearing(hearing_id)
    grant = await _grant(request)
    return respond(_out(state, request[CALLER].participant).model_copy(
        update={"recording": any(f.kind == "composite" for f in files),
                "id_digits": grant is not None and grant.needs_id_digits}))


@routes.route("POST", "/hearings/{id}/signing/signature", auth="participant", tag="signing",
              staff=Permission.KEEP_RECORD,
              summary="Sign the version read (its record_sha256) with a drawn signature; the "
                      "judge and clerk sign last", body=SignatureIn, response=SigningOut,
              errors=(403, 404, 409, 422))
async def sign(request: web.Request) -> web.Response:
    given = await body(request, SignatureIn)
    participant = _participant(request, "a participant signs")
    try:
        picture = base64.b64decode(given.signature_png, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(422, "invalid", "signature_png is not base64",
                       field="signature_png") from e
    await request.app[HUB].signing.state(path_id(request))  # open for signing, before a try
    await _check_id_digits(request, given.id_digits)
    state = await request.app[HUB].signing.sign(path_id(request), participant,
                                                given.record_sha256, picture)
    return respond(_out(state, participant))


@routes.route("POST", "/hearings/{id}/signing/refusal", auth="participant", tag="signing",
              staff=Permission.KEEP_RECORD,
              summary="Refuse to sign, with the reason (the judge or clerk may note another "
                      "participant's refusal)", body=RefusalIn, response=SigningOut,
              errors=(403, 404, 409, 422))
async def refuse(request: web.Request) -> web.Response:
    caller = request[CALLER]
    given = await body(request, RefusalIn)
    you = caller.participant
    whose = given.participant_id or (you.id if you is not None else None)
    if whose is None:
        raise ApiError(422, "invalid", "name the participant whose refusal is noted",
                       field="participant_id")
    if you is not None and whose != you.id and you.role not in CONTROL_ROLES:
        raise ApiError(403, "forbidden", "only the judge or the clerk note another "
                       "participant's refusal")
    if you is not None and whose == you.id:
        await request.app[HUB].signing.state(path_id(request))
        await _check_id_digits(request, given.id_digits)
    state = await request.app[HUB].signing.refuse(path_id(request), whose, given.reason,
                                                  caller.actor)
    return respond(_out(state, you))


@routes.route("POST", "/hearings/{id}/signing/corrections", auth="participant", tag="signing",
              staff=Permission.KEEP_RECORD,
              summary="Ask for a line to be corrected (the clerk accepts or refuses)",
              body=CorrectionRequestIn, response=SigningOut, errors=(403, 404, 409, 422))
async def request_correction(request: web.Request) -> web.Response:
    given = await body(request, CorrectionRequestIn)
    participant = _participant(request, "a participant asks for corrections")
    state = await request.app[HUB].signing.request_correction(
        path_id(request), participant, given.line_id, given.text, given.reason)
    return respond(_out(state, participant))


@routes.route("POST", "/hearings/{id}/signing/corrections/{request_id}", auth="participant",
              staff=Permission.KEEP_RECORD,
              roles=CONTROL_ROLES, tag="signing",
              summary="The clerk or judge accepts a correction (the line is corrected) or "
                      "refuses it with a reason", body=DecisionIn, response=SigningOut,
              errors=(403, 404, 409, 422))
async def decide(request: web.Request) -> web.Response:
    given = await body(request, DecisionIn)
    caller = request[CALLER]
    state = await request.app[HUB].signing.decide(
        path_id(request), request.match_info["request_id"], given.accept, given.reason,
        caller.actor)
    return respond(_out(state, caller.participant))


@routes.route("GET", "/hearings/{id}/signing/{participant_id}/signature", auth="participant",
              staff=Permission.SEE,
              tag="signing", summary="A participant's signature (PNG) as signed",
              errors=(404, 409))
async def signature(request: web.Request) -> web.StreamResponse:
    hearing_id, whose = path_id(request), path_id(request, "participant_id")
    signing = request.app[HUB].signing
    state = await signing.state(hearing_id)
    signer = next((s for s in state.signers if s.participant_id == whose), None)
    path = None if signer is None else signing.signature_path(hearing_id, signer)
    if path is None:
        raise ApiError(404, "not_found", "no signature of that participant",
                       field="participant_id")
    path = file_inside([signing.data_dir / "signatures"], path,
                       "the signature is not on this server")
    return web.FileResponse(path, headers={
        "Content-Type": "image/png", "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff"})


@routes.route("GET", "/hearings/{id}/signing/recording", auth="participant", tag="signing",
              staff=Permission.SEE,
              summary="The hearing's composite recording, to replay a line before signing (HTTP "
                      "range requests supported; 0 s is the timeline's 0 s)", errors=(404, 409))
async def signing_recording(request: web.Request) -> web.StreamResponse:
    hearing_id = path_id(request)
    await request.app[HUB].signing.state(hearing_id)  # closed, and the caller signs it
    recordings = request.app[RECORDINGS]
    files, _ = await recordings.of_hearing(hearing_id)
    composite = next((f for f in files if f.kind == "composite"), None)
    if composite is None:
        raise ApiError(404, "not_found", "the hearing's recording is still being prepared; "
                       "try again in a few minutes")
    path = file_inside([recordings.data_dir / COMPOSITE_DIR], recordings.path_of(composite),
                       "the recording is not on this server")
    await request.app[VIEWINGS].audit(hearing_id, request[CALLER].actor, "recording.viewed",
                                      recording_id=str(composite.id))
    return web.FileResponse(path, headers={
        "Content-Type": composite.media_type, "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff"})

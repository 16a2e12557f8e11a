"""Signing the trial record (《人民法院在线诉讼规则》 arts. 33–34; 《关于人民法院庭审录音录像的
若干规定》 arts. 6–7): once the hearing is closed, each party reads the record on their own
link, may ask for corrections (the clerk accepts or refuses them with a reason; both are kept),
and signs the exact version they read (its sha256) with a signature drawn on the page, or
refuses to sign, which is noted as such. The judge and the clerk sign last. The record is final
when every participant signed the current version or a refusal is noted.

At a recess the judge chooses, the judge opens signing of the record so far
(`record.signing_opened`): the same links sign that version, in the same order, until the
hearing resumes. What is signed or refused then is of that recess only (its events say
`stage: recess`); the record is final only once the closed hearing's record is signed.

Kept in the audit chain (ordered, dated, tamper-evident) with the signature pictures as files
whose sha256 the chain holds (`verify` re-hashes them for `tingshen verify-audit`).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.files import write_synced
from courtrooms import audit
from courtrooms.audit import Finding
from courtrooms.database import Database
from courtrooms.errors import AccessDenied, InvalidInput, NotEditable, NotFound
from courtrooms.models import (
    CONTROL_ROLES,
    AuditEvent,
    Hearing,
    HearingState,
    Participant,
    Role,
    TrialRecordLine,
)
from courtrooms.transcripts import Transcripts, record_lines, record_sha256

SIGNED = "record.signed"
REFUSED = "record.signing_refused"
REQUESTED = "record.correction_requested"
DECIDED = "record.correction_decided"
FINAL = "record.final"
OPENED = "record.signing_opened"
ACTIONS = (SIGNED, REFUSED, REQUESTED, DECIDED, FINAL, OPENED)
# Where the hearing's recesses begin: signing opened before the latest of them is over.
RECESS_BEGINS = ("hearing.recess", "hearing.interrupted")
CLOSED_STAGE, RECESS_STAGE = "closed", "recess"
MAX_SIGNATURE_BYTES = 256 * 1024
MAX_SIGNATURE_PX = 2000
# A signature is ink: a picture with almost nothing drawn is no signature.
MIN_INK_PIXELS = 40


class RecordChanged(NotEditable):
    """The record is not the version the signer read (a correction came in between)."""

    code = "record_changed"


@dataclass
class Signer:
    participant_id: uuid.UUID
    name: str
    role: str
    status: str = "pending"  # pending | signed | stale (signed an earlier version) | refused
    at: datetime | None = None
    reason: str | None = None
    signature_sha256: str | None = None
    record_sha256: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("signed", "refused")


@dataclass
class CorrectionRequest:
    id: str
    participant_id: uuid.UUID
    line_id: uuid.UUID
    text: str
    reason: str | None
    at: datetime
    status: str = "pending"  # pending | accepted | refused
    decided_by: str | None = None
    decision_reason: str | None = None


@dataclass
class SigningState:
    hearing_id: uuid.UUID
    record_sha256: str
    version: int
    lines: list[TrialRecordLine]
    signers: list[Signer]
    requests: list[CorrectionRequest] = field(default_factory=list)
    final_at: datetime | None = None
    # closed: the closed hearing's record; recess: the record so far, at a recess the judge
    # opened signing at.
    stage: str = CLOSED_STAGE

    @property
    def final(self) -> bool:
        return self.final_at is not None

    def signer(self, participant_id: uuid.UUID) -> Signer:
        for s in self.signers:
            if s.participant_id == participant_id:
                return s
        raise AccessDenied("only the hearing's participants sign its record (observers do not)")

    @property
    def parties_done(self) -> bool:
        """Everyone but the judge and the clerk has signed this version or refused."""
        return all(s.done for s in self.signers if s.role not in _COURT)

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.signers)


_COURT = frozenset(r.value for r in CONTROL_ROLES)


class Signing:
    """The signing of closed hearings' trial records."""

    def __init__(self, db: Database, clock: Callable[[], datetime], data_dir: Path,
                 transcripts: Transcripts) -> None:
        self.db = db
        self.clock = clock
        self.data_dir = data_dir
        self.transcripts = transcripts

    async def state(self, hearing_id: uuid.UUID) -> SigningState:
        async with self.db.read() as session:
            return await _state(session, hearing_id)

    async def sign(self, hearing_id: uuid.UUID, participant: Participant, read_sha256: str,
                   picture: bytes) -> SigningState:
        """`participant` signs the version they read (`read_sha256`) with their drawn
        signature (PNG). Refused when the record changed since, when they already signed
        this version, and for the judge and clerk before every party is done."""
        png = await asyncio.to_thread(_checked_signature, picture)
        digest = hashlib.sha256(png).hexdigest()
        relative = f"signatures/{hearing_id}/{digest}.png"
        await asyncio.to_thread(write_synced, self.data_dir / relative, png)
        async with self.db.write() as session:
            state = await _open_state(session, hearing_id)
            signer = state.signer(participant.id)
            if read_sha256 != state.record_sha256:
                raise RecordChanged("the record changed since you read it (a correction was "
                                    "made): read it again and sign the version now shown",
                                    field="record_sha256", current=state.record_sha256)
            if signer.status == "signed":
                raise NotEditable("you have already signed this version of the record")
            if signer.role in _COURT and not state.parties_done:
                raise NotEditable("the judge and the clerk sign last, once every party has "
                                  "signed or refused")
            await audit.append(session, actor=f"participant:{participant.id}", action=SIGNED,
                               at=self.clock(), hearing_id=hearing_id, data={
                                   "participant_id": str(participant.id),
                                   "record_sha256": state.record_sha256,
                                   "version": state.version, "signature_sha256": digest,
                                   "signature": relative, **_stage(state)})
            return await self._finalize(session, hearing_id)

    async def refuse(self, hearing_id: uuid.UUID, participant_id: uuid.UUID, reason: str,
                     actor: str) -> SigningState:
        """A refusal to sign, by the participant or noted by the court for them."""
        if not reason.strip():
            raise InvalidInput("say why the record is not signed", field="reason")
        async with self.db.write() as session:
            state = await _open_state(session, hearing_id)
            signer = state.signer(participant_id)
            if signer.status == "signed":
                raise NotEditable(f"{signer.name} has signed this version of the record")
            await audit.append(session, actor=actor, action=REFUSED, at=self.clock(),
                               hearing_id=hearing_id, data={
                                   "participant_id": str(participant_id), "reason": reason,
                                   "record_sha256": state.record_sha256, **_stage(state)})
            return await self._finalize(session, hearing_id)

    async def open_at_recess(self, hearing_id: uuid.UUID, actor: str) -> SigningState:
        """The judge opens signing of the record so far, at a recess. Opened already at this
        recess: the state as it is (nothing is written twice)."""
        async with self.db.write() as session:
            hearing = await session.get(Hearing, hearing_id)
            if hearing is None:
                raise NotFound("Hearing", hearing_id)
            if hearing.state is not HearingState.RECESS:
                raise NotEditable("signing of the record so far is opened at a recess",
                                  state=hearing.state.value)
            try:
                return await _state(session, hearing_id)
            except NotEditable:
                pass  # not open yet at this recess
            version, lines = await record_lines(session, hearing_id)
            await audit.append(session, actor=actor, action=OPENED, at=self.clock(),
                               hearing_id=hearing_id, data={
                                   "record_sha256": record_sha256(lines), "version": version})
            return await _state(session, hearing_id)

    async def request_correction(self, hearing_id: uuid.UUID, participant: Participant,
                                 line_id: uuid.UUID, text: str, reason: str | None
                                 ) -> SigningState:
        if not text.strip():
            raise InvalidInput("a corrected line cannot be empty", field="text")
        async with self.db.write() as session:
            state = await _open_state(session, hearing_id)
            state.signer(participant.id)
            if not any(line.id == line_id for line in state.lines):
                raise NotFound("Trial record line", line_id)
            await audit.append(session, actor=f"participant:{participant.id}", action=REQUESTED,
                               at=self.clock(), hearing_id=hearing_id, data={
                                   "request_id": str(uuid.uuid4()),
                                   "participant_id": str(participant.id),
                                   "line_id": str(line_id), "text": text, "reason": reason})
            return await _state(session, hearing_id)

    async def decide(self, hearing_id: uuid.UUID, request_id: str, accept: bool,
                     reason: str | None, actor: str) -> SigningState:
        """The clerk (or judge) accepts a requested correction, which corrects the line (a new
        revision; signatures of the earlier version no longer count), or refuses it with a
        reason. Both are kept."""
        if not accept and not (reason or "").strip():
            raise InvalidInput("say why the correction is refused", field="reason")
        async with self.db.read() as session:
            state = await _open_state(session, hearing_id)
        request = next((r for r in state.requests if r.id == request_id), None)
        if request is None:
            raise NotFound("Correction request", request_id)
        if request.status != "pending":
            raise NotEditable(f"the request was already {request.status}")
        if accept and not any(line.id == request.line_id for line in state.lines):
            raise NotEditable("the line was edited since the correction was asked for (the "
                              "record has a newer version): ask again on the line as it reads "
                              "now")
        if accept:
            await self.transcripts.correct(hearing_id, request.line_id, request.text, actor)
        async with self.db.write() as session:
            await audit.append(session, actor=actor, action=DECIDED, at=self.clock(),
                               hearing_id=hearing_id, data={
                                   "request_id": request_id, "accepted": accept,
                                   "reason": reason})
            return await _state(session, hearing_id)

    def signature_path(self, hearing_id: uuid.UUID, signer: Signer) -> Path | None:
        if signer.signature_sha256 is None:
            return None
        return self.data_dir / "signatures" / str(hearing_id) / f"{signer.signature_sha256}.png"

    async def _finalize(self, session: AsyncSession, hearing_id: uuid.UUID) -> SigningState:
        state = await _state(session, hearing_id)
        if state.stage == CLOSED_STAGE and state.complete and not state.final:
            event = await audit.append(
                session, actor="system", action=FINAL, at=self.clock(), hearing_id=hearing_id,
                data={"record_sha256": state.record_sha256, "version": state.version,
                      "signed": [str(s.participant_id) for s in state.signers
                                 if s.status == "signed"],
                      "refused": [str(s.participant_id) for s in state.signers
                                  if s.status == "refused"]})
            state.final_at = event.at
        return state

    async def verify(self) -> list[Finding]:
        """Every signature picture the chain names, against the hash it holds."""
        async with self.db.read() as session:
            return await audit.verify_files(session, self.data_dir, SIGNED, "signature",
                                            "signature_sha256", "the signature")


async def _open_state(session: AsyncSession, hearing_id: uuid.UUID) -> SigningState:
    """The state of a record open for signing: the hearing closed, the record not final."""
    state = await _state(session, hearing_id)
    if state.final:
        raise NotEditable("the record is final: everyone has signed or refused")
    return state


def _stage(state: SigningState) -> dict[str, str]:
    """What a signature or refusal event says of its stage (nothing: the closed record's)."""
    return {} if state.stage == CLOSED_STAGE else {"stage": state.stage}


async def _recess_opened_at(session: AsyncSession, hearing_id: uuid.UUID) -> int | None:
    """The audit seq of signing opened at the current recess, if the judge opened it."""
    recess_began = await session.scalar(select(func.max(AuditEvent.seq)).where(
        AuditEvent.hearing_id == hearing_id, AuditEvent.action.in_(RECESS_BEGINS)))
    opened = await session.scalar(select(func.max(AuditEvent.seq)).where(
        AuditEvent.hearing_id == hearing_id, AuditEvent.action == OPENED))
    if opened is None or (recess_began is not None and opened < recess_began):
        return None
    return int(opened)


async def _state(session: AsyncSession, hearing_id: uuid.UUID) -> SigningState:
    hearing = await session.get(Hearing, hearing_id)
    if hearing is None:
        raise NotFound("Hearing", hearing_id)
    opened_at = None
    if hearing.state is HearingState.RECESS:
        opened_at = await _recess_opened_at(session, hearing_id)
    if hearing.state is not HearingState.CLOSED and opened_at is None:
        raise NotEditable("the record is signed once the hearing is closed, or at a recess "
                          "when the judge opens signing of the record so far",
                          state=hearing.state.value)
    version, lines = await record_lines(session, hearing_id)
    current = record_sha256(lines)
    everyone = await session.scalars(select(Participant).where(
        Participant.hearing_id == hearing_id).order_by(Participant.created_at))
    # The parties first, the judge and the clerk last (they sign last).
    people = sorted((p for p in everyone if p.role is not Role.OBSERVER),
                    key=lambda p: p.role.value in _COURT)
    state = SigningState(hearing_id, current, version, lines,
                         [Signer(p.id, p.name, p.role.value) for p in people],
                         stage=CLOSED_STAGE if opened_at is None else RECESS_STAGE)
    by_id = {s.participant_id: s for s in state.signers}
    requests: dict[str, CorrectionRequest] = {}
    events = await session.scalars(select(AuditEvent).where(
        AuditEvent.hearing_id == hearing_id, AuditEvent.action.in_(ACTIONS))
        .order_by(AuditEvent.seq))
    for event in events:
        # Signatures and refusals count in their own stage: the closed record's, or this
        # recess's (since the judge opened it); corrections asked for stay asked for.
        if event.action in (SIGNED, REFUSED) and (
                event.data.get("stage", CLOSED_STAGE) != state.stage
                or (opened_at is not None and event.seq < opened_at)):
            continue
        _apply(state, by_id, requests, event)
    state.requests = list(requests.values())
    return state


def _apply(state: SigningState, by_id: dict[uuid.UUID, Signer],
           requests: dict[str, CorrectionRequest], event: AuditEvent) -> None:
    data: dict[str, Any] = event.data
    if event.action == OPENED:
        return
    if event.action == FINAL:
        if data.get("record_sha256") == state.record_sha256:
            state.final_at = event.at
        return
    if event.action == REQUESTED:
        requests[data["request_id"]] = CorrectionRequest(
            data["request_id"], uuid.UUID(data["participant_id"]), uuid.UUID(data["line_id"]),
            data["text"], data.get("reason"), event.at)
        return
    if event.action == DECIDED:
        request = requests.get(data["request_id"])
        if request is not None:
            request.status = "accepted" if data["accepted"] else "refused"
            request.decided_by, request.decision_reason = event.actor, data.get("reason")
        return
    signer = by_id.get(uuid.UUID(data["participant_id"]))
    if signer is None:
        return
    signer.at = event.at
    if event.action == SIGNED:
        current = data["record_sha256"] == state.record_sha256
        signer.status = "signed" if current else "stale"
        signer.signature_sha256, signer.record_sha256 = data["signature_sha256"], \
            data["record_sha256"]
        signer.reason = None
    else:
        signer.status, signer.reason = "refused", data.get("reason")


def _checked_signature(data: bytes) -> bytes:
    """The drawn signature as a PNG, checked: a picture, not too large, with ink on it."""
    if len(data) > MAX_SIGNATURE_BYTES:
        raise InvalidInput("the signature picture is too large", field="signature")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.format != "PNG":
                raise InvalidInput("a signature is a PNG picture", field="signature")
            if max(picture.size) > MAX_SIGNATURE_PX:
                raise InvalidInput("the signature picture is too large", field="signature")
            picture.load()
            alpha = picture.convert("LA")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidInput("the signature is not a readable PNG picture",
                           field="signature") from e
    # Ink: opaque, darker pixels (the page draws dark strokes on transparency or white).
    pixels = np.asarray(alpha)
    ink = int(((pixels[..., 1] > 128) & (pixels[..., 0] < 160)).sum())
    if ink < MIN_INK_PIXELS:
        raise InvalidInput("the signature is empty: draw it in the box", field="signature")
    return data

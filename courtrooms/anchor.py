"""The audit chain anchored outside the database: an Ed25519 key signs every seal and
checkpoints of the chain's head, and the checkpoints are appended to a file of their own.

Whoever can write the database can rewrite an event and recompute every later hash, or delete
the newest events: the chain alone still checks out. They cannot sign without the key, which
is kept outside the database, nor reach the checkpoint file (or the server it is sent to)
with the same access. A chain that no longer holds a checkpointed head (seq and hash) was
cut or rewritten; a seal whose signature fails was forged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms.audit import Finding
from courtrooms.database import Database
from courtrooms.errors import SigningKeyError
from courtrooms.models import AuditEvent

SIGNATURE = "signature"
CHECKPOINT = "checkpoint"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


class Verifier:
    """The public half: checks signatures (verify-audit needs no more)."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self.public = public
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]
        self.public_hex = raw.hex()

    def check(self, payload: Any, signature: Any) -> str | None:
        """None when `signature` (as `Signer.sign` made it) signs `payload`; else why not."""
        if not isinstance(signature, dict) or not isinstance(signature.get("value"), str):
            return "it is not signed"
        if signature.get("key_id") != self.key_id:
            return f"it is signed by another key ({signature.get('key_id')!r})"
        try:
            self.public.verify(bytes.fromhex(signature["value"]), canonical(payload))
        except (InvalidSignature, ValueError):
            return "its signature does not match"
        return None


class Signer(Verifier):
    def __init__(self, private: Ed25519PrivateKey) -> None:
        super().__init__(private.public_key())
        self.private = private

    def sign(self, payload: Any) -> dict[str, str]:
        return {"key_id": self.key_id, "value": self.private.sign(canonical(payload)).hex()}

    def derive(self, purpose: str) -> bytes:
        """A secret for `purpose` (say, signing links) that every process with this key
        shares, and that is never the key itself."""
        raw = self.private.private_bytes(serialization.Encoding.Raw,
                                         serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
        return hmac.new(raw, purpose.encode(), hashlib.sha256).digest()


def public_key_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".pub")


def load_or_create_key(path: Path) -> Signer:
    """The signing key at `path`, created (mode 0600, its public half beside it in `.pub`)
    when there is none. Blocking."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create_key(path)
    except OSError as e:
        raise SigningKeyError(f"cannot read the signing key {path}: {e.strerror}") from e
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except ValueError as e:
        raise SigningKeyError(f"{path} is not a PEM private key") from e
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return Signer(private)


def _create_key(path: Path) -> Signer:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        # Linked into place whole: workers starting at once keep one key (the others read
        # it), and none ever reads half a file.
        os.link(partial, path)
    except FileExistsError:
        return load_or_create_key(path)
    except OSError as e:
        raise SigningKeyError(f"cannot create the signing key {path}: {e.strerror}") from e
    finally:
        partial.unlink(missing_ok=True)
    public_key_path(path).write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return Signer(private)


def load_verifier(path: Path) -> Verifier:
    """The key to check signatures with: the signing key, or its public half alone (`.pub`,
    or a PEM public key at `path`) where the private key is not kept. Blocking."""
    for candidate in (path, public_key_path(path)):
        try:
            data = candidate.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise SigningKeyError(f"cannot read {candidate}: {e.strerror}") from e
        if b"PRIVATE KEY" in data:
            return load_or_create_key(candidate)
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError as e:
            raise SigningKeyError(f"{candidate} is not a PEM key") from e
        if not isinstance(public, Ed25519PublicKey):
            raise SigningKeyError(f"{candidate} is not an Ed25519 key")
        return Verifier(public)
    raise SigningKeyError(f"no signing key at {path} (nor its public half)")


# -- seals ----------------------------------------------------------------------------------


def seal_payload(action: str, hearing_id: uuid.UUID | None, at: datetime,
                 data: dict[str, Any]) -> dict[str, Any]:
    """What a seal's signature covers: the seal, its time and hearing, and all of its data."""
    return {
        "action": action,
        "hearing_id": None if hearing_id is None else str(hearing_id),
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "data": {k: v for k, v in data.items() if k != SIGNATURE},
    }


def signed(signer: Signer | None, action: str, hearing_id: uuid.UUID, at: datetime,
           data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the signer's signature of the seal (unchanged without a signer)."""
    if signer is None:
        return data
    # The event stores what JSON gives back; sign exactly that.
    data = json.loads(json.dumps(data, default=str))
    return {**data, SIGNATURE: signer.sign(seal_payload(action, hearing_id, at, data))}


# -- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at a moment, signed."""

    seq: int
    hash: str
    at: datetime
    signature: dict[str, str]

    def payload(self) -> dict[str, Any]:
        return {"kind": CHECKPOINT, "seq": self.seq, "hash": self.hash,
                "at": self.at.astimezone(UTC).isoformat(timespec="microseconds")}

    def to_json(self) -> dict[str, Any]:
        return {**self.payload(), SIGNATURE: self.signature}

    @staticmethod
    def make(signer: Signer, seq: int, hash_: str, at: datetime) -> Checkpoint:
        unsigned = Checkpoint(seq, hash_, at, {})
        return Checkpoint(seq, hash_, at, signer.sign(unsigned.payload()))


class CheckpointLog:
    """An append-only file of checkpoints, one JSON object a line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, checkpoint: Checkpoint) -> None:
        """Blocking. One write with O_APPEND, so that processes sharing the file never
        interleave; fsynced before it counts."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(checkpoint.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> tuple[list[dict[str, Any]], list[int]]:
        """The checkpoints as written, and the numbers of lines that are not checkpoints.
        Blocking."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return [], []
        found: list[dict[str, Any]] = []
        bad: list[int] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                bad.append(number)
                continue
            if (isinstance(value, dict) and isinstance(value.get("seq"), int)
                    and isinstance(value.get("hash"), str) and isinstance(value.get("at"), str)):
                found.append(value)
            else:
                bad.append(number)
        return found, bad

    def last(self) -> dict[str, Any] | None:
        found, _ = self.read()
        return max(found, key=lambda c: c["seq"], default=None)


async def head(db: Database) -> AuditEvent | None:
    async with db.read() as session:
        return (await session.execute(
            select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)
        )).scalar_one_or_none()


# -- verification ---------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


async def verify_checkpoints(
    session: AsyncSession, verifier: Verifier, checkpoints: Sequence[dict[str, Any]]
) -> list[Finding]:
    """Every checkpoint is signed and its head is still in the chain, unchanged."""
    problems: list[Finding] = []
    latest_seq = await session.scalar(select(AuditEvent.seq).order_by(
        AuditEvent.seq.desc()).limit(1)) or 0
    wanted = sorted({int(c["seq"]) for c in checkpoints})
    stored: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        rows = await session.execute(select(AuditEvent.seq, AuditEvent.hash).where(
            AuditEvent.seq.in_(wanted[start:start + 500])))
        stored.update({seq: hash_ for seq, hash_ in rows.all()})
    reported: set[int] = set()
    for c in sorted(checkpoints, key=lambda c: int(c["seq"])):
        at = _parse_time(c.get("at"))
        payload = {k: v for k, v in c.items() if k != SIGNATURE}
        why = verifier.check(payload, c.get(SIGNATURE))
        if why is not None:
            problems.append(Finding(f"the checkpoint of event {c['seq']}: {why}", at=at))
            continue
        seq = int(c["seq"])
        if seq in reported:
            continue
        if seq > latest_seq:
            reported.add(seq)
            problems.append(Finding(
                f"events after {latest_seq} were deleted: the chain ends at event "
                f"{latest_seq} but event {seq} was checkpointed", at=at))
        elif seq not in stored:
            reported.add(seq)
            problems.append(Finding(f"checkpointed event {seq} is missing", at=at))
        elif stored[seq] != c["hash"]:
            reported.add(seq)
            problems.append(Finding(
                f"the chain was rewritten: event {seq} no longer has the hash checkpointed "
                "for it", at=at))
    return problems

"""The audit chain: append-only events, each hash covering the previous event's hash."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms.models import AuditEvent

GENESIS_HASH = "0" * 64
VERIFY_BATCH = 1000


def event_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    hearing_id: uuid.UUID | None,
    data: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "hearing_id": str(hearing_id) if hearing_id else None,
        "data": data,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def append(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    at: datetime,
    hearing_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event in the caller's write transaction (which serializes appends)."""
    last = (
        await session.execute(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    ).scalar_one_or_none()
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS_HASH if last is None else last.hash
    # Round-trip through JSON so that what is hashed is exactly what the database returns.
    payload = json.loads(json.dumps(data or {}, default=str))
    at = at.astimezone(UTC)
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        hearing_id=hearing_id,
        data=payload,
        prev_hash=prev,
        hash=event_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            hearing_id=hearing_id,
            data=payload,
            prev_hash=prev,
        ),
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True)
class Finding:
    """One problem verification found: what, in which hearing, and when what it names
    happened (shown to people in the court's time)."""

    message: str
    hearing_id: uuid.UUID | None = None
    at: datetime | None = None


async def latest_by(
    session: AsyncSession, actions: tuple[str, ...], key: str | None = None
) -> dict[Any, AuditEvent]:
    """The newest event of `actions` per hearing, or per `data[key]` when a key is named."""
    events = (await session.scalars(
        select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.seq)
    )).all()
    latest: dict[Any, AuditEvent] = {}
    for event in events:
        ident = event.hearing_id if key is None else event.data.get(key)
        if ident is not None:
            latest[ident] = event
    return latest


@dataclass(frozen=True)
class ChainReport:
    """Outcome of `verify`: `broken_seq` names the first event that does not check out."""

    events: int
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


async def verify(session: AsyncSession) -> ChainReport:
    prev_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    while True:
        rows = (
            await session.execute(
                select(AuditEvent)
                .where(AuditEvent.seq >= expected_seq)
                .order_by(AuditEvent.seq)
                .limit(VERIFY_BATCH)
            )
        ).scalars().all()
        if not rows:
            return ChainReport(events=count)
        for event in rows:
            if event.seq != expected_seq:
                return ChainReport(count, expected_seq, f"event {expected_seq} is missing")
            if event.prev_hash != prev_hash:
                return ChainReport(
                    count, event.seq, f"event {event.seq} does not follow event {event.seq - 1}"
                )
            recomputed = event_hash(
                seq=event.seq,
                at=event.at,
                actor=event.actor,
                action=event.action,
                hearing_id=event.hearing_id,
                data=event.data,
                prev_hash=event.prev_hash,
            )
            if recomputed != event.hash:
                return ChainReport(
                    count,
                    event.seq,
                    f"event {event.seq} ({event.action}) was altered: its hash does not match",
                )
            prev_hash = event.hash
            expected_seq += 1
            count += 1


async def verify_files(session: AsyncSession, data_dir: Path, action: str, path_key: str,
                       sha256_key: str, what: str) -> list[Finding]:
    """Every file the chain's `action` events name (`data[path_key]`, under `data_dir`)
    against the hash they hold (`data[sha256_key]`): missing or altered is a finding."""
    events = (await session.scalars(select(AuditEvent).where(
        AuditEvent.action == action).order_by(AuditEvent.seq))).all()
    found = []
    for event in events:
        relative, digest = event.data.get(path_key), event.data.get(sha256_key)
        if not isinstance(relative, str) or not isinstance(digest, str):
            continue
        where = f"hearing {event.hearing_id}: {what} {relative} (audit event {event.seq})"
        try:
            data = await asyncio.to_thread((data_dir / relative).read_bytes)
        except OSError:
            found.append(Finding(f"{where} is missing", event.hearing_id, event.at))
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            found.append(Finding(f"{where} was altered (sha256 differs from the record)",
                                 event.hearing_id, event.at))
    return found

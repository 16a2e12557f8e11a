"""What every part of the registry shares: the database, the clock, and the audit trail.

Each write is one transaction that also appends its audit event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms import audit
from courtrooms.database import Database
from courtrooms.errors import NotFound
from courtrooms.models import Base, Participant, utcnow
from courtrooms.schemas import HearingQuery, PageQuery

M = TypeVar("M", bound=Base)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _changes(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in data.items()}


class Store:
    """The database and clock of the registry, and the helpers each of its parts uses."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def _get(self, session: AsyncSession, model: type[M], ident: uuid.UUID) -> M:
        obj = await session.get(model, ident)
        if obj is None:
            raise NotFound(model.__name__, ident)
        return obj

    async def _page(
        self, session: AsyncSession, query: Select[Any], page: PageQuery | HearingQuery
    ) -> tuple[list[Any], int]:
        total = (
            await session.execute(select(func.count()).select_from(query.subquery()))
        ).scalar_one()
        items = (await session.execute(query.limit(page.limit).offset(page.offset))).scalars()
        return list(items.all()), total

    async def _audit(
        self,
        session: AsyncSession,
        actor: str,
        action: str,
        hearing_id: uuid.UUID | None = None,
        **data: Any,
    ) -> None:
        seat_id = _participant_of(actor)
        if seat_id is not None:
            # A judge's or clerk's seat acts for its account: the event keeps which account
            # that was then (the seat may pass to another later), for the audit to name.
            seat = await session.get(Participant, seat_id)
            if seat is not None and seat.account_id is not None:
                data = {**data, "actor_account_id": seat.account_id}
        await audit.append(
            session,
            actor=actor,
            action=action,
            at=self.clock(),
            hearing_id=hearing_id,
            data=_changes(data),
        )


def _participant_of(actor: str) -> uuid.UUID | None:
    """The participant an actor names (`participant:<id>`); None for any other actor, and for
    one whose id is not a participant's (an actor is text: a bad one must not fail the act)."""
    kind, _, rest = actor.partition(":")
    if kind != "participant":
        return None
    try:
        return uuid.UUID(rest)
    except ValueError:
        return None

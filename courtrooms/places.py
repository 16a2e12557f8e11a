"""The registry's places: courts, their courtrooms, and the prison terminals."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms.errors import InUse, InvalidInput
from courtrooms.models import Court, Courtroom, Hearing, Participant, PrisonTerminal
from courtrooms.schemas import (
    CourtIn,
    CourtPatch,
    CourtroomIn,
    CourtroomPatch,
    CourtroomQuery,
    PageQuery,
    PrisonTerminalIn,
    PrisonTerminalPatch,
)
from courtrooms.secrets import digest, new_secret
from courtrooms.store import Store


class Places(Store):
    """Courts, courtrooms and prison terminals: created, listed, renamed, deleted when unused."""

    # -- courts --------------------------------------------------------------------------

    async def create_court(self, data: CourtIn, actor: str) -> Court:
        async with self.db.write() as session:
            await self._unique_court_name(session, data.name)
            court = Court(name=data.name, created_at=self.clock())
            session.add(court)
            await session.flush()
            await self._audit(session, actor, "court.created", court_id=court.id, name=court.name)
            return court

    async def _unique_court_name(self, session: AsyncSession, name: str) -> None:
        exists = await session.scalar(select(Court.id).where(Court.name == name))
        if exists is not None:
            raise InvalidInput(f"a court named {name!r} already exists", field="name")

    async def list_courts(self, page: PageQuery) -> tuple[list[Court], int]:
        async with self.db.read() as session:
            return await self._page(session, select(Court).order_by(Court.name), page)

    async def get_court(self, court_id: uuid.UUID) -> Court:
        async with self.db.read() as session:
            return await self._get(session, Court, court_id)

    async def update_court(self, court_id: uuid.UUID, data: CourtPatch, actor: str) -> Court:
        async with self.db.write() as session:
            court = await self._get(session, Court, court_id)
            if data.name is not None and data.name != court.name:
                await self._unique_court_name(session, data.name)
                court.name = data.name
                await self._audit(
                    session, actor, "court.updated", court_id=court.id, name=data.name
                )
            return court

    async def delete_court(self, court_id: uuid.UUID, actor: str) -> None:
        async with self.db.write() as session:
            court = await self._get(session, Court, court_id)
            rooms = await session.scalar(
                select(func.count()).where(Courtroom.court_id == court_id)
            )
            if rooms:
                raise InUse(f"court {court_id} still has {rooms} courtroom(s)")
            await session.delete(court)
            await self._audit(session, actor, "court.deleted", court_id=court_id, name=court.name)

    # -- courtrooms ----------------------------------------------------------------------

    async def _unique_courtroom_name(
        self, session: AsyncSession, court_id: uuid.UUID, name: str
    ) -> None:
        exists = await session.scalar(
            select(Courtroom.id).where(Courtroom.court_id == court_id, Courtroom.name == name)
        )
        if exists is not None:
            raise InvalidInput(f"this court already has a courtroom named {name!r}", field="name")

    async def create_courtroom(self, data: CourtroomIn, actor: str) -> Courtroom:
        async with self.db.write() as session:
            if await session.get(Court, data.court_id) is None:
                raise InvalidInput(f"court {data.court_id} does not exist", field="court_id")
            await self._unique_courtroom_name(session, data.court_id, data.name)
            room = Courtroom(court_id=data.court_id, name=data.name, created_at=self.clock())
            session.add(room)
            await session.flush()
            await self._audit(
                session, actor, "courtroom.created", courtroom_id=room.id,
                court_id=room.court_id, name=room.name,
            )
            return room

    async def list_courtrooms(self, query: CourtroomQuery) -> tuple[list[Courtroom], int]:
        stmt = select(Courtroom).order_by(Courtroom.name, Courtroom.id)
        if query.court_id is not None:
            stmt = stmt.where(Courtroom.court_id == query.court_id)
        async with self.db.read() as session:
            return await self._page(session, stmt, query)

    async def get_courtroom(self, courtroom_id: uuid.UUID) -> Courtroom:
        async with self.db.read() as session:
            return await self._get(session, Courtroom, courtroom_id)

    async def update_courtroom(
        self, courtroom_id: uuid.UUID, data: CourtroomPatch, actor: str
    ) -> Courtroom:
        async with self.db.write() as session:
            room = await self._get(session, Courtroom, courtroom_id)
            if data.name is not None and data.name != room.name:
                await self._unique_courtroom_name(session, room.court_id, data.name)
                room.name = data.name
                await self._audit(
                    session, actor, "courtroom.updated", courtroom_id=room.id, name=data.name
                )
            return room

    async def delete_courtroom(self, courtroom_id: uuid.UUID, actor: str) -> None:
        async with self.db.write() as session:
            room = await self._get(session, Courtroom, courtroom_id)
            used = await session.scalar(
                select(func.count()).where(Hearing.courtroom_id == courtroom_id)
            )
            if used:
                raise InUse(f"courtroom {courtroom_id} is on the record of {used} hearing(s)")
            await session.delete(room)
            await self._audit(
                session, actor, "courtroom.deleted", courtroom_id=courtroom_id, name=room.name
            )

    # -- prison terminals ----------------------------------------------------------------

    async def create_terminal(
        self, data: PrisonTerminalIn, actor: str
    ) -> tuple[PrisonTerminal, str]:
        key = new_secret()
        async with self.db.write() as session:
            terminal = PrisonTerminal(
                name=data.name, prison=data.prison, device_key_hash=digest(key),
                created_at=self.clock(),
            )
            session.add(terminal)
            await session.flush()
            await self._audit(
                session, actor, "terminal.created", terminal_id=terminal.id,
                name=terminal.name, prison=terminal.prison,
            )
            return terminal, key

    async def rotate_terminal_key(
        self, terminal_id: uuid.UUID, actor: str
    ) -> tuple[PrisonTerminal, str]:
        key = new_secret()
        async with self.db.write() as session:
            terminal = await self._get(session, PrisonTerminal, terminal_id)
            terminal.device_key_hash = digest(key)
            await self._audit(session, actor, "terminal.key_rotated", terminal_id=terminal.id)
            return terminal, key

    async def list_terminals(self, page: PageQuery) -> tuple[list[PrisonTerminal], int]:
        stmt = select(PrisonTerminal).order_by(
            PrisonTerminal.prison, PrisonTerminal.name, PrisonTerminal.id
        )
        async with self.db.read() as session:
            return await self._page(session, stmt, page)

    async def get_terminal(self, terminal_id: uuid.UUID) -> PrisonTerminal:
        async with self.db.read() as session:
            return await self._get(session, PrisonTerminal, terminal_id)

    async def update_terminal(
        self, terminal_id: uuid.UUID, data: PrisonTerminalPatch, actor: str
    ) -> PrisonTerminal:
        async with self.db.write() as session:
            terminal = await self._get(session, PrisonTerminal, terminal_id)
            changes = {
                k: v for k, v in data.model_dump(exclude_unset=True).items()
                if v is not None and getattr(terminal, k) != v
            }
            for field, value in changes.items():
                setattr(terminal, field, value)
            if changes:
                await self._audit(
                    session, actor, "terminal.updated", terminal_id=terminal.id, **changes
                )
            return terminal

    async def delete_terminal(self, terminal_id: uuid.UUID, actor: str) -> None:
        async with self.db.write() as session:
            terminal = await self._get(session, PrisonTerminal, terminal_id)
            used = await session.scalar(
                select(func.count()).where(Participant.terminal_id == terminal_id)
            )
            if used:
                raise InUse(f"prison terminal {terminal_id} is on the record of {used} hearing(s)")
            await session.delete(terminal)
            await self._audit(
                session, actor, "terminal.deleted", terminal_id=terminal_id, name=terminal.name
            )

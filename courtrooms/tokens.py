"""Integrations' API tokens: named, scoped, shown once, revocable, their last use noted.

A token is a bearer secret of 256 random bits with a recognisable prefix (so that a secret
scanner or a reader of a leaked file knows what it is); only its SHA-256 is kept, as for join
tokens and sessions (courtrooms/secrets.py). Each request looks the hash up, so a revoked token
is refused at its next request in every process. The token's last use is written at most once
a minute, not on every request. Creating and revoking one is audited; what a token does is
audited as `token:<id>`, named by the token's name when read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms.access import Scope, StaffMember, integration
from courtrooms.errors import InvalidInput, NotEditable, NotFound
from courtrooms.models import ApiToken, Court
from courtrooms.schemas import ApiTokenIn
from courtrooms.secrets import digest, new_secret
from courtrooms.store import Store

PREFIX = "tsk_"
# A token's last use is written at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class NewToken:
    """A token just created, with its secret: to be shown once."""

    token: ApiToken
    secret: str


@dataclass(frozen=True)
class TokenHolder:
    """What a valid API token stands for."""

    token_id: uuid.UUID
    name: str
    member: StaffMember

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}"


def is_api_token(secret: str) -> bool:
    """Whether `secret` is shaped as an API token (join tokens and the admin token are not)."""
    return secret.startswith(PREFIX)


def _holder(row: ApiToken) -> TokenHolder:
    scopes = frozenset(Scope(s) for s in row.scopes)
    return TokenHolder(row.id, row.name, integration(scopes, row.court_id))


class ApiTokens(Store):
    """The court's integrations' API tokens."""

    async def add(self, data: ApiTokenIn, actor: str) -> NewToken:
        secret = PREFIX + new_secret()
        token = ApiToken(name=data.name, secret_hash=digest(secret),
                         scopes=[s.value for s in Scope if s in data.scopes],
                         court_id=data.court_id, created_by=actor, created_at=self.clock())
        async with self.db.write() as session:
            if data.court_id is not None and await session.get(Court, data.court_id) is None:
                raise InvalidInput(f"court {data.court_id} does not exist", field="court_id")
            if await self._live_named(session, data.name) is not None:
                raise InvalidInput(f"an API token named {data.name!r} exists already (revoke "
                                   "it first, or choose another name)", field="name")
            session.add(token)
            await session.flush()
            await self._audit(session, actor, "api_token.created", token_id=token.id,
                              name=token.name, scopes=token.scopes, court_id=token.court_id)
        return NewToken(token, secret)

    async def _live_named(self, session: AsyncSession, name: str) -> ApiToken | None:
        found: ApiToken | None = await session.scalar(
            select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)))
        return found

    async def tokens(self) -> list[ApiToken]:
        """Every token, revoked ones too, oldest first."""
        async with self.db.read() as session:
            return list((await session.scalars(
                select(ApiToken).order_by(ApiToken.created_at, ApiToken.name))).all())

    async def named(self, ident: str) -> ApiToken:
        """The token `ident` names: its id, or the name of one not revoked."""
        async with self.db.read() as session:
            try:
                found = await session.get(ApiToken, uuid.UUID(ident))
            except ValueError:
                found = await self._live_named(session, ident)
        if found is None:
            raise NotFound("API token", ident)
        return found

    async def revoke(self, token_id: uuid.UUID, actor: str) -> ApiToken:
        """Revoke the token: its next request is refused, wherever it comes."""
        async with self.db.write() as session:
            token = await session.get(ApiToken, token_id)
            if token is None:
                raise NotFound("API token", token_id)
            if token.revoked_at is not None:
                raise NotEditable(f"API token {token_id} ({token.name}) is revoked already",
                                  revoked_at=token.revoked_at.isoformat())
            token.revoked_at = self.clock()
            await self._audit(session, actor, "api_token.revoked", token_id=token.id,
                              name=token.name)
        return token

    async def find(self, secret: str) -> TokenHolder | None:
        """The live token behind a bearer secret, its use noted; None when there is none
        (unknown or revoked)."""
        if not is_api_token(secret):
            return None
        key = digest(secret)
        async with self.db.read() as session:
            row = await session.scalar(select(ApiToken).where(ApiToken.secret_hash == key))
        if row is None or row.revoked:
            return None
        now = self.clock()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
            async with self.db.write() as session:
                await session.execute(update(ApiToken).where(ApiToken.id == row.id)
                                      .values(last_used_at=now))
        return _holder(row)

    async def live(self, token_id: uuid.UUID) -> TokenHolder | None:
        """The token a signed link made with it names, if it is not revoked. Opening a link
        is not a use of the token."""
        async with self.db.read() as session:
            row = await session.get(ApiToken, token_id)
        if row is None or row.revoked:
            return None
        return _holder(row)

"""Staff browser sessions, held in the registry: the cookie carries only an unguessable secret.

A session ends at sign-out, after `idle` without a request, or `lifetime` after sign-in,
whichever comes first; every sign-in, refusal and sign-out is audited. A session opened by an
account ends with the account's other sessions when it signs out everywhere, changes its
password or is disabled; a disabled account's session is refused at its next request even if
it was somehow left open.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms.access import ADMIN, StaffMember
from courtrooms.models import StaffAccount, StaffRole, StaffSession
from courtrooms.secrets import digest, new_secret
from courtrooms.store import Store

DEFAULT_IDLE = timedelta(minutes=30)
DEFAULT_LIFETIME = timedelta(hours=12)
# A session's last use is written at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=60)
# How the audit (and a link made in it) names a session: its id's first characters (the id
# is the secret's hash, not the secret; 48 bits tell the sessions of a court apart).
SESSION_REF = 12


@dataclass(frozen=True)
class SignedIn:
    """What a valid session cookie stands for."""

    actor: str
    csrf: str
    secret_hash: str
    expires_at: datetime
    # The account signed in, and what it may do; None (and no roles) for the admin token.
    account_id: uuid.UUID | None = None
    roles: frozenset[StaffRole] = frozenset()
    court_id: uuid.UUID | None = None

    @property
    def member(self) -> StaffMember:
        """Who acts, for courtrooms/access.py (the admin token's session: the administrator)."""
        if self.account_id is None:
            return ADMIN
        return StaffMember(self.account_id, self.roles, self.court_id)


def _signed_in(row: StaffSession, account: StaffAccount | None) -> SignedIn:
    if account is None:
        return SignedIn(row.actor, row.csrf, row.id, row.expires_at)
    return SignedIn(row.actor, row.csrf, row.id, row.expires_at, account.id,
                    account.staff_roles, account.court_id)


async def end_sessions(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> int:
    """End every open session of the account, in `session`'s transaction; how many ended."""
    result = await session.execute(
        update(StaffSession)
        .where(StaffSession.account_id == account_id, StaffSession.ended_at.is_(None))
        .values(ended_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


class StaffSessions(Store):
    idle: timedelta = DEFAULT_IDLE
    lifetime: timedelta = DEFAULT_LIFETIME

    async def open(self, actor: str, address: str,
                   account: StaffAccount | None = None) -> tuple[str, SignedIn]:
        """A new session for `actor` (the account's, when `account` signed in): the cookie's
        secret (shown once) and what it stands for."""
        secret = new_secret()
        now = self.clock()
        row = StaffSession(id=digest(secret), actor=actor, csrf=secrets.token_urlsafe(32),
                           account_id=account.id if account is not None else None,
                           created_at=now, last_seen_at=now, expires_at=now + self.lifetime)
        named: dict[str, Any] = ({"login": account.login, "name": account.name}
                                 if account is not None else {})
        async with self.db.write() as session:
            session.add(row)
            await self._audit(session, actor, "staff.signed_in", address=address,
                              staff_session=row.id[:SESSION_REF], **named)
        return secret, _signed_in(row, account)

    async def refused(self, address: str, reason: str, **data: Any) -> None:
        async with self.db.write() as session:
            await self._audit(session, "anonymous", "staff.sign_in_refused", address=address,
                              reason=reason, **data)

    async def _sessions(self, session: AsyncSession, where: Any
                        ) -> list[tuple[StaffSession, StaffAccount | None]]:
        """Sessions matching `where`, each with the account it was opened by (if any)."""
        rows = await session.execute(
            select(StaffSession, StaffAccount)
            .outerjoin(StaffAccount, StaffAccount.id == StaffSession.account_id)
            .where(where))
        return [(row, account) for row, account in rows]

    async def find(self, secret: str) -> SignedIn | None:
        """The live session behind a cookie's secret, its use noted; None when there is none
        (unknown, signed out, idle too long, past its lifetime, or its account disabled)."""
        key = digest(secret)
        now = self.clock()
        async with self.db.read() as session:
            found = await self._sessions(session, StaffSession.id == key)
        if not found or not self._live(*found[0], now):
            return None
        row, account = found[0]
        if now - row.last_seen_at >= TOUCH_EVERY:
            async with self.db.write() as session:
                await session.execute(update(StaffSession).where(StaffSession.id == key)
                                      .values(last_seen_at=now))
        return _signed_in(row, account)

    async def made_in(self, ref: str) -> SignedIn | None:
        """The live session a link names (`ref`, its id's first characters); None once it has
        ended. Opening a link is not a use of the session: it does not keep it from idling."""
        if len(ref) != SESSION_REF or not all(c in "0123456789abcdef" for c in ref):
            return None
        now = self.clock()
        async with self.db.read() as session:
            found = await self._sessions(
                session, StaffSession.id.startswith(ref, autoescape=True))
        live = [(row, account) for row, account in found if self._live(row, account, now)]
        if len(live) != 1:  # two live sessions alike in 48 bits: neither is meant for sure
            return None
        return _signed_in(*live[0])

    def _live(self, row: StaffSession, account: StaffAccount | None, now: datetime) -> bool:
        return (row.ended_at is None and now < row.expires_at
                and now - row.last_seen_at < self.idle
                and (account is None or not account.disabled))

    async def end(self, signed_in: SignedIn, address: str) -> None:
        async with self.db.write() as session:
            await session.execute(update(StaffSession)
                                  .where(StaffSession.id == signed_in.secret_hash)
                                  .values(ended_at=self.clock()))
            await self._audit(session, signed_in.actor, "staff.signed_out", address=address,
                              staff_session=signed_in.secret_hash[:SESSION_REF])

    async def end_everywhere(self, signed_in: SignedIn, address: str) -> int:
        """End every session of whoever `signed_in` is (its account's; for the admin token,
        every session opened with it), this one included. Returns how many ended."""
        now = self.clock()
        async with self.db.write() as session:
            if signed_in.account_id is not None:
                ended = await end_sessions(session, signed_in.account_id, now)
            else:
                result = await session.execute(
                    update(StaffSession)
                    .where(StaffSession.account_id.is_(None),
                           StaffSession.actor == signed_in.actor,
                           StaffSession.ended_at.is_(None))
                    .values(ended_at=now))
                ended = int(getattr(result, "rowcount", 0) or 0)
            await self._audit(session, signed_in.actor, "staff.signed_out_everywhere",
                              address=address,
                              staff_session=signed_in.secret_hash[:SESSION_REF],
                              sessions_ended=ended)
        return ended

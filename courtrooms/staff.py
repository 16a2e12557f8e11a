"""Staff browser sessions, held in the registry: the cookie carries only an unguessable secret.

A session ends at sign-out, after `idle` without a request, or `lifetime` after sign-in,
whichever comes first; every sign-in, refusal and sign-out is audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from courtrooms.models import StaffSession
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


class StaffSessions(Store):
    idle: timedelta = DEFAULT_IDLE
    lifetime: timedelta = DEFAULT_LIFETIME

    async def open(self, actor: str, address: str) -> tuple[str, SignedIn]:
        """A new session for `actor`: the cookie's secret (shown once) and what it stands for."""
        secret = new_secret()
        now = self.clock()
        row = StaffSession(id=digest(secret), actor=actor, csrf=secrets.token_urlsafe(32),
                           created_at=now, last_seen_at=now, expires_at=now + self.lifetime)
        async with self.db.write() as session:
            session.add(row)
            await self._audit(session, actor, "staff.signed_in", address=address,
                              staff_session=row.id[:SESSION_REF])
        return secret, SignedIn(actor, row.csrf, row.id, row.expires_at)

    async def refused(self, address: str, reason: str) -> None:
        async with self.db.write() as session:
            await self._audit(session, "anonymous", "staff.sign_in_refused", address=address,
                              reason=reason)

    async def find(self, secret: str) -> SignedIn | None:
        """The live session behind a cookie's secret, its use noted; None when there is none
        (unknown, signed out, idle too long or past its lifetime)."""
        key = digest(secret)
        now = self.clock()
        async with self.db.read() as session:
            row = await session.get(StaffSession, key)
        if row is None or not self._live(row, now):
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            async with self.db.write() as session:
                await session.execute(update(StaffSession).where(StaffSession.id == key)
                                      .values(last_seen_at=now))
        return SignedIn(row.actor, row.csrf, key, row.expires_at)

    async def made_in(self, ref: str) -> SignedIn | None:
        """The live session a link names (`ref`, its id's first characters); None once it has
        ended. Opening a link is not a use of the session: it does not keep it from idling."""
        if len(ref) != SESSION_REF or not all(c in "0123456789abcdef" for c in ref):
            return None
        now = self.clock()
        async with self.db.read() as session:
            rows = (await session.scalars(select(StaffSession).where(
                StaffSession.id.startswith(ref, autoescape=True)))).all()
        live = [r for r in rows if self._live(r, now)]
        if len(live) != 1:  # two live sessions alike in 48 bits: neither is meant for sure
            return None
        return SignedIn(live[0].actor, live[0].csrf, live[0].id, live[0].expires_at)

    def _live(self, row: StaffSession, now: datetime) -> bool:
        return (row.ended_at is None and now < row.expires_at
                and now - row.last_seen_at < self.idle)

    async def end(self, signed_in: SignedIn, address: str) -> None:
        async with self.db.write() as session:
            await session.execute(update(StaffSession)
                                  .where(StaffSession.id == signed_in.secret_hash)
                                  .values(ended_at=self.clock()))
            await self._audit(session, signed_in.actor, "staff.signed_out", address=address,
                              staff_session=signed_in.secret_hash[:SESSION_REF])

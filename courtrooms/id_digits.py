"""The last digits of a party's ID number, when the court has them on file: typed on the join
page at each join (《人民法院在线诉讼规则》 art. 7, identity verified again before each online
hearing).

Only a salted scrypt hash is kept. A few wrong tries lock the participant out for a while, so
the 11,000 endings of a resident ID number (three digits, then a digit or X) cannot be tried
through the socket: after `TRIES` wrong ones, one try per `LOCKOUT` until a right one. A join
through a prison terminal (its device key, or the token derived from it) is not asked: the
terminal is in the prison.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from courtrooms.errors import IdDigitsLocked, IdDigitsRequired, IdDigitsWrong
from courtrooms.models import Participant
from courtrooms.store import Store

if TYPE_CHECKING:
    from courtrooms.invitations import JoinGrant

TRIES = 5
LOCKOUT = timedelta(minutes=15)
FAILED = "participant.id_digits_failed"
# scrypt at 16 MiB and about 50 ms a hash: a stolen database gives up no ending at a glance.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32


def _scrypt(digits: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(digits.upper().encode("ascii"), salt=salt, n=n, r=r, p=p,
                          dklen=KEY_BYTES, maxmem=64 * 1024 * 1024)


def hash_id_digits(digits: str) -> str:
    """`scrypt$n$r$p$salt$key`, the salt new for each. Blocking: call it off the event loop."""
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(digits, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def id_digits_match(stored: str, digits: str) -> bool:
    """Whether `digits` (an x as X) are those hashed in `stored`. Blocking, as hashing."""
    scheme, n, r, p, salt, key = stored.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown ID digits hash scheme {scheme!r}")
    if not digits.isascii():
        return False
    given = _scrypt(digits, bytes.fromhex(salt), int(n), int(r), int(p))
    return hmac.compare_digest(given, bytes.fromhex(key))


def _locked(until: datetime) -> IdDigitsLocked:
    return IdDigitsLocked(
        f"too many wrong ID number digits: try again after {until.isoformat()}",
        field="id_digits", locked_until=until.isoformat())


class IdDigitChecks(Store):
    """The check of a participant's ID number digits at the join, with its tries and lockout."""

    async def check_id_digits(self, grant: JoinGrant, digits: str | None) -> None:
        """Refuse the join unless it carries the right digits, when the grant asks for them.

        Each try is counted before it is checked, so that tries sent at once on many
        connections cannot pass the limit while the first are being hashed; a right one
        clears the count and any lockout. Wrong ones are audited."""
        if not grant.needs_id_digits:
            return
        participant = grant.participant
        if digits is None:
            raise IdDigitsRequired(
                "the court has the last digits of your ID number on file: join with them "
                "(id_digits)", field="id_digits")
        async with self.db.write() as session:
            row = await self._get(session, Participant, participant.id)
            now = self.clock()
            stored = row.id_digits_hash
            if stored is None:
                return
            if row.id_digits_locked_until is not None and row.id_digits_locked_until > now:
                raise _locked(row.id_digits_locked_until)
            row.id_digits_failures += 1
            if row.id_digits_failures >= TRIES:
                row.id_digits_locked_until = now + LOCKOUT
        right = await asyncio.to_thread(id_digits_match, stored, digits)
        async with self.db.write() as session:
            row = await self._get(session, Participant, participant.id)
            if right:
                row.id_digits_failures = 0
                row.id_digits_locked_until = None
                return
            failures, until = row.id_digits_failures, row.id_digits_locked_until
            await self._audit(session, f"participant:{participant.id}", FAILED,
                              participant.hearing_id, participant_id=participant.id,
                              failures=failures, locked_until=until)
        if until is not None and until > now:
            raise _locked(until)
        left = TRIES - failures
        raise IdDigitsWrong(
            f"these are not the last digits of your ID number on file; {left} "
            f"{'try' if left == 1 else 'tries'} left before a {LOCKOUT.seconds // 60}-minute "
            "lockout", field="id_digits", tries_left=left)

"""Staff accounts: who signs in, with which roles, in which court.

Passwords are kept as argon2id hashes only (`argon2-cffi`), at OWASP's parameters (19 MiB,
2 passes, 1 lane): tens of milliseconds on one core, so that sign-ins on a busy 2-core server
stay cheap while each guess at a stolen hash costs the same memory. An account
is never deleted, so that the audit's `account:<id>` always names someone: it is disabled,
which ends every session it has in the same transaction. Creating an account, changing its
password and disabling it are audited.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from courtrooms.errors import InvalidInput, LoginTaken, NotFound, SignInRefused
from courtrooms.models import (
    ACCOUNT_ENTRY,
    ApiToken,
    Court,
    JoinToken,
    Participant,
    StaffAccount,
    StaffRole,
)
from courtrooms.schemas import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, StaffAccountIn
from courtrooms.staff import end_sessions
from courtrooms.store import Store

T = TypeVar("T")

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Checked when a login names no account, so that an unknown login takes as long as a wrong
# password: the answer's time does not tell which logins exist.
_UNKNOWN = HASHER.hash("tingshen: no such account")


FIRST_ADMINISTRATOR = "法院管理员"
FIRST_LOGIN = "admin"


@dataclass(frozen=True)
class NewPassword:
    """An account given a generated password, to be shown once (setup, the demo)."""

    account: StaffAccount
    password: str


# Hashing and checking passwords (about 50 ms of CPU and 19 MiB each) in threads of their own,
# never the default executor that the rest of the server shares: a burst of sign-ins must not
# hold up what waits there. Two at a time, the cores of the machine this is sized for.
_HASHERS = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="argon2")


async def _hashing(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_HASHERS, fn, *args)


def new_password() -> str:
    """A generated password: 16 characters of the URL-safe alphabet (96 bits)."""
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    """An argon2id hash of `password`, salted anew. Blocking (about 50 ms): off the loop."""
    return HASHER.hash(password)


def password_matches(stored: str, password: str) -> bool:
    """Whether `password` is the one hashed in `stored`. Blocking, as hashing is."""
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def login_key(login: str) -> str:
    """How logins are compared: `Wang.Fang` and `wang.fang` are one account."""
    return login.casefold()


def check_password(password: str) -> None:
    """Refuse a password too short (or too long) to set; the message says the rule."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
                           "characters", field="password")
    if password != password.strip():
        raise InvalidInput("a password neither starts nor ends with a space", field="password")


def _roles(roles: list[StaffRole]) -> list[str]:
    return [r.value for r in StaffRole if r in roles]


class StaffAccounts(Store):
    """The court's staff accounts."""

    async def add(self, data: StaffAccountIn, password: str, actor: str) -> StaffAccount:
        check_password(password)
        hashed = await _hashing(hash_password, password)
        account = StaffAccount(name=data.name, login=data.login, login_key=login_key(data.login),
                               court_id=data.court_id, roles=_roles(data.roles),
                               password_hash=hashed, created_at=self.clock())
        try:
            async with self.db.write() as session:
                if data.court_id is not None:
                    await self._get(session, Court, data.court_id)
                if await self._by_login(session, data.login) is not None:
                    raise self._taken(data.login)
                session.add(account)
                await session.flush()
                await self._audit(session, actor, "account.created", account_id=account.id,
                                  login=account.login, name=account.name,
                                  roles=account.roles, court_id=account.court_id)
        except IntegrityError as e:  # created meanwhile by another writer
            raise self._taken(data.login) from e
        return account

    @staticmethod
    def _taken(login: str) -> LoginTaken:
        return LoginTaken(f"an account with login {login!r} exists already", field="login")

    async def _by_login(self, session: AsyncSession, login: str) -> StaffAccount | None:
        found: StaffAccount | None = await session.scalar(
            select(StaffAccount).where(StaffAccount.login_key == login_key(login)))
        return found

    async def find(self, login: str) -> StaffAccount | None:
        async with self.db.read() as session:
            return await self._by_login(session, login)

    async def get(self, account_id: uuid.UUID) -> StaffAccount:
        async with self.db.read() as session:
            return await self._get(session, StaffAccount, account_id)

    async def accounts(self) -> list[StaffAccount]:
        """Every account, oldest first."""
        async with self.db.read() as session:
            return list((await session.scalars(
                select(StaffAccount).order_by(StaffAccount.created_at, StaffAccount.login)
            )).all())

    async def bench(self, court_id: uuid.UUID | None, role: StaffRole | None = None
                    ) -> list[StaffAccount]:
        """The enabled judges and clerks (or only `role`'s) a hearing of `court_id` may be
        given: that court's and those of no court (None: every court's), by name."""
        roles = [role] if role is not None else [StaffRole.JUDGE, StaffRole.CLERK]
        found = [a for a in await self.accounts()
                 if not a.disabled and a.staff_roles & set(roles)
                 and (court_id is None or a.court_id in (None, court_id))]
        return sorted(found, key=lambda a: (a.name, a.login))

    async def names(self, actors: Iterable[str | None]) -> dict[str, str]:
        """The name of each account and API token among `actors` as the audit names them
        (`account:<id>`, `token:<id>`), read now: the data keeps the id, people read the name."""
        ids: dict[str, dict[uuid.UUID, str]] = {"account": {}, "token": {}}
        for actor in actors:
            kind, _, ident = (actor or "").partition(":")
            if actor and kind in ids:
                try:
                    ids[kind][uuid.UUID(ident)] = actor
                except ValueError:
                    continue
        named: dict[str, str] = {}
        accounts, tokens = ids["account"], ids["token"]
        async with self.db.read() as session:
            if accounts:
                found = await session.execute(select(StaffAccount.id, StaffAccount.name)
                                              .where(StaffAccount.id.in_(accounts)))
                named.update({accounts[i]: name for i, name in found})
            if tokens:
                found = await session.execute(select(ApiToken.id, ApiToken.name)
                                              .where(ApiToken.id.in_(tokens)))
                named.update({tokens[i]: name for i, name in found})
        return named

    async def court_named(self, court: str) -> uuid.UUID:
        """The id of a court given by its id or its exact name."""
        async with self.db.read() as session:
            try:
                found = await session.get(Court, uuid.UUID(court))
            except ValueError:
                found = await session.scalar(select(Court).where(Court.name == court))
        if found is None:
            raise NotFound("Court", court)
        return found.id

    async def has_administrator(self) -> bool:
        """Whether an enabled account holds the administrator role."""
        return any(StaffRole.ADMINISTRATOR in a.staff_roles and not a.disabled
                   for a in await self.accounts())

    async def ensure_administrator(self, actor: str) -> NewPassword | None:
        """At setup: when no account was ever an administrator, create the first one with a
        generated password (returned, to be shown once); else None."""
        if any(StaffRole.ADMINISTRATOR in a.staff_roles for a in await self.accounts()):
            return None
        login, n = FIRST_LOGIN, 1
        while await self.find(login) is not None:
            n += 1
            login = f"{FIRST_LOGIN}-{n}"
        password = new_password()
        account = await self.add(StaffAccountIn(name=FIRST_ADMINISTRATOR, login=login,
                                                roles=[StaffRole.ADMINISTRATOR]),
                                 password, actor)
        return NewPassword(account, password)

    async def authenticate(self, login: str, password: str) -> StaffAccount:
        """The enabled account `login` names, if `password` is its own; else SignInRefused,
        whose `reason` (for the audit, not the caller) says why and `account` whose."""
        account = await self.find(login)
        stored = account.password_hash if account is not None else _UNKNOWN
        matches = await _hashing(password_matches, stored, password)
        if account is None:
            raise SignInRefused("that login and password do not open an account",
                                reason="unknown login")
        if not matches:
            raise SignInRefused("that login and password do not open an account",
                                reason="wrong password", account_id=account.id)
        if account.disabled:
            raise SignInRefused("that login and password do not open an account",
                                reason="account disabled", account_id=account.id)
        return account

    async def set_password(self, login: str, password: str, actor: str) -> int:
        """Give `login` a new password; every session it had ends (someone may have known the
        old one). Returns how many sessions ended."""
        check_password(password)
        hashed = await _hashing(hash_password, password)
        async with self.db.write() as session:
            account = await self._existing(session, login)
            account.password_hash = hashed
            ended = await end_sessions(session, account.id, self.clock())
            await self._audit(session, actor, "account.password_changed",
                              account_id=account.id, sessions_ended=ended)
        return ended

    async def disable(self, login: str, actor: str) -> int:
        """Disable `login`: it signs in no more, each of its open sessions is refused at its
        next request, and so is each join its entries into hearings gave. Returns how many
        sessions ended."""
        async with self.db.write() as session:
            account = await self._existing(session, login)
            if account.disabled_at is None:
                account.disabled_at = self.clock()
            ended = await end_sessions(session, account.id, self.clock())
            # Its entries into hearings end too: a disabled judge's open join is refused.
            await session.execute(
                update(JoinToken)
                .where(JoinToken.issued_to == ACCOUNT_ENTRY, JoinToken.revoked_at.is_(None),
                       JoinToken.participant_id.in_(
                           select(Participant.id).where(Participant.account_id == account.id)))
                .values(revoked_at=self.clock()))
            await self._audit(session, actor, "account.disabled", account_id=account.id,
                              sessions_ended=ended)
        return ended

    async def _existing(self, session: AsyncSession, login: str) -> StaffAccount:
        account = await self._by_login(session, login)
        if account is None:
            raise NotFound("Account", login)
        return account

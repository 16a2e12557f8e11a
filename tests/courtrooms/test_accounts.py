"""Staff accounts (courtrooms/accounts.py) and the sessions they open (courtrooms/staff.py):
argon2 hashes only, several roles, a disabled account's sessions refused at once; against real
SQLite and real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError

from courtrooms.accounts import (
    FIRST_LOGIN,
    StaffAccounts,
    hash_password,
    login_key,
    password_matches,
)
from courtrooms.errors import InvalidInput, LoginTaken, NotFound, SignInRefused
from courtrooms.models import StaffRole
from courtrooms.registry import Registry
from courtrooms.schemas import AuditQuery, StaffAccountIn
from courtrooms.staff import StaffSessions
from tests.conftest import FakeClock
from tests.courtrooms.builders import ACTOR, database_text, make_court

PASSWORD = "正确的密码 correct horse"


@pytest.fixture
def accounts(registry: Registry) -> StaffAccounts:
    return StaffAccounts(registry.db, registry.clock)


@pytest.fixture
def sessions(registry: Registry) -> StaffSessions:
    return StaffSessions(registry.db, registry.clock)


def account_in(login: str = "wang.fang", roles: list[StaffRole] | None = None,
               court_id: uuid.UUID | None = None, name: str = "王芳") -> StaffAccountIn:
    return StaffAccountIn(name=name, login=login, court_id=court_id,
                          roles=roles or [StaffRole.JUDGE])


async def actions(registry: Registry) -> list[tuple[str, str, dict[str, object]]]:
    events, _ = await registry.audit_events(AuditQuery(limit=200))
    return [(e.actor, e.action, e.data) for e in events]


def test_passwords_are_salted_argon2id_and_checked_exactly() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and first != second  # salted anew
    assert PASSWORD not in first
    assert password_matches(first, PASSWORD) and password_matches(second, PASSWORD)
    for wrong in ("正确的密码 correct hors", PASSWORD + " ", PASSWORD.upper(), ""):
        assert not password_matches(first, wrong)
    assert not password_matches("not a hash", PASSWORD)
    assert login_key("Wang.Fang") == login_key("wang.fang")


async def test_an_account_keeps_its_roles_court_and_only_a_hash(
    registry: Registry, accounts: StaffAccounts
) -> None:
    court = await make_court(registry)
    made = await accounts.add(account_in("Wang.Fang", [StaffRole.SUPERVISOR, StaffRole.JUDGE],
                                         court.id), PASSWORD, ACTOR)
    # Stored in the declared order whatever the order given, each once.
    assert made.roles == ["judge", "supervisor"]
    assert made.staff_roles == {StaffRole.JUDGE, StaffRole.SUPERVISOR}
    assert made.court_id == court.id and not made.disabled
    assert made.actor == f"account:{made.id}"
    found = await accounts.find("wang.fang")
    assert found is not None and found.id == made.id and found.login == "Wang.Fang"
    assert PASSWORD not in await database_text(registry)
    [(actor, _, data)] = [a for a in await actions(registry) if a[1] == "account.created"]
    assert actor == ACTOR and data["account_id"] == str(made.id)
    assert data["roles"] == ["judge", "supervisor"] and data["name"] == "王芳"
    assert "password" not in str(data) and PASSWORD not in str(data)

    # A login is one account whatever its case; a court must exist; a password must be fit.
    with pytest.raises(LoginTaken):
        await accounts.add(account_in("WANG.FANG"), PASSWORD, ACTOR)
    with pytest.raises(NotFound):
        await accounts.add(account_in("li.ming", court_id=uuid.uuid4()), PASSWORD, ACTOR)
    for short in ("short", " padded password ", "x" * 257):
        with pytest.raises(InvalidInput) as refused:
            await accounts.add(account_in("li.ming"), short, ACTOR)
        assert refused.value.field == "password"
    assert [a.login for a in await accounts.accounts()] == ["Wang.Fang"]


def test_an_account_needs_a_role_a_login_and_no_role_twice() -> None:
    for bad in ({"roles": []}, {"roles": ["judge", "judge"]}, {"roles": ["bailiff"]},
                {"login": "王芳"}, {"login": "a"}, {"login": "has space"},
                {"login": "-dash-first"}, {"name": ""}):
        fields = {"name": "王芳", "login": "wang.fang", "roles": ["judge"], **bad}
        with pytest.raises(ValidationError):
            StaffAccountIn.model_validate_json(json.dumps(fields))


async def test_sign_in_checks_the_password_and_says_nothing_of_which_part_was_wrong(
    accounts: StaffAccounts
) -> None:
    made = await accounts.add(account_in(), PASSWORD, ACTOR)
    assert (await accounts.authenticate("WANG.fang", PASSWORD)).id == made.id
    reasons = {}
    for login, password in (("wang.fang", "wrong password!"), ("nobody", PASSWORD)):
        with pytest.raises(SignInRefused) as refused:
            await accounts.authenticate(login, password)
        reasons[login] = refused.value.details
        assert refused.value.message == "that login and password do not open an account"
    assert reasons == {"wang.fang": {"reason": "wrong password", "account_id": made.id},
                       "nobody": {"reason": "unknown login"}}


async def test_a_new_password_replaces_the_old_and_ends_the_sessions(
    registry: Registry, accounts: StaffAccounts, sessions: StaffSessions
) -> None:
    made = await accounts.add(account_in(), PASSWORD, ACTOR)
    secret, signed_in = await sessions.open(made.actor, "192.0.2.1", made)
    assert signed_in.account_id == made.id and signed_in.roles == {StaffRole.JUDGE}
    assert await accounts.set_password("wang.fang", "另一个更长的密码 again", ACTOR) == 1
    assert await sessions.find(secret) is None
    with pytest.raises(SignInRefused):
        await accounts.authenticate("wang.fang", PASSWORD)
    assert (await accounts.authenticate("wang.fang", "另一个更长的密码 again")).id == made.id
    with pytest.raises(NotFound):
        await accounts.set_password("nobody", "另一个更长的密码 again", ACTOR)
    [(_, _, data)] = [a for a in await actions(registry) if a[1] == "account.password_changed"]
    assert data == {"account_id": str(made.id), "sessions_ended": 1}


async def test_disabling_ends_every_session_and_refuses_sign_in(
    registry: Registry, accounts: StaffAccounts, sessions: StaffSessions, clock: FakeClock
) -> None:
    made = await accounts.add(account_in(roles=[StaffRole.CLERK, StaffRole.ADMINISTRATOR]),
                              PASSWORD, ACTOR)
    other = await accounts.add(account_in("li.ming", name="李明"), PASSWORD, ACTOR)
    opened = [await sessions.open(made.actor, "192.0.2.1", made) for _ in range(2)]
    kept, _ = await sessions.open(other.actor, "192.0.2.2", other)
    assert await accounts.has_administrator()
    link = opened[0][1].secret_hash[:12]
    assert await sessions.made_in(link) is not None

    assert await accounts.disable("wang.fang", ACTOR) == 2
    for secret, _ in opened:
        assert await sessions.find(secret) is None
    assert await sessions.made_in(link) is None  # a link made in one closes with it
    assert await sessions.find(kept) is not None  # someone else's stays
    with pytest.raises(SignInRefused) as refused:
        await accounts.authenticate("wang.fang", PASSWORD)
    assert refused.value.details["reason"] == "account disabled"
    assert not await accounts.has_administrator()
    [(_, _, data)] = [a for a in await actions(registry) if a[1] == "account.disabled"]
    assert data == {"account_id": str(made.id), "sessions_ended": 2}


async def test_a_session_left_open_is_refused_once_its_account_is_disabled(
    registry: Registry, accounts: StaffAccounts, sessions: StaffSessions
) -> None:
    """Even a session the disabling did not end (another writer opened it meanwhile) is
    refused: every request reads the account's state with the session."""
    made = await accounts.add(account_in(), PASSWORD, ACTOR)
    await accounts.disable("wang.fang", ACTOR)
    secret, _ = await sessions.open(made.actor, "192.0.2.1", made)
    assert await sessions.find(secret) is None


async def test_signing_out_everywhere_ends_only_the_account_s_sessions(
    registry: Registry, accounts: StaffAccounts, sessions: StaffSessions, clock: FakeClock
) -> None:
    made = await accounts.add(account_in(), PASSWORD, ACTOR)
    other = await accounts.add(account_in("li.ming", name="李明"), PASSWORD, ACTOR)
    mine = [await sessions.open(made.actor, f"192.0.2.{n}", made) for n in range(3)]
    theirs, _ = await sessions.open(other.actor, "192.0.2.9", other)
    token_session, _ = await sessions.open("admin", "192.0.2.8")
    clock.advance(timedelta(minutes=1))
    assert await sessions.end_everywhere(mine[1][1], "192.0.2.1") == 3
    assert [await sessions.find(secret) for secret, _ in mine] == [None] * 3
    assert await sessions.find(theirs) is not None
    assert await sessions.find(token_session) is not None
    [(actor, _, data)] = [a for a in await actions(registry)
                          if a[1] == "staff.signed_out_everywhere"]
    assert actor == made.actor and data["sessions_ended"] == 3


async def test_setup_creates_the_first_administrator_once(
    registry: Registry, accounts: StaffAccounts
) -> None:
    await accounts.add(account_in(FIRST_LOGIN, name="管理员之外"), PASSWORD, ACTOR)
    first = await accounts.ensure_administrator("system:setup")
    assert first is not None and len(first.password) >= 16
    # "admin" was someone's already: the first administrator takes the next login.
    assert first.account.login == f"{FIRST_LOGIN}-2"
    assert first.account.staff_roles == {StaffRole.ADMINISTRATOR}
    assert (await accounts.authenticate(first.account.login, first.password)).id == \
        first.account.id
    assert await accounts.ensure_administrator("system:setup") is None
    # A disabled administrator is still one: setup makes no second (the admin token signs in
    # again until an administrator is enabled).
    await accounts.disable(first.account.login, ACTOR)
    assert await accounts.ensure_administrator("system:setup") is None


async def test_passwords_are_hashed_beside_a_busy_default_executor(
        accounts: StaffAccounts, full_default_executor: None) -> None:
    """argon2 (tens of ms of CPU each) runs in threads of its own: a default executor that is
    full (what the rest of the server shares) does not hold up a sign-in, nor is it used."""
    made = await asyncio.wait_for(accounts.add(account_in(), PASSWORD, ACTOR), 20)
    signed = await asyncio.wait_for(accounts.authenticate("wang.fang", PASSWORD), 20)
    assert signed.id == made.id

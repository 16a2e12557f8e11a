"""API tokens in the registry (courtrooms/tokens.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from courtrooms import access
from courtrooms.access import Permission, Scope
from courtrooms.accounts import StaffAccounts
from courtrooms.database import Database
from courtrooms.errors import InvalidInput, NotEditable, NotFound, NotPermitted
from courtrooms.models import ApiToken
from courtrooms.schemas import ApiTokenIn, AuditQuery
from courtrooms.secrets import digest
from courtrooms.tokens import ApiTokens
from tests.conftest import FakeClock


@pytest.fixture
async def tokens(database_url: str, clock: FakeClock) -> AsyncIterator[ApiTokens]:
    db = Database(database_url)
    try:
        yield ApiTokens(db, clock)
    finally:
        await db.aclose()


def asked(name: str = "案件管理系统", *scopes: Scope) -> ApiTokenIn:
    return ApiTokenIn(name=name, scopes=list(scopes or [Scope.SCHEDULE]))


async def test_a_new_token_is_found_by_its_secret_and_stored_as_its_hash(
        tokens: ApiTokens) -> None:
    made = await tokens.add(asked("案件管理系统", Scope.READ_RECORDS, Scope.SCHEDULE),
                            "account:x")
    assert made.token.secret_hash == digest(made.secret) != made.secret
    async with tokens.db.read() as session:
        row = await session.get(ApiToken, made.token.id)
    assert row is not None and made.secret not in repr(vars(row))
    holder = await tokens.find(made.secret)
    assert holder is not None and holder.name == "案件管理系统"
    assert holder.actor == f"token:{made.token.id}"
    assert holder.member.scopes == {Scope.SCHEDULE, Scope.READ_RECORDS}
    assert holder.member.integration and not holder.member.token
    assert await tokens.find(made.secret + "x") is None
    assert await tokens.find("not-a-token") is None


async def test_revoked_tokens_are_not_found_and_revoking_is_audited_once(
        tokens: ApiTokens) -> None:
    made = await tokens.add(asked(), "account:x")
    await tokens.revoke(made.token.id, "system:cli")
    assert await tokens.find(made.secret) is None
    assert await tokens.live(made.token.id) is None
    with pytest.raises(NotEditable):
        await tokens.revoke(made.token.id, "system:cli")
    with pytest.raises(NotFound):
        await tokens.revoke(uuid.uuid4(), "system:cli")
    from courtrooms.registry import Registry

    events, _ = await Registry(tokens.db).audit_events(AuditQuery(limit=50))
    assert [(e.action, e.actor, e.data["name"]) for e in events] == [
        ("api_token.created", "account:x", "案件管理系统"),
        ("api_token.revoked", "system:cli", "案件管理系统")]
    # The audit names the token by its name when read.
    assert await StaffAccounts(tokens.db).names([made.token.actor, "token:junk"]) == {
        made.token.actor: "案件管理系统"}


async def test_names_are_unique_among_live_tokens_and_the_court_must_exist(
        tokens: ApiTokens) -> None:
    made = await tokens.add(asked(), "admin")
    with pytest.raises(InvalidInput, match="exists already"):
        await tokens.add(asked(), "admin")
    assert (await tokens.named("案件管理系统")).id == made.token.id
    assert (await tokens.named(str(made.token.id))).id == made.token.id
    await tokens.revoke(made.token.id, "admin")
    await tokens.add(asked(), "admin")
    with pytest.raises(InvalidInput) as refused:
        await tokens.add(ApiTokenIn(name="别院", scopes=[Scope.SCHEDULE],
                                    court_id=uuid.uuid4()), "admin")
    assert refused.value.field == "court_id"
    with pytest.raises(NotFound):
        await tokens.named("没有的令牌")


async def test_last_use_is_written_at_most_once_a_minute(
        tokens: ApiTokens, clock: FakeClock) -> None:
    made = await tokens.add(asked(), "admin")

    async def last_used() -> object:
        [token] = await tokens.tokens()
        return token.last_used_at

    assert await last_used() is None
    first = clock.now
    await tokens.find(made.secret)
    assert await last_used() == first
    clock.advance(timedelta(seconds=59))
    await tokens.find(made.secret)
    assert await last_used() == first
    clock.advance(timedelta(seconds=1))
    await tokens.find(made.secret)
    assert await last_used() == clock.now


def test_scopes_grant_their_permissions_only() -> None:
    court = uuid.uuid4()
    member = access.integration(frozenset({Scope.SCHEDULE}), court)
    access.check(member, Permission.SCHEDULE, access.HearingScope(court))
    access.check(member, Permission.READ_PLACES)
    with pytest.raises(NotPermitted, match="court"):
        access.check(member, Permission.SCHEDULE, access.HearingScope(uuid.uuid4()))
    with pytest.raises(NotPermitted) as refused:
        access.check(member, Permission.SEE)
    assert refused.value.details["needs"] == ["read_records"]
    for never in (Permission.RUN, Permission.KEEP_RECORD, Permission.SEAL, Permission.WATCH,
                  Permission.AUDIT, Permission.MANAGE_TOKENS):
        assert access.scopes_for(never) == ()
        with pytest.raises(NotPermitted, match="no API token may"):
            access.check(access.integration(frozenset(Scope), None), never)
    assert access.reach(member, Permission.SEE).nothing
    assert access.reach(member, Permission.SCHEDULE) == access.Reach(court_id=court)
    assert access.reach(access.integration(frozenset({Scope.READ_RECORDS}), None),
                        Permission.SEE).everything

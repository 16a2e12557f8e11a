"""Who on the staff may do what (courtrooms/access.py), and the schedule keeping to it."""

from __future__ import annotations

import uuid

import pytest

from courtrooms import access
from courtrooms.access import (
    ADMIN,
    GRANTS,
    HearingScope,
    Permission,
    StaffMember,
    reach,
    roles_for,
)
from courtrooms.accounts import StaffAccounts
from courtrooms.errors import InvalidInput, NotPermitted
from courtrooms.models import HearingKind, StaffAccount, StaffRole
from courtrooms.registry import Registry
from courtrooms.schemas import HearingIn, HearingPatch, HearingQuery, StaffAccountIn
from tests.courtrooms.builders import ACTOR, at, make_court, make_room

COURT, OTHER_COURT = uuid.uuid4(), uuid.uuid4()
CLERK = StaffMember(uuid.uuid4(), frozenset({StaffRole.CLERK}), COURT)
JUDGE = StaffMember(uuid.uuid4(), frozenset({StaffRole.JUDGE}), COURT)
SUPERVISOR = StaffMember(uuid.uuid4(), frozenset({StaffRole.SUPERVISOR}), COURT)
ADMINISTRATOR = StaffMember(uuid.uuid4(), frozenset({StaffRole.ADMINISTRATOR}), None)
OURS = HearingScope(COURT, judge_account_id=JUDGE.account_id)
THEIRS = HearingScope(OTHER_COURT, judge_account_id=uuid.uuid4())


def allowed(member: StaffMember, permission: Permission,
            hearing: HearingScope | None = None) -> bool:
    try:
        access.check(member, permission, hearing)
    except NotPermitted:
        return False
    return True


@pytest.mark.parametrize(("member", "may"), [
    (CLERK, {Permission.READ_PLACES, Permission.SCHEDULE, Permission.SEE, Permission.RUN,
             Permission.KEEP_RECORD, Permission.ENTER}),
    (JUDGE, {Permission.READ_PLACES, Permission.SEE, Permission.RUN, Permission.KEEP_RECORD,
             Permission.SEAL, Permission.ENTER}),
    (SUPERVISOR, {Permission.READ_PLACES, Permission.SEE, Permission.WATCH}),
    (ADMINISTRATOR, {Permission.READ_PLACES, Permission.MANAGE_PLACES, Permission.AUDIT,
                     Permission.MANAGE_TOKENS}),
    (ADMIN, set(Permission)),
])
def test_each_role_may_do_its_own_work_on_its_own_hearings_only(
    member: StaffMember, may: set[Permission]
) -> None:
    hearing_permissions = {Permission.SCHEDULE, Permission.SEE, Permission.RUN,
                           Permission.KEEP_RECORD, Permission.SEAL, Permission.WATCH}
    for permission in Permission:
        assert allowed(member, permission) == (permission in may), permission
        if permission in hearing_permissions:
            assert allowed(member, permission, OURS) == (permission in may), permission
            # Another court's hearing (another judge's): only the admin token.
            assert allowed(member, permission, THEIRS) == (member is ADMIN), permission


def test_a_refusal_names_the_role_needed_or_whose_hearing_it_is() -> None:
    with pytest.raises(NotPermitted, match=r"needs the clerk role.*this account has: judge"):
        access.check(JUDGE, Permission.SCHEDULE)
    with pytest.raises(NotPermitted) as refused:
        access.check(JUDGE, Permission.SEAL, THEIRS)
    assert refused.value.details == {"needs": ["the hearing's judge"]}
    assert "only the hearing's judge" in refused.value.message
    with pytest.raises(NotPermitted, match="not of this account's court"):
        access.check(CLERK, Permission.SCHEDULE, THEIRS)
    assert roles_for(Permission.SEE) == (StaffRole.CLERK, StaffRole.JUDGE, StaffRole.SUPERVISOR)
    assert all(roles_for(p) for p in Permission)  # every permission is someone's
    assert set(GRANTS) == set(StaffRole)


def test_judges_and_clerks_enter_only_the_hearings_whose_judge_or_clerk_they_are() -> None:
    theirs_as_clerk = HearingScope(COURT, clerk_account_id=CLERK.account_id)
    assert allowed(JUDGE, Permission.ENTER, OURS)
    assert allowed(CLERK, Permission.ENTER, theirs_as_clerk)
    # The court's clerk, not this hearing's: refused, as is the judge of another hearing.
    with pytest.raises(NotPermitted, match="only the hearing's clerk may enter it") as refused:
        access.check(CLERK, Permission.ENTER, OURS)
    assert refused.value.details == {"needs": ["the hearing's clerk"]}
    assert not allowed(JUDGE, Permission.ENTER, theirs_as_clerk)
    both = StaffMember(uuid.uuid4(), frozenset({StaffRole.JUDGE, StaffRole.CLERK}), COURT)
    with pytest.raises(NotPermitted, match="only the hearing's judge or clerk may enter"):
        access.check(both, Permission.ENTER, OURS)
    assert not allowed(SUPERVISOR, Permission.ENTER, HearingScope(COURT))


def test_several_roles_add_up_and_a_member_without_a_court_reaches_only_their_own() -> None:
    both = StaffMember(uuid.uuid4(), frozenset({StaffRole.JUDGE, StaffRole.SUPERVISOR}), COURT)
    # As supervisor they see the court's hearings; as judge they seal only their own.
    assert allowed(both, Permission.SEE, HearingScope(COURT))
    assert not allowed(both, Permission.SEAL, HearingScope(COURT))
    assert allowed(both, Permission.SEAL, HearingScope(None, judge_account_id=both.account_id))
    courtless = StaffMember(uuid.uuid4(), frozenset({StaffRole.CLERK}), None)
    assert not allowed(courtless, Permission.SEE, HearingScope(None))
    assert allowed(courtless, Permission.SEE, HearingScope(None, None, courtless.account_id))
    assert reach(StaffMember(uuid.uuid4(), frozenset({StaffRole.SUPERVISOR}), None),
                 Permission.SEE).nothing


async def account(registry: Registry, login: str, role: StaffRole,
                  court_id: uuid.UUID | None) -> StaffAccount:
    return await StaffAccounts(registry.db, registry.clock).add(
        StaffAccountIn(name=login, login=login, court_id=court_id, roles=[role]),
        "a password of the test", ACTOR)


def member(a: StaffAccount) -> StaffMember:
    return StaffMember(a.id, a.staff_roles, a.court_id)


def hearing_in(**fields: object) -> HearingIn:
    return HearingIn.model_validate({
        "case_number": f"(2026)京01刑初{uuid.uuid4().int % 10000}号", "title": "张某盗窃案",
        "kind": HearingKind.TRIAL, "scheduled_start": at(10), "scheduled_end": at(12),
        **fields})


async def test_a_clerk_schedules_in_their_court_and_keeps_to_it(registry: Registry) -> None:
    ours, theirs = await make_court(registry), await make_court(registry)
    our_room, their_room = await make_room(registry, ours), await make_room(registry, theirs)
    clerk = await account(registry, "zhao.clerk", StaffRole.CLERK, ours.id)
    judge = await account(registry, "wang.judge", StaffRole.JUDGE, ours.id)
    far_judge = await account(registry, "li.judge", StaffRole.JUDGE, theirs.id)

    # With no room, the hearing is the clerk's court's; the clerk is its clerk.
    made = await registry.create_hearing(hearing_in(judge_account_id=judge.id), clerk.actor,
                                         "zh", member(clerk))
    assert (made.court_id, made.clerk_account_id, made.judge_account_id) == (
        ours.id, clerk.id, judge.id)
    # A room decides the court: another court's room is refused, and so is its judge.
    in_room = await registry.create_hearing(hearing_in(courtroom_id=our_room.id),
                                            clerk.actor, "zh", member(clerk))
    assert in_room.court_id == ours.id
    with pytest.raises(NotPermitted):
        await registry.create_hearing(hearing_in(courtroom_id=their_room.id), clerk.actor,
                                      "zh", member(clerk))
    with pytest.raises(InvalidInput, match="another court") as refused:
        await registry.create_hearing(hearing_in(judge_account_id=far_judge.id), clerk.actor,
                                      "zh", member(clerk))
    assert refused.value.field == "judge_account_id"
    with pytest.raises(InvalidInput, match="not an enabled judge") as refused:
        await registry.create_hearing(hearing_in(judge_account_id=clerk.id), clerk.actor,
                                      "zh", member(clerk))
    with pytest.raises(InvalidInput, match="is not of court"):
        await registry.create_hearing(hearing_in(courtroom_id=our_room.id, court_id=theirs.id),
                                      ACTOR, "zh")
    # Nor may the clerk move a hearing into another court's room.
    with pytest.raises(NotPermitted):
        await registry.update_hearing(made.id, HearingPatch(courtroom_id=their_room.id),
                                      clerk.actor, member(clerk))
    assert (await registry.get_hearing(made.id)).courtroom_id is None
    # The admin token may, with a judge and clerk of that court (or none): the hearing is
    # then the other court's.
    with pytest.raises(InvalidInput, match="another court"):
        await registry.update_hearing(made.id, HearingPatch(courtroom_id=their_room.id),
                                      ACTOR)
    moved = await registry.update_hearing(
        made.id, HearingPatch(courtroom_id=their_room.id, judge_account_id=far_judge.id,
                              clerk_account_id=None), ACTOR)
    assert moved.court_id == theirs.id and moved.clerk_account_id is None
    assert await registry.hearing_scope(made.id) == access.HearingScope(theirs.id,
                                                                        far_judge.id, None)

    # Each sees in the list only the hearings within their reach.
    def listed(m: StaffMember) -> set[uuid.UUID]:
        return {h.id for h in hearings_of[m]}

    judge_member = member(judge)
    hearings_of = {m: (await registry.list_hearings(HearingQuery(),
                                                    reach(m, Permission.SEE)))[0]
                   for m in (member(clerk), judge_member, ADMIN, member(far_judge),
                             member(await account(registry, "sun.sup", StaffRole.SUPERVISOR,
                                                  theirs.id)))}
    supervisor = next(m for m in hearings_of if m.roles == {StaffRole.SUPERVISOR})
    assert listed(member(clerk)) == {in_room.id}
    assert listed(judge_member) == set()  # no longer its judge
    assert listed(member(far_judge)) == listed(supervisor) == {made.id}
    assert listed(ADMIN) == {made.id, in_room.id}

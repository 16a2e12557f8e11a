"""Who on the staff may do what: one rule, from an account's roles and court and the hearing.

Every staff endpoint and page names the `Permission` it needs (the route table enforces it);
`GRANTS` says which role grants each permission, and over which hearings: all of them, those
of the account's court, or the account's own (the hearing's judge or clerk). An integration's
API token may do what its `Scope`s grant (`SCOPE_GRANTS`), over its court's hearings or every
court's; never run or seal a hearing, keep its record, or manage accounts and tokens. The admin
token, the bootstrap administrator's credential, may do everything.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from courtrooms.errors import NotPermitted
from courtrooms.models import StaffRole


class Permission(enum.StrEnum):
    READ_PLACES = "read places"  # courts, courtrooms and prison terminals
    MANAGE_PLACES = "manage places"
    AUDIT = "read the audit"
    SCHEDULE = "schedule"  # a hearing's time, room, participants and links; cancel it
    SEE = "see"  # a hearing, its attendance, recordings, exhibits and record
    RUN = "run"  # open, start, recess, resume and close a hearing; present exhibits
    KEEP_RECORD = "keep the record"  # correct and edit the trial record
    SEAL = "seal"  # seal the trial record
    WATCH = "watch"  # join a live hearing as an observer named by the account
    ENTER = "enter"  # take the account's own seat (judge, clerk) in the hearing, from its list
    MANAGE_TOKENS = "manage API tokens"  # create, list and revoke integrations' tokens


class Span(enum.Enum):
    """Over which hearings a role grants a permission."""

    ALL = "all"
    COURT = "the account's court"  # a clerk's also covers the hearings they are clerk of
    OWN = "the account's own"  # the hearings whose judge (or clerk) the account is


_PLACES = {Permission.READ_PLACES: Span.ALL}
GRANTS: Mapping[StaffRole, Mapping[Permission, Span]] = {
    StaffRole.ADMINISTRATOR: {**_PLACES, Permission.MANAGE_PLACES: Span.ALL,
                              Permission.AUDIT: Span.ALL, Permission.MANAGE_TOKENS: Span.ALL},
    StaffRole.CLERK: {**_PLACES, Permission.SCHEDULE: Span.COURT, Permission.SEE: Span.COURT,
                      Permission.RUN: Span.COURT, Permission.KEEP_RECORD: Span.COURT,
                      Permission.ENTER: Span.OWN},
    StaffRole.JUDGE: {**_PLACES, Permission.SEE: Span.OWN, Permission.RUN: Span.OWN,
                      Permission.KEEP_RECORD: Span.OWN, Permission.SEAL: Span.OWN,
                      Permission.ENTER: Span.OWN},
    StaffRole.SUPERVISOR: {**_PLACES, Permission.SEE: Span.COURT, Permission.WATCH: Span.COURT},
}


class Scope(enum.StrEnum):
    """What an integration's API token is for."""

    SCHEDULE = "schedule"  # hearings, their participants and invitations
    READ_RECORDS = "read_records"  # hearings, their trial records, recordings and exports
    MANAGE_PLACES = "manage_places"  # courts, courtrooms and prison terminals


# Every scope reads the places: scheduling names a courtroom, a record its court.
SCOPE_GRANTS: Mapping[Scope, frozenset[Permission]] = {
    Scope.SCHEDULE: frozenset({Permission.READ_PLACES, Permission.SCHEDULE}),
    Scope.READ_RECORDS: frozenset({Permission.READ_PLACES, Permission.SEE}),
    Scope.MANAGE_PLACES: frozenset({Permission.READ_PLACES, Permission.MANAGE_PLACES}),
}


def scopes_for(permission: Permission) -> tuple[Scope, ...]:
    """The scopes that grant `permission`, in the scopes' declared order."""
    return tuple(s for s in Scope if permission in SCOPE_GRANTS[s])


def roles_for(permission: Permission) -> tuple[StaffRole, ...]:
    """The roles that grant `permission`, in the roles' declared order."""
    return tuple(r for r in StaffRole if permission in GRANTS[r])


@dataclass(frozen=True)
class StaffMember:
    """Who on the staff acts: an account (its id, roles and court), an integration's API
    token (its scopes, and its court if it has one), or the admin token."""

    account_id: uuid.UUID | None
    roles: frozenset[StaffRole]
    court_id: uuid.UUID | None = None
    # An API token's scopes; None for an account or the admin token.
    scopes: frozenset[Scope] | None = None

    @property
    def token(self) -> bool:
        """The admin token (or a session opened with it): the bootstrap administrator."""
        return self.account_id is None and self.scopes is None

    @property
    def integration(self) -> bool:
        """An integration calling with its API token."""
        return self.scopes is not None


def integration(scopes: frozenset[Scope], court_id: uuid.UUID | None) -> StaffMember:
    """What an API token with `scopes` (limited to `court_id`, if given) may do."""
    return StaffMember(None, frozenset(), court_id, scopes)


ADMIN = StaffMember(None, frozenset(StaffRole))


@dataclass(frozen=True)
class HearingScope:
    """What of a hearing decides who may act on it."""

    court_id: uuid.UUID | None
    judge_account_id: uuid.UUID | None = None
    clerk_account_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Reach:
    """The hearings a member may do one permission on."""

    everything: bool = False
    court_id: uuid.UUID | None = None
    judge_of: uuid.UUID | None = None  # the hearings whose judge is this account
    clerk_of: uuid.UUID | None = None  # the hearings whose clerk is this account

    def covers(self, hearing: HearingScope) -> bool:
        return (self.everything
                or (self.court_id is not None and hearing.court_id == self.court_id)
                or (self.judge_of is not None and hearing.judge_account_id == self.judge_of)
                or (self.clerk_of is not None and hearing.clerk_account_id == self.clerk_of))

    @property
    def nothing(self) -> bool:
        return self == NOWHERE


NOWHERE = Reach()
EVERYWHERE = Reach(everything=True)


def reach(member: StaffMember, permission: Permission) -> Reach:
    """The hearings `member` may do `permission` on (nothing: not one)."""
    if member.token:
        return EVERYWHERE
    if member.scopes is not None:
        if not any(permission in SCOPE_GRANTS[s] for s in member.scopes):
            return NOWHERE
        return EVERYWHERE if member.court_id is None else Reach(court_id=member.court_id)
    everything, court_id, judge_of, clerk_of = False, None, None, None
    for role in member.roles:
        span = GRANTS[role].get(permission)
        if span is Span.ALL:
            everything = True
        elif span is Span.COURT:
            court_id = member.court_id
            if role is StaffRole.CLERK:
                clerk_of = member.account_id
        elif span is Span.OWN:
            if role is StaffRole.JUDGE:
                judge_of = member.account_id
            elif role is StaffRole.CLERK:
                clerk_of = member.account_id
    return Reach(everything, court_id, judge_of, clerk_of)


def check(member: StaffMember, permission: Permission,
          hearing: HearingScope | None = None) -> None:
    """Nothing if `member` may do `permission` (on `hearing`, when it concerns one); else
    `NotPermitted`, saying which roles may, or whose hearing it is."""
    if member.token:
        return
    if member.scopes is not None:
        _check_scopes(member, permission, hearing)
        return
    needed = roles_for(permission)
    if not member.roles & set(needed):
        names = " or ".join(r.value for r in needed)
        held = ", ".join(r.value for r in StaffRole if r in member.roles) or "none"
        raise NotPermitted(f"this needs the {names} role (to {permission.value}); this "
                           f"account has: {held}", needs=[r.value for r in needed])
    if hearing is None or reach(member, permission).covers(hearing):
        return
    spans = {GRANTS[r][permission] for r in member.roles if permission in GRANTS[r]}
    if spans == {Span.OWN}:
        who = " or ".join(r.value for r in (StaffRole.JUDGE, StaffRole.CLERK)
                          if r in member.roles and permission in GRANTS[r])
        raise NotPermitted(f"only the hearing's {who} may {permission.value} it; this "
                           f"account is not its {who}", needs=[f"the hearing's {who}"])
    raise NotPermitted(f"this hearing is not of this account's court (nor is the account its "
                       f"judge or clerk): it may not {permission.value} it",
                       needs=["the hearing's court"])


def _check_scopes(member: StaffMember, permission: Permission,
                  hearing: HearingScope | None) -> None:
    assert member.scopes is not None
    needed = scopes_for(permission)
    if not member.scopes & set(needed):
        held = ", ".join(s.value for s in Scope if s in member.scopes) or "none"
        if needed:
            names = " or ".join(s.value for s in needed)
            why = f"this needs the API token scope {names} (to {permission.value})"
        else:
            why = f"no API token may {permission.value}: staff do it with their account"
        raise NotPermitted(f"{why}; this token has: {held}",
                           needs=[s.value for s in needed] or ["a staff account"])
    if hearing is None or reach(member, permission).covers(hearing):
        return
    raise NotPermitted(f"this hearing is not of this API token's court: it may not "
                       f"{permission.value} it", needs=["the hearing's court"])

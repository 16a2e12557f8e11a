"""The registry's tables. Times are stored in UTC and always returned timezone-aware."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Double,
    Enum,
    ForeignKey,
    Index,
    MetaData,
    String,
    TypeDecorator,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp kept in UTC. SQLite has no time zones, so values go in naive UTC there."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Tingshen stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class HearingKind(enum.StrEnum):
    TRIAL = "trial"
    ARRAIGNMENT = "arraignment"  # remote arraignment (远程提讯)
    PAROLE = "parole"  # commutation and parole hearing (减刑假释)
    MEDIATION = "mediation"
    CREDITORS_MEETING = "creditors_meeting"
    PETITION = "petition"  # video petition reception (视频信访)


class HearingState(enum.StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"  # lobby open, not yet in session
    IN_SESSION = "in_session"
    RECESS = "recess"
    CLOSED = "closed"
    CANCELLED = "cancelled"


# States in which a hearing still holds its courtroom, judge and terminals.
ACTIVE_STATES = (
    HearingState.SCHEDULED,
    HearingState.OPEN,
    HearingState.IN_SESSION,
    HearingState.RECESS,
)
# People may be in it now.
LIVE_STATES = (HearingState.OPEN, HearingState.IN_SESSION, HearingState.RECESS)
# It can still be moved to another time or courtroom.
EDITABLE_STATES = (HearingState.SCHEDULED, HearingState.OPEN)
# Over for good: nothing joins, nothing is added.
FINISHED_STATES = (HearingState.CLOSED, HearingState.CANCELLED)


class Role(enum.StrEnum):
    JUDGE = "judge"
    CLERK = "clerk"
    PROSECUTOR = "prosecutor"
    DEFENDANT = "defendant"
    LAWYER = "lawyer"
    PARTY = "party"
    WITNESS = "witness"
    INTERPRETER = "interpreter"
    OBSERVER = "observer"


# Who controls the hearing: admits, mutes, removes, opens, recesses and closes it.
CONTROL_ROLES = frozenset({Role.JUDGE, Role.CLERK})
# Who may review the hearing's recordings and record by role (others when the court permits).
REVIEW_ROLES = frozenset({Role.JUDGE, Role.CLERK})
# Who may ask for a private consultation, and with whom: a party and their counsel.
CONSULTING_ROLES = frozenset({Role.DEFENDANT, Role.PARTY})
COUNSEL_ROLES = frozenset({Role.LAWYER})
# Who sits in the courtroom unless the clerk says otherwise.
COURTROOM_ROLES = frozenset({Role.JUDGE, Role.CLERK, Role.PROSECUTOR})
# Who may be asked for the last digits of their ID number at each join, when the court has
# them on file: everyone but the court and its observers.
ID_DIGITS_ROLES = frozenset(Role) - CONTROL_ROLES - {Role.OBSERVER}
# Whom an interpreter interprets for: a party (a defendant, a party to a civil case) or a
# witness, who speaks another language than the court's.
INTERPRETED_ROLES = frozenset({Role.DEFENDANT, Role.PARTY, Role.WITNESS})


class Location(enum.StrEnum):
    COURTROOM = "courtroom"
    PRISON = "prison"
    REMOTE = "remote"


def _new_id() -> uuid.UUID:
    return uuid.uuid4()


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as the value strings with a CHECK constraint, portable across SQLite and PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON, float: Double
    }


class Court(Base):
    __tablename__ = "courts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    courtrooms: Mapped[list[Courtroom]] = relationship(back_populates="court", lazy="raise")


class Courtroom(Base):
    __tablename__ = "courtrooms"
    __table_args__ = (Index("uq_courtrooms_court_id_name", "court_id", "name", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    court_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    court: Mapped[Court] = relationship(back_populates="courtrooms", lazy="raise")


class PrisonTerminal(Base):
    """A fixed video device inside a prison, authenticated by its device key."""

    __tablename__ = "prison_terminals"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    name: Mapped[str] = mapped_column(String(200))
    prison: Mapped[str] = mapped_column(String(200))
    device_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Hearing(Base):
    __tablename__ = "hearings"
    __table_args__ = (Index("ix_hearings_window", "scheduled_start", "scheduled_end"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    case_number: Mapped[str] = mapped_column(String(100), index=True)
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[HearingKind] = mapped_column(_enum(HearingKind, "hearing_kind"))
    courtroom_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("courtrooms.id"), index=True
    )
    # The court it is heard by (its courtroom's, when it has one): whose clerks and
    # supervisors may act on it.
    court_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("courts.id"), index=True)
    # Its judge and clerk as staff accounts (courtrooms/access.py), set at scheduling.
    judge_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("staff_accounts.id"), index=True
    )
    clerk_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("staff_accounts.id"), index=True
    )
    scheduled_start: Mapped[datetime]
    scheduled_end: Mapped[datetime]
    language: Mapped[str] = mapped_column(String(8))
    state: Mapped[HearingState] = mapped_column(
        _enum(HearingState, "hearing_state"), default=HearingState.SCHEDULED, index=True
    )
    auto_admit: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # The wall-clock instant (Unix seconds) that is 0 on the hearing's timeline, on which
    # recordings and the trial record are placed; set when the hearing first goes in session.
    timeline_origin: Mapped[float | None]
    # Set when the judge seals the trial record: it takes no corrections after that.
    record_sealed_at: Mapped[datetime | None]
    record_sealed_by: Mapped[str | None] = mapped_column(String(200))
    record_sha256: Mapped[str | None] = mapped_column(String(64))
    # Set when the process holding the hearing in session died: the hearing was put in
    # recess, and the court decides to resume or close (either clears it).
    interrupted_at: Mapped[datetime | None]

    participants: Mapped[list[Participant]] = relationship(
        back_populates="hearing", lazy="raise", order_by="Participant.created_at"
    )


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    hearing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hearings.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Normalized name used to find a judge's other hearings when the judge is typed by name.
    name_key: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "participant_role"))
    location: Mapped[Location] = mapped_column(_enum(Location, "participant_location"))
    terminal_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("prison_terminals.id"), index=True
    )
    # Judges and clerks review recordings; anyone else only when the judge permits it.
    may_review: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The language they speak when it is not the hearing's (a foreign defendant); None: the
    # hearing's.
    language: Mapped[str | None] = mapped_column(String(8))
    # The last characters of their ID number, when the court has them: a party types them at
    # each join. Only a salted scrypt hash is kept (`courtrooms/id_digits.py`), with the wrong
    # tries since the last right one and the lockout they led to.
    id_digits_hash: Mapped[str | None] = mapped_column(String(160))
    id_digits_failures: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    id_digits_locked_until: Mapped[datetime | None]
    # An interpreter's party: the participant of the same hearing they interpret for.
    interprets_for_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("participants.id"))
    # A judge's or clerk's seat held by their staff account: always the hearing's
    # `judge_account_id` (or `clerk_account_id`), which says who; this says which seat. The
    # account enters from "my hearings", without a link.
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("staff_accounts.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    hearing: Mapped[Hearing] = relationship(back_populates="participants", lazy="raise")

    @property
    def id_digits_on_file(self) -> bool:
        return self.id_digits_hash is not None


# Whom a join made by a judge's or clerk's entry from their account is issued to
# (`JoinToken.issued_to`): it ends with the next entry, the seat's handing over, the account.
ACCOUNT_ENTRY = "account"


class JoinToken(Base):
    """A participant's bearer token. Only its SHA-256 is stored."""

    __tablename__ = "join_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_to: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class RecordingStatus(enum.StrEnum):
    RECORDING = "recording"  # being written (or the server died while writing it)
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"  # a write error stopped it; what it holds is kept
    RECOVERED = "recovered"  # found unfinished at start-up and repaired


class RecordingSegment(Base):
    """A stretch of the hearing timeline that was recorded: from a start or resume to the
    next recess or close. Gaps between segments are the recesses."""

    __tablename__ = "recording_segments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    hearing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hearings.id"), index=True)
    index: Mapped[int]
    start: Mapped[float]
    end: Mapped[float | None]


class Recording(Base):
    """One participant's file of one segment (`participant_id` set) or the review composite."""

    __tablename__ = "recordings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    hearing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hearings.id"), index=True)
    participant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("participants.id"))
    kind: Mapped[str] = mapped_column(String(16))  # "participant" or "composite"
    segment: Mapped[int | None]
    # Relative to the data directory; never taken from a request.
    path: Mapped[str] = mapped_column(String(400), unique=True)
    media_type: Mapped[str] = mapped_column(String(64))
    codecs: Mapped[str] = mapped_column(String(64))
    offset: Mapped[float]
    duration: Mapped[float] = mapped_column(default=0.0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[RecordingStatus] = mapped_column(_enum(RecordingStatus, "recording_status"))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # A file cut short by a crash is repaired beside itself: `path` is then the repaired
    # file (the one played), and these keep the bytes as captured, hashed too.
    captured_path: Mapped[str | None] = mapped_column(String(400))
    captured_size: Mapped[int | None] = mapped_column(BigInteger)
    captured_sha256: Mapped[str | None] = mapped_column(String(64))


class TrialRecordLine(Base):
    """A line of the trial record (庭审笔录): who said what, when on the hearing timeline.

    `version` 1 is the live record; each retranscription of the recordings adds the next
    version. `revision` counts the clerk's corrections of this line.
    """

    # Table and column names predate the class names; kept to spare a migration.
    __tablename__ = "transcript_segments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    hearing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hearings.id"), index=True)
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"))
    version: Mapped[int] = mapped_column(default=1)
    start: Mapped[float]
    end: Mapped[float]
    text: Mapped[str] = mapped_column(String(4000))
    language: Mapped[str] = mapped_column(String(8))
    words: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Transcribed afterwards from the recording (the live recognizer was down meanwhile).
    recovered: Mapped[bool] = mapped_column(default=False, server_default=false())
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LineRevision(Base):
    """One correction of a trial record line: who, when, before and after."""

    __tablename__ = "segment_revisions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    line_id: Mapped[uuid.UUID] = mapped_column(
        "segment_id", ForeignKey("transcript_segments.id"), index=True
    )
    revision: Mapped[int]
    author: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    before: Mapped[str] = mapped_column(String(4000))
    after: Mapped[str] = mapped_column(String(4000))


class Exhibit(Base):
    """A document or picture presented in a hearing (举证): a PDF, PNG or JPEG file."""

    __tablename__ = "exhibits"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    hearing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hearings.id"), index=True)
    # None when staff uploaded it with the admin token.
    participant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("participants.id"))
    title: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    pages: Mapped[int]
    # Relative to the data directory; built from the hash, never taken from a request.
    path: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffRole(enum.StrEnum):
    """What a member of staff does in the court; an account may hold several."""

    ADMINISTRATOR = "administrator"  # courts, rooms, terminals and accounts
    CLERK = "clerk"  # schedules hearings and keeps their record
    JUDGE = "judge"  # runs, reviews and seals their hearings
    SUPERVISOR = "supervisor"  # watches hearings of their court


class StaffAccount(Base):
    """A member of staff who signs in with a login and a password (only its argon2 hash is
    kept). Never deleted, so that the audit's `account:<id>` always names someone; disabled
    instead, which ends every session at once."""

    __tablename__ = "staff_accounts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    name: Mapped[str] = mapped_column(String(200))
    # Compared case-folded: kept as typed at creation, `login_key` folded and unique.
    login: Mapped[str] = mapped_column(String(64))
    login_key: Mapped[str] = mapped_column(String(64), unique=True)
    court_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("courts.id"), index=True)
    # StaffRole values, in their declared order.
    roles: Mapped[list[str]] = mapped_column(JSON)
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def actor(self) -> str:
        """How the audit names what this account does."""
        return f"account:{self.id}"

    @property
    def staff_roles(self) -> frozenset[StaffRole]:
        return frozenset(StaffRole(r) for r in self.roles)

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


class StaffSession(Base):
    """A signed-in member of staff's browser session. The cookie holds a secret; only its
    SHA-256 is stored. It ends at sign-out, after `idle` without use, or at `expires_at`."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the secret
    actor: Mapped[str] = mapped_column(String(200))
    # The account signed in; None for a session opened with the admin token (bootstrap).
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("staff_accounts.id"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class ApiToken(Base):
    """A named bearer token of an integration (a case management system, a prison's booking
    service): it may do what its scopes grant (courtrooms/access.py), over its court's hearings
    or every court's. Only the secret's SHA-256 is kept: the secret is random (256 bits), so a
    fast hash cannot be reversed by guessing, and a slow one would cost every request. Revoked,
    never deleted, so that the audit's `token:<id>` always names one."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=_new_id)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Scope values, in their declared order.
    scopes: Mapped[list[str]] = mapped_column(JSON)
    court_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("courts.id"), index=True)
    # Who created it, as the audit names them (`account:<id>`, `admin`, `system:cli`).
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    @property
    def actor(self) -> str:
        """How the audit names what this token does."""
        return f"token:{self.id}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class AuditEvent(Base):
    """One link of the append-only audit chain: `hash` covers the event and `prev_hash`."""

    __tablename__ = "audit_events"

    # Assigned by the chain itself (previous seq + 1), never by the database.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    hearing_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

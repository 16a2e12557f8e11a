"""Validated inputs and outputs of the registry. The web layer also documents the API with them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from courtrooms.access import Scope
from courtrooms.models import (
    ID_DIGITS_ROLES,
    HearingKind,
    HearingState,
    Location,
    RecordingStatus,
    Role,
    StaffRole,
)

MAX_HEARING_LENGTH = timedelta(days=7)
MAX_PAGE = 200
# Past this an OFFSET no longer fits the databases' 64-bit integers; no page is that far.
MAX_OFFSET = 2**31 - 1
# Times outside these years overflow UTC conversion or a join window's lead.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _printable(value: str) -> str:
    # Control characters and lone surrogates cannot be stored in PostgreSQL text and have no
    # place in a court record; refuse them here rather than fail in the database.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("must be valid Unicode text") from e
    return value


_Printable = AfterValidator(_printable)


def _limit(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


Name = Annotated[str, _limit(200), _Printable]
CaseNumber = Annotated[str, _limit(100), _Printable]
Title = Annotated[str, _limit(300), _Printable]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
# A participant's own language: a code like the hearing's, or "auto" (detected utterance by
# utterance: an interpreter speaks both).
ParticipantLanguage = Annotated[str, StringConstraints(pattern=r"^([a-z]{2,3}|auto)$")]

ID_DIGITS_PATTERN = "^[0-9]{3}[0-9Xx]$"


def _id_digits(value: str) -> str:
    if re.fullmatch(ID_DIGITS_PATTERN, value) is None:
        raise ValueError("must be the last 4 characters of the ID number: 4 digits, or 3 "
                         "digits and X")
    return value.upper()


# The last 4 characters of a Chinese resident ID number (the last may be X), kept as X.
IdNumberLast4 = Annotated[
    str,
    AfterValidator(_id_digits),
    WithJsonSchema({"type": "string", "pattern": ID_DIGITS_PATTERN, "writeOnly": True}),
]


def _utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the supported years 1900-8999") from None
    if not EARLIEST <= value < LATEST:
        raise ValueError("is outside the supported years 1900-8999")
    return value


# An aware time, returned in UTC as it is stored.
Moment = Annotated[AwareDatetime, AfterValidator(_utc)]


class Input(BaseModel):
    """A request body: unknown fields are refused, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CourtIn(Input):
    name: Name


class CourtPatch(Input):
    name: Name | None = None


class CourtOut(Output):
    id: uuid.UUID
    name: str
    created_at: datetime


class CourtroomIn(Input):
    court_id: uuid.UUID
    name: Name


class CourtroomPatch(Input):
    name: Name | None = None


class CourtroomOut(Output):
    id: uuid.UUID
    court_id: uuid.UUID
    name: str
    created_at: datetime


class PrisonTerminalIn(Input):
    name: Name
    prison: Name


class PrisonTerminalPatch(Input):
    name: Name | None = None
    prison: Name | None = None


class PrisonTerminalOut(Output):
    id: uuid.UUID
    name: str
    prison: str
    created_at: datetime


class PrisonTerminalCreated(PrisonTerminalOut):
    device_key: str = Field(description="Shown once; only its hash is kept")


def check_window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None:
        if end <= start:
            raise ValueError("scheduled_end must be after scheduled_start")
        if end - start > MAX_HEARING_LENGTH:
            raise ValueError("a hearing may be scheduled for at most 7 days")


class HearingIn(Input):
    case_number: CaseNumber
    title: Title
    kind: HearingKind
    courtroom_id: uuid.UUID | None = None
    court_id: uuid.UUID | None = Field(
        None, description="The court hearing it: its courtroom's (then this may be left out), "
        "else the scheduling clerk's")
    judge_account_id: uuid.UUID | None = Field(
        None, description="The judge's staff account: they see, run, review and seal it, and "
        "enter it from their hearings without a link; their other hearings are found by it "
        "for schedule conflicts")
    clerk_account_id: uuid.UUID | None = Field(
        None, description="The clerk's staff account (the scheduling clerk's when left out)")
    scheduled_start: Moment
    scheduled_end: Moment
    language: Language | None = None
    auto_admit: bool = False

    @field_validator("scheduled_end")
    @classmethod
    def _window(cls, end: datetime, info: ValidationInfo) -> datetime:
        check_window(info.data.get("scheduled_start"), end)
        return end


NULLABLE_PATCH = frozenset({"courtroom_id", "judge_account_id", "clerk_account_id"})


class HearingPatch(Input):
    """Only the fields present change; `courtroom_id: null` unassigns the courtroom (and
    `judge_account_id: null` or `clerk_account_id: null` the judge's or clerk's account)."""

    case_number: CaseNumber | None = None
    title: Title | None = None
    kind: HearingKind | None = None
    courtroom_id: uuid.UUID | None = None
    judge_account_id: uuid.UUID | None = None
    clerk_account_id: uuid.UUID | None = None
    scheduled_start: Moment | None = None
    scheduled_end: Moment | None = None
    language: Language | None = None
    auto_admit: bool | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> HearingPatch:
        for name in self.model_fields_set - NULLABLE_PATCH:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


def _states(value: Any) -> Any:
    # One query parameter, comma-separated: `state=open,in_session,recess`.
    if isinstance(value, HearingState):
        return (value,)
    if not isinstance(value, str):
        return value
    states = []
    for part in value.split(","):
        try:
            states.append(HearingState(part.strip()))
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a hearing state; use "
                             + ", ".join(s.value for s in HearingState)) from None
    return tuple(states)


HearingStates = Annotated[
    tuple[HearingState, ...],
    BeforeValidator(_states),
    Field(min_length=1),
    WithJsonSchema({
        "type": "string",
        "pattern": "^[a-z_]+(,[a-z_]+)*$",
        "description": "One state or several, comma-separated: "
                       + ", ".join(s.value for s in HearingState),
    }),
]


class HearingQuery(BaseModel):
    """Query string of the hearing list: hearings whose window overlaps [from, to)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    from_: Moment | None = Field(default=None, alias="from")
    to: Moment | None = None
    courtroom_id: uuid.UUID | None = None
    terminal_id: uuid.UUID | None = None
    state: HearingStates | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class CourtroomQuery(PageQuery):
    court_id: uuid.UUID | None = None


class AuditQuery(PageQuery):
    hearing_id: uuid.UUID | None = None


# Whose seat may be a staff account's: the bench's.
ACCOUNT_ROLES = {Role.JUDGE: StaffRole.JUDGE, Role.CLERK: StaffRole.CLERK}


class ParticipantIn(Input):
    name: Name | None = Field(
        default=None, description="How they are named in the hearing and the record; left out "
        "for a judge or clerk given by `account_id`, who is named by the account")
    role: Role
    location: Location
    terminal_id: uuid.UUID | None = None
    language: ParticipantLanguage | None = Field(
        default=None,
        description="The language they speak when it is not the hearing's (a foreign "
        "defendant), or 'auto' to detect it per utterance (an interpreter); their lines in "
        "the record are recognized in it and marked with it. None: the hearing's",
    )
    id_number_last4: IdNumberLast4 | None = Field(
        default=None,
        description="The last 4 characters of the participant's ID number, when the court has "
        "them: asked for on the join page at each join. Write-only: only a salted hash is "
        "kept, and no answer carries them (`id_digits_on_file` says whether they are). Not "
        "for the judge, the clerk or an observer",
    )
    interprets_for_id: uuid.UUID | None = Field(
        default=None,
        description="For an interpreter: the participant of this hearing they interpret for (a "
        "defendant, a party or a witness, invited first). Shown in the court's list, the "
        "review and the trial record",
    )

    account_id: uuid.UUID | None = Field(
        default=None,
        description="For a judge or clerk: their staff account (of the hearing's court, with "
        "that role). The participant is then the account's seat, named by it: the account "
        "enters from its hearings (`POST /hearings/{id}/enter`) without a link, schedule "
        "conflicts are found by the account, and the hearing's `judge_account_id` (or "
        "`clerk_account_id`) is this account",
    )

    @model_validator(mode="after")
    def _named_once(self) -> ParticipantIn:
        if self.account_id is not None:
            if self.role not in ACCOUNT_ROLES:
                raise ValueError(f"account_id: only a judge's or clerk's seat is a staff "
                                 f"account's, not a {self.role.value}'s")
            if self.name is not None:
                raise ValueError("name: a participant given by account_id is named by the "
                                 "account; leave name out")
        elif self.name is None:
            raise ValueError("name is required (or, for a judge or clerk, account_id)")
        return self

    @field_validator("terminal_id")
    @classmethod
    def _terminal_only_in_prison(
        cls, terminal_id: uuid.UUID | None, info: ValidationInfo
    ) -> uuid.UUID | None:
        if terminal_id is not None and info.data.get("location") is not Location.PRISON:
            raise ValueError("terminal_id is only for a participant whose location is prison")
        return terminal_id

    @field_validator("id_number_last4")
    @classmethod
    def _id_digits_for_parties(cls, digits: str | None, info: ValidationInfo) -> str | None:
        role = info.data.get("role")
        if digits is not None and role is not None and role not in ID_DIGITS_ROLES:
            raise ValueError(f"a {role.value} is not asked for ID number digits at the join")
        return digits

    @field_validator("interprets_for_id")
    @classmethod
    def _only_interpreters(cls, party: uuid.UUID | None, info: ValidationInfo
                           ) -> uuid.UUID | None:
        role = info.data.get("role")
        if party is not None and role is not None and role is not Role.INTERPRETER:
            raise ValueError(f"only an interpreter interprets for someone, not a {role.value}")
        return party


class ParticipantOut(Output):
    id: uuid.UUID
    hearing_id: uuid.UUID
    name: str
    role: Role
    location: Location
    terminal_id: uuid.UUID | None
    may_review: bool = False
    language: str | None = None
    id_digits_on_file: bool = Field(
        default=False, description="Whether the last digits of their ID number are on file "
        "(asked for at the join); the digits themselves are never returned")
    interprets_for_id: uuid.UUID | None = Field(
        default=None, description="An interpreter's party: the participant they interpret for")
    account_id: uuid.UUID | None = Field(
        default=None, description="A judge's or clerk's staff account, whose seat this is")
    created_at: datetime


class ParticipantInvited(ParticipantOut):
    token: str = Field(description="Join token, shown once; only its hash is kept")
    join_url: str


class TokenIssued(BaseModel):
    participant_id: uuid.UUID
    token: str
    join_url: str
    valid_from: datetime


class HearingOut(Output):
    id: uuid.UUID
    case_number: str
    title: str
    kind: HearingKind
    state: HearingState
    courtroom_id: uuid.UUID | None
    court_id: uuid.UUID | None = None
    judge_account_id: uuid.UUID | None = None
    clerk_account_id: uuid.UUID | None = None
    scheduled_start: datetime
    scheduled_end: datetime
    language: str
    auto_admit: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    closed_at: datetime | None
    interrupted_at: datetime | None = Field(
        None, description="When the server holding the hearing in session stopped "
        "unexpectedly: the hearing was put in recess until the court resumes or closes it")


class HearingDetail(HearingOut):
    participants: list[ParticipantOut]


class JoinGrantOut(BaseModel):
    """What a join token opens: the participant and their hearing."""

    participant: ParticipantOut
    hearing: HearingOut


class TerminalSigning(BaseModel):
    """A closed hearing's record the terminal's detainee has still to sign or refuse."""

    hearing: HearingOut
    participant: ParticipantOut
    token: str = Field(description="The terminal's join token for it (the one its kiosk "
                       "joined with): the signing page's credential")
    sign_url: str = Field(description="The signing page, the token in its fragment")


class TerminalAssignment(BaseModel):
    """A prison terminal's current or next hearing, with a join token inside its window."""

    terminal: PrisonTerminalOut
    hearing: HearingOut | None
    participant: ParticipantOut | None
    opens_at: datetime | None
    token: str | None
    join_url: str | None
    signing: list[TerminalSigning] = Field(
        default_factory=list, description="Closed hearings (of the last 3 days) whose record "
        "the detainee at this terminal has still to sign or refuse, newest first")


class AuditEventOut(Output):
    seq: int
    at: datetime
    actor: str
    actor_name: str | None = Field(default=None, description="The account's name, when an "
                                   "account acted (`account:<id>`, or a judge's or clerk's "
                                   "seat it entered, `participant:<id>` with "
                                   "`data.actor_account_id`), as it is now")
    action: str
    hearing_id: uuid.UUID | None
    data: dict[str, Any]
    hash: str
    prev_hash: str


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


# -- recordings ---------------------------------------------------------------------------


class RecordingOut(Output):
    id: uuid.UUID
    participant_id: uuid.UUID | None
    participant_name: str | None = None
    role: Role | None = None
    kind: str = Field(description="`participant` (one participant, one segment) or `composite`")
    segment: int | None
    media_type: str
    codecs: str
    offset: float = Field(description="Start on the hearing timeline, in seconds")
    duration: float
    size: int
    sha256: str
    status: RecordingStatus
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    captured_size: int | None = Field(
        None, description="A file repaired after a crash: the size of the file as captured, "
        "kept beside the repaired one (which `url` plays)")
    captured_sha256: str | None = Field(None, description="The sha256 of that captured file")
    url: str = ""


class RecordingSegmentOut(Output):
    index: int
    start: float = Field(description="Seconds on the hearing timeline; gaps are recesses")
    end: float | None


class CompositeStatus(BaseModel):
    state: str = Field(description="`idle`, `rendering`, `done` or `failed`")
    progress: float = Field(ge=0, le=1)
    error: str | None = None


class TimelineEvent(BaseModel):
    at: float = Field(description="Seconds on the hearing timeline")
    action: str = Field(description="`participant.muted`, `participant.unmuted`, "
                        "`consultation.started` or `consultation.ended`")
    participant_ids: list[uuid.UUID]


class RecordingList(BaseModel):
    timeline_origin: datetime | None = Field(
        description="The wall-clock instant that is 0 on the hearing timeline"
    )
    segments: list[RecordingSegmentOut]
    events: list[TimelineEvent] = Field(
        description="What the court did that the recordings show as an absence: audio muted "
        "by the court (neither recorded nor transcribed) and private consultations")
    items: list[RecordingOut]
    manifest_sha256: str
    composite: CompositeStatus


class ReviewPermission(Input):
    may_review: bool


# -- the trial record ---------------------------------------------------------------------


class TranscriptLine(Output):
    id: uuid.UUID
    participant_id: uuid.UUID
    participant: str = ""
    role: Role | None = None
    start: float = Field(description="Seconds on the hearing timeline")
    end: float
    text: str
    language: str
    revision: int = Field(description="1 as recognized; each revision adds one (a "
                                      "person's correction, or settling's)")
    corrections: int = Field(default=0, description="Revisions by people")
    settled: bool = Field(default=False, description="Revised by settling: the recognizer "
                          "decoded the recording again behind the live lines")
    words: list[Any] = Field(description="[word, start, end, probability] as recognized")
    recovered: bool = Field(
        default=False, description="Transcribed from the recording after the live "
                                   "transcriber failed, to fill the gap it left")


# -- signing the record (courtrooms/signing.py) ------------------------------------------------

Reason = Annotated[str, _limit(500), _Printable]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class SignatureIn(Input):
    record_sha256: Sha256
    signature_png: Annotated[str, StringConstraints(
        # A PNG's base64 always begins with its signature's, iVBORw0KGgo.
        pattern=r"^iVBORw0KGgo[A-Za-z0-9+/]*={0,2}$", max_length=400_000)] = Field(
        description="The drawn signature, a PNG in base64")
    id_digits: IdNumberLast4 | None = Field(
        default=None, description="The last 4 characters of the signer's ID number, when the "
        "court has them on file (the signing state's `id_digits`): checked as at the join, "
        "with the same tries and lockout")


class RefusalIn(Input):
    reason: Reason
    participant_id: uuid.UUID | None = Field(
        default=None, description="Noted by the judge or clerk for another participant")
    id_digits: IdNumberLast4 | None = Field(
        default=None, description="A participant's own refusal, as a signature: the last 4 "
        "characters of their ID number when the court has them on file")


class CorrectionRequestIn(Input):
    line_id: uuid.UUID
    text: Annotated[str, _limit(4000), _Printable]
    reason: Reason | None = None


class DecisionIn(Input):
    accept: bool
    reason: Reason | None = None



class RecordEditIn(Input):
    """A structural edit of the record by the clerk: it makes the record's next version."""

    action: Literal["delete", "insert", "speaker", "merge", "split"]
    line_ids: list[uuid.UUID] = Field(default=[], max_length=2, description=(
        "delete, speaker, split: one line; merge: two lines next to each other"))
    participant_id: uuid.UUID | None = Field(
        default=None, description="insert, speaker: who said it")
    text: Annotated[str, _limit(4000), _Printable] | None = Field(
        default=None, description="insert: the words")
    start: Annotated[float, Field(ge=0, le=1e6)] | None = Field(
        default=None, description="insert: seconds on the hearing timeline")
    end: Annotated[float, Field(ge=0, le=1e6)] | None = None
    at: Annotated[int, Field(ge=1, le=4000)] | None = Field(
        default=None, description="split: where the text is cut (characters)")
    reason: Reason | None = None


class VersionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None, description="The version to read; the newest when omitted")


class RecordVersionOut(Output):
    version: int
    lines: int
    made_by: str | None = Field(description="Who edited it; null for the live record and "
                                "retranscriptions")
    made_by_name: str | None = Field(default=None, description="The account's name, when an "
                                     "account edited it")
    at: datetime | None
    edit: str | None = Field(description="delete, insert, speaker, merge or split")
    from_version: int | None
    reason: str | None


class RecordVersionList(BaseModel):
    items: list[RecordVersionOut]


class UntranscribedOut(Output):
    participant_id: uuid.UUID
    participant: str = ""
    role: Role | None = None
    start: float = Field(description="Seconds on the hearing timeline")
    end: float | None = Field(description="None: until the hearing's end")


class Transcript(BaseModel):
    version: int = Field(description="1 is the live record; each retranscription adds one")
    items: list[TranscriptLine]
    untranscribed: list[UntranscribedOut] = Field(
        default=[], description="Speech of the live record's version that could not be "
        "transcribed, live or from the recording: the documents note it where it happened")


class LineCorrection(Input):
    # Published under its earlier name: clients generated from the OpenAPI document use it.
    model_config = ConfigDict(title="SegmentCorrection")

    text: Annotated[str, _limit(4000), _Printable]


class RevisionOut(Output):
    revision: int
    author: str
    author_name: str | None = Field(default=None, description="The account's name, when an "
                                    "account corrected it")
    at: datetime
    before: str
    after: str


class RevisionList(BaseModel):
    items: list[RevisionOut]


LOGIN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$"
Login = Annotated[str, StringConstraints(pattern=LOGIN_PATTERN)]
MIN_PASSWORD_LENGTH = 10
# Long enough for any passphrase, short enough that hashing one is no burden.
MAX_PASSWORD_LENGTH = 256
Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH,
                                json_schema_extra={"writeOnly": True})]


class SignIn(Input):
    """A member of staff's login and password; or, to set up the server, the admin token."""

    login: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    password: Password | None = None
    token: Annotated[str, Field(min_length=1, max_length=512)] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SignIn:
        if self.token is not None:
            if self.login is not None or self.password is not None:
                raise ValueError("sign in with a login and password, or with the token alone")
        elif self.login is None or self.password is None:
            raise ValueError("a login and a password are required")
        return self


class StaffAccountIn(Input):
    """A new staff account (its password is given apart, never stored as given)."""

    name: Name
    login: Login
    court_id: uuid.UUID | None = None
    roles: Annotated[list[StaffRole], Field(min_length=1, max_length=len(StaffRole))]

    @field_validator("roles")
    @classmethod
    def _distinct(cls, roles: list[StaffRole]) -> list[StaffRole]:
        if len(set(roles)) != len(roles):
            raise ValueError("each role at most once")
        return roles


class StaffAccountOut(Output):
    id: uuid.UUID
    name: str
    login: str
    court_id: uuid.UUID | None
    roles: list[StaffRole]
    disabled: bool


class BenchAccountOut(Output):
    """A judge or clerk a hearing may be given: their account, never its login."""

    id: uuid.UUID
    name: str
    court_id: uuid.UUID | None
    roles: list[StaffRole]


class BenchAccountQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    court_id: uuid.UUID | None = Field(
        default=None, description="Only this court's (and those of no court); a clerk gets "
        "their own court's whatever this says")
    role: Literal["judge", "clerk"] | None = None


class BenchAccountList(BaseModel):
    items: list[BenchAccountOut]


class StaffSessionOut(BaseModel):
    signed_in: bool = Field(description="Whether the request's cookie holds a live session")
    ended: bool = Field(default=False, description="A cookie was sent whose session has ended "
                                                   "(signed out, idle or expired)")
    actor: str | None = None
    account: StaffAccountOut | None = Field(
        default=None, description="The account signed in (none for the admin token)")
    csrf_token: str | None = Field(
        default=None, description="Send as X-CSRF-Token with every state-changing request")
    idle_minutes: float | None = Field(
        default=None, description="The session ends after this long without use")
    expires_at: datetime | None = Field(
        default=None, description="The session ends then whatever its use")


class LinkRequest(Input):
    path: Annotated[str, Field(min_length=1, max_length=400,
                               description="An API path of the hearing to open, no query")]


class LinkOut(BaseModel):
    url: str = Field(description="The path with a signed, short-lived link for the caller")
    expires_at: datetime


MAX_TOKEN_NAME = 100
TokenName = Annotated[str, _limit(MAX_TOKEN_NAME), _Printable]


class ApiTokenIn(Input):
    """A new API token for an integration: what it is called, what it may do and, if it is
    one court's, which court's hearings."""

    name: TokenName = Field(description="Who uses it, e.g. 案件管理系统; unique among tokens "
                                        "not revoked")
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(Scope))]
    court_id: uuid.UUID | None = Field(default=None,
                                       description="Only this court's hearings (none: all)")

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[Scope]) -> list[Scope]:
        if len(set(scopes)) != len(scopes):
            raise ValueError("each scope at most once")
        return scopes


class ApiTokenOut(Output):
    """An API token as listed: never its secret (only its hash is kept)."""

    id: uuid.UUID
    name: str
    scopes: list[Scope]
    court_id: uuid.UUID | None
    created_by: str = Field(description="Who created it, as the audit names them")
    created_by_name: str | None = Field(default=None,
                                        description="Their account's name, read now")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Its last request (noted at most once "
                                                      "a minute)")
    revoked_at: datetime | None
    revoked: bool


class ApiTokenCreated(ApiTokenOut):
    secret: str = Field(description="The bearer token: shown this once, never again")


class ApiTokenList(BaseModel):
    items: list[ApiTokenOut]

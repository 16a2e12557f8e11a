"""Protocol version 1 (docs/signaling.md): inbound messages are validated models.

Every inbound message is a JSON object with a `type`; an optional `ref` (a short string) is
echoed in the reply or error so that clients can match them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from signaling.errors import SignalingError

PROTOCOL_VERSION = 1
MAX_SDP_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 256 * 1024
Ref = Annotated[str, StringConstraints(max_length=64)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Inbound(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    ref: Ref | None = None


# A browser's own random id: `device` kept in its storage, `session` for as long as the tab
# lives. An identity check holds for the device and session it was made on: a reconnect keeps
# it, a new device or a new browser session asks for it again.
ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
# The last 4 characters of the participant's ID number (the last may be X), when the court has
# them on file: a party joins with them (docs/signaling.md).
IdDigits = Annotated[str, StringConstraints(min_length=4, max_length=4,
                                            pattern=r"^[0-9]{3}[0-9Xx]$")]


class Join(Inbound):
    type: Literal["join"]
    v: Literal[1] = 1
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    device_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    device: ClientId | None = None
    session: ClientId | None = None
    id_digits: IdDigits | None = None

    @field_validator("v", mode="before")
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        # Literal[1] alone also takes true and 1.0, which equal 1.
        if type(value) is not int:
            raise ValueError(f"the protocol version is the integer {PROTOCOL_VERSION}")
        return value


class Answer(Inbound):
    type: Literal["answer"]
    sdp: str = Field(min_length=1)


class IceCandidate(Inbound):
    type: Literal["ice"]
    candidate: Annotated[str, StringConstraints(max_length=1024)]
    sdp_mid: Annotated[str, StringConstraints(max_length=32)] | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=1024)] | None = None


class Mute(Inbound):
    """Mute or unmute yourself."""

    type: Literal["mute"]
    muted: bool


class Hand(Inbound):
    type: Literal["hand"]
    raised: bool


PARTICIPANT_ACTIONS = ("admit", "remove", "mute", "unmute")
HEARING_ACTIONS = ("open", "start", "recess", "resume", "close")


class Camera(Inbound):
    """Your camera is off (the client disabled its track) or on again."""

    type: Literal["camera"]
    off: bool


class Screen(Inbound):
    """Your video now carries your screen (the client replaced its camera track) or not."""

    type: Literal["screen"]
    sharing: bool


class Consult(Inbound):
    """Ask for a private consultation with `with`, or end yours (or withdraw the request)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)

    type: Literal["consult"]
    action: Literal["request", "end"]
    partner: Id | None = Field(default=None, alias="with")


class Present(Inbound):
    """Show an uploaded exhibit to everyone (or stop, with null), at a page of a PDF."""

    type: Literal["present"]
    exhibit_id: Id | None
    page: Annotated[int, Field(ge=1, le=100_000)] = 1


class Command(Inbound):
    """A judge's or clerk's command: on a participant, or on the hearing itself."""

    type: Literal["command"]
    action: Literal[
        "admit", "remove", "mute", "unmute", "open", "start", "recess", "resume", "close",
        "permit_review", "revoke_review",
        "grant_consultation", "deny_consultation", "end_consultation", "warn",
        "send_out", "release", "verify_identity", "refuse_identity", "open_signing",
    ]
    participant_id: Id | None = None
    # A warning's words, or why an identity check failed: said and kept in the audit.
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class Ping(Inbound):
    type: Literal["ping"]


class MediaRestart(Inbound):
    """Start a fresh peer connection (after a network change), keeping the seat."""

    type: Literal["media_restart"]


class Leave(Inbound):
    type: Literal["leave"]


Message = Annotated[
    Join | Answer | IceCandidate | Mute | Hand | Camera | Screen | Consult | Present | Command
    | Ping | MediaRestart | Leave,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[Message] = TypeAdapter(Message)
KNOWN_TYPES = ("join", "answer", "ice", "mute", "hand", "camera", "screen", "consult", "present",
               "command", "ping", "media_restart", "leave")


def parse(raw: str | bytes) -> Message:
    """Validate one inbound message or raise `SignalingError` naming the problem."""
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > MAX_MESSAGE_BYTES:
        raise SignalingError("too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise SignalingError("malformed_json", f"not valid JSON: {e}") from e
    except RecursionError as e:
        raise SignalingError("invalid", "the JSON is nested too deeply") from e
    if not isinstance(data, dict):
        raise SignalingError("invalid", "a message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise SignalingError("invalid", "a message needs a string type", field="type")
    if kind not in KNOWN_TYPES:
        raise SignalingError("unknown_type", f"unknown message type {kind[:40]!r}", field="type")
    sdp = data.get("sdp")
    if isinstance(sdp, str) and len(sdp.encode("utf-8", "surrogatepass")) > MAX_SDP_BYTES:
        raise SignalingError("sdp_too_large", f"SDP is limited to {MAX_SDP_BYTES} bytes",
                             field="sdp")
    try:
        return _adapter.validate_python(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        loc = [str(p) for p in first["loc"][1:]]  # drop the discriminator tag
        field = ".".join(loc) or None
        message = ("unknown field" if first["type"] == "extra_forbidden"
                   else first["msg"].removeprefix("Value error, "))
        raise SignalingError(
            "invalid", f"{kind}: {field + ': ' if field else ''}{message}", field=field
        ) from e


def ref_of(raw: str | bytes) -> str | None:
    """The `ref` of a message that failed validation, if it can be read, for the error reply."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    ref = data.get("ref") if isinstance(data, dict) else None
    return ref if isinstance(ref, str) and len(ref) <= 64 and _is_utf8(ref) else None


def _is_utf8(text: str) -> bool:
    """False for text with lone surrogates (a JSON escape like \\ud800): no frame can carry it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sendable(text: str) -> str:
    # An unknown field's name is echoed; a lone surrogate in it would fail the whole send.
    return text if _is_utf8(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def error(
    code: str, message: str, field: str | None = None, ref: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": _sendable(message)}
    if field is not None:
        out["field"] = _sendable(field)
    if ref is not None:
        out["ref"] = ref
    return out

"""Errors raised by the registry; the web layer turns each into a JSON error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class CourtroomsError(Exception):
    """Base of every registry error. `code` is stable and machine-readable."""

    code = "registry_error"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class InvalidInput(CourtroomsError):
    """A value is well-formed but not acceptable (e.g. an end before its start)."""

    code = "invalid"


class NotFound(CourtroomsError):
    code = "not_found"

    def __init__(self, entity: str, ident: object) -> None:
        super().__init__(f"{entity} {ident} does not exist")
        self.entity = entity


class InvalidTransition(CourtroomsError):
    """A hearing cannot move from its current state by the asked action."""

    code = "invalid_transition"

    def __init__(self, action: str, current_state: str) -> None:
        super().__init__(
            f"cannot {action} a hearing that is {current_state}", current_state=current_state
        )
        self.current_state = current_state


class ScheduleConflict(CourtroomsError):
    """The hearing would double-book a courtroom, a judge or a prison terminal."""

    code = "schedule_conflict"

    def __init__(self, conflicts: Sequence[dict[str, Any]]) -> None:
        what = ", ".join(sorted({c["resource"] for c in conflicts}))
        super().__init__(
            f"double-booked {what} in an overlapping window", conflicts=list(conflicts)
        )
        self.conflicts = list(conflicts)


class InUse(CourtroomsError):
    """An entity cannot be deleted because the record refers to it."""

    code = "in_use"


class NotEditable(CourtroomsError):
    """The hearing's state no longer allows this change."""

    code = "not_editable"


class AccessDenied(CourtroomsError):
    """A token or device key is unknown, revoked or outside its window."""

    code = "access_denied"


class NotPermitted(AccessDenied):
    """A member of staff's account lacks the role, or the hearing is not theirs (access.py)."""

    code = "not_permitted"


class HearingFinished(AccessDenied):
    """The hearing is closed or cancelled: nobody can join it any more."""

    code = "hearing_finished"


class IdDigitsRequired(AccessDenied):
    """The participant's ID number digits are on file: the join must carry them."""

    code = "id_digits_required"


class IdDigitsWrong(AccessDenied):
    """The digits given are not the ones on file; `tries_left` before the lockout."""

    code = "id_digits_wrong"


class IdDigitsLocked(AccessDenied):
    """Too many wrong digits: no join of this participant is tried until `locked_until`."""

    code = "id_digits_locked"


class AuditChainBroken(CourtroomsError):
    code = "audit_chain_broken"


class RecordSealed(NotEditable):
    """The judge sealed the trial record: it takes no corrections and no second seal."""

    code = "record_sealed"


class InvalidExhibit(InvalidInput):
    """An exhibit file is not what it claims to be, or cannot be read."""

    code = "invalid_exhibit"


class ExhibitTooLarge(CourtroomsError):
    code = "exhibit_too_large"


class QuotaExceeded(CourtroomsError):
    """A participant's or a hearing's exhibits would pass their quota; `quota` names which."""

    code = "quota_exceeded"


class UnknownPage(NotFound):
    code = "unknown_page"

    def __init__(self, page: int, pages: int) -> None:
        CourtroomsError.__init__(
            self, f"page {page} does not exist; the exhibit has pages 1 to {pages}", field="n"
        )
        self.entity = "Page"


class SigningKeyError(CourtroomsError):
    """The audit's signing key cannot be read or created; the message names the file."""

    code = "signing_key"


class LoginTaken(InvalidInput):
    """Another staff account has this login (logins compare case-folded)."""

    code = "login_taken"


class SignInRefused(AccessDenied):
    """A login and password that do not open an account: unknown, wrong or disabled (the
    caller is not told which)."""

    code = "sign_in_refused"

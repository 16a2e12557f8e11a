"""Errors of the signaling protocol; each becomes an `error` message on the socket."""

from __future__ import annotations


class SignalingError(Exception):
    """A message was refused. The connection stays up unless the caller decides otherwise."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotAdmitted(SignalingError):
    def __init__(self, what: str) -> None:
        super().__init__("not_admitted", f"{what} is refused until the judge admits you")


class Forbidden(SignalingError):
    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message)

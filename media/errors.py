"""Errors raised by the media layer."""


class MediaError(Exception):
    """Base of every media error."""


class NegotiationError(MediaError):
    """An offer or answer could not be applied (malformed or incompatible SDP)."""


class UnsupportedAiortc(MediaError):
    """The installed aiortc is outside the range the adapter was written for."""

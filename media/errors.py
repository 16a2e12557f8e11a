"""Errors raised by the media layer."""


class MediaError(Exception):
    """Base of every media error."""


class NegotiationError(MediaError):
    """An offer or answer could not be applied (malformed or incompatible SDP)."""


class UnsupportedAiortc(MediaError):
    """The installed aiortc is outside the range the adapter was written for."""


class CompositeError(MediaError):
    """The composite could not be rendered (bad input, unreadable file, ffmpeg failure)."""


class CompositeCancelled(CompositeError):
    """The render was cancelled; nothing was left at the output path."""


class NoPicture(MediaError):
    """No still picture could be taken of a participant's video."""

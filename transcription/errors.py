"""Errors raised by the transcription package."""

from __future__ import annotations


class TranscriptionError(Exception):
    """Base of every transcription error."""


class ModelMissing(TranscriptionError):
    """The configured Whisper model is not installed; the message says what to install."""

    def __init__(self, model: str, message: str, packages: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.model = model
        self.packages = packages


class ModelCorrupt(TranscriptionError):
    """Model files are present but not what their package recorded (size mismatch)."""


class DeviceUnavailable(TranscriptionError):
    """Whisper was configured to run on CUDA and CTranslate2 cannot use a CUDA device."""


class InvalidAudio(TranscriptionError):
    """Audio handed to the pipeline is not 16 kHz mono PCM as a 1-D array."""


class UnknownSpeaker(TranscriptionError):
    """Audio was fed for a participant that was never added to the hearing's transcriber."""

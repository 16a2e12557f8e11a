"""Counts of what this process's signaling does, read by the operators' metrics."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field


@dataclass(slots=True)
class SignalingCounters:
    """Plain integer adds where signaling happens; read at scrape time."""

    websockets_open: int = 0
    # `error` messages sent to participants, by their code.
    errors_sent: collections.Counter[str] = field(default_factory=collections.Counter)


@dataclass(slots=True)
class TranscriptionCounters:
    """What went wrong in this process's live transcription, and what was recovered."""

    failures: int = 0  # a hearing's transcriber stopped for an error
    restarts: int = 0  # ... and a new one took over
    lines_recovered: int = 0  # lines transcribed from the recording to fill a gap
    recoveries_failed: int = 0
    lines_settled: int = 0  # live lines whose text settling revised
    lines_added_settled: int = 0  # lines settling found that the live lines missed
    settle_failures: int = 0  # settled lines that could not be stored

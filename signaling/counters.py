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

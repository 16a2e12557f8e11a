"""Totals of the media work done, read by the operators' metrics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class MediaCounters:
    """Frames and bytes forwarded and recorded, shared by the rooms of one process.

    Plain integer adds on the event loop, on the forwarding path: nothing more is affordable
    there. The counts only grow.
    """

    frames_forwarded: int = 0
    bytes_forwarded: int = 0
    # Frame payload handed to the recording writers (the container's overhead not counted).
    bytes_recorded: int = 0

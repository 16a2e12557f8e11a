"""Durable files: what the record holds must be on the disk, not in the page cache, before it
is hashed or marked complete (a power cut would otherwise leave a sealed hash of bytes that
were never written)."""

from __future__ import annotations

import os
from pathlib import Path


def sync_directory(directory: Path) -> None:
    """Make the directory's entries (a new or renamed file) survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_file(path: Path) -> None:
    """Flush the file's bytes to the disk (then rename it into place and sync its directory).
    Blocking: call it from a worker thread."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

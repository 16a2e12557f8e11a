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


def write_synced(path: Path, data: bytes) -> None:
    """`data` at `path`, whole or not at all, on the disk before this returns: written beside
    it, synced, renamed into place, the folder synced. Blocking: call it from a worker
    thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    sync_file(partial)
    os.replace(partial, path)
    sync_directory(path.parent)

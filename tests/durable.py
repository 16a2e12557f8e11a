"""Watching durability from a test: which files are fsynced, and when."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files `os.fsync` is called on from now on."""
    synced: list[Path] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced

"""Recording bookkeeping: hashing finished files without taking every worker thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

import courtrooms.recordings
from courtrooms.recordings import HASHING_AT_ONCE, FileOutcome, Recordings
from courtrooms.registry import Registry
from tests.courtrooms.builders import add_judge, add_remote, make_hearing

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_closing_many_files_hashes_a_few_at_a_time(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most = 0, 0
    lock = threading.Lock()
    real = courtrooms.recordings.file_sha256

    def slow_sha256(path: Path) -> str:  # a long recording
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return real(path)

    monkeypatch.setattr(courtrooms.recordings, "file_sha256", slow_sha256)
    recordings = Recordings(registry.db, registry.clock, tmp_path)
    hearing = await make_hearing(registry, 9, 11)
    people = [await add_judge(registry, hearing)] + [
        await add_remote(registry, hearing, name=f"律师{n}") for n in range(5)]
    _origin, index = await recordings.begin_segment(hearing.id, time.time())
    paths = []
    for n, person in enumerate(people):
        path = f"recordings/{hearing.id}/{n}.webm"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"webm %d" % n)
        await recordings.file_started(hearing.id, person.participant.id, index, path, 0.0)
        paths.append(path)
    await asyncio.gather(*(recordings.file_finished(p, FileOutcome(duration=1.0))
                           for p in paths))
    assert most == HASHING_AT_ONCE
    files, _ = await recordings.of_hearing(hearing.id)
    assert all(f.sha256 and f.status.value == "complete" for f in files)

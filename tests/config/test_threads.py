"""Named threads and the CPU each kind used (what /metrics splits the server's CPU by)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from config.threads import (
    cpu_seconds_by_kind,
    kind_of,
    name_this_thread,
    retire_this_thread,
    thread_cpu_seconds,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_named_thread_s_cpu_is_its_kind_s_while_it_runs_and_after_it_ends() -> None:
    name = "recorder-0123456789abcdef"  # longer than the kernel keeps
    running, finish = threading.Event(), threading.Event()
    seen: list[str] = []

    def work() -> None:
        name_this_thread(name)
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())
        try:
            burn(0.3)
            running.set()
            finish.wait(10)
        finally:
            retire_this_thread(name)

    before = cpu_seconds_by_kind()
    thread = threading.Thread(target=work)
    thread.start()
    assert running.wait(10)
    during = cpu_seconds_by_kind()
    finish.set()
    thread.join(10)
    after = cpu_seconds_by_kind()

    assert seen == [name[:15] + "\n"]
    # Clock ticks are 10 ms: 0.3 s of work shows as at least 0.25 s.
    assert during["recording"] - before["recording"] >= 0.25
    assert during["recognition"] == before["recognition"]
    # Gone from /proc, still counted: the totals only grow.
    assert after["recording"] >= during["recording"]
    assert set(after) == {"event_loop", "recognition", "audio_decoding", "recording", "other"}


def test_threads_are_known_by_the_prefix_of_their_name() -> None:
    assert kind_of("whisper") == kind_of("whisper-1") == "recognition"
    assert kind_of("whisperer") == "other"
    assert kind_of("audio-tap-ab12") == "audio_decoding"
    assert kind_of("python") == "other"


def test_the_main_thread_is_the_event_loop_s() -> None:
    before = cpu_seconds_by_kind()["event_loop"]
    burn(0.2)
    assert cpu_seconds_by_kind()["event_loop"] - before >= 0.15
    assert thread_cpu_seconds("recording") >= 0.0

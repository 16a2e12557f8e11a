"""Threads named for the kernel, and the CPU time each kind of thread used.

Python does not name its threads for the operating system, so `top -H` and `/proc` show every
thread as `python`. The server names the threads it starts (the kernel keeps 15 bytes), and a
thread a named thread starts inherits the name: CTranslate2's compute threads, started when the
model loads in the inference thread, are `whisper` too. `/metrics` and the benchmarks then
split the process's CPU by what it was spent on (docs/operations.md).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import os
import threading
import time
from pathlib import Path

PR_SET_NAME = 15
NAME_BYTES = 15
TASKS = Path("/proc/self/task")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# What a thread's kernel name says it does (the prefix before a `-`), and the main thread.
MAIN = "event_loop"
RECOGNITION = "recognition"
RECOGNITION_THREAD = "whisper"
KINDS = {RECOGNITION_THREAD: RECOGNITION, "audio": "audio_decoding", "recorder": "recording"}
OTHER = "other"

_libc: ctypes.CDLL | None = None
_retired: collections.defaultdict[str, float] = collections.defaultdict(float)
_retired_lock = threading.Lock()


def _prctl() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


def name_this_thread(name: str) -> None:
    """Give the calling thread `name` in the kernel (cut to 15 bytes); nothing off Linux."""
    libc = _prctl()
    if libc is not None and hasattr(libc, "prctl"):
        libc.prctl(PR_SET_NAME, name.encode()[:NAME_BYTES], 0, 0, 0)


def kind_of(name: str) -> str:
    return KINDS.get(name.split("-", 1)[0], OTHER)


def retire_this_thread(name: str) -> None:
    """Keep the CPU time of a named thread that is about to end (its /proc entry goes with
    it), so that the totals only grow."""
    spent = time.thread_time()
    with _retired_lock:
        _retired[kind_of(name)] += spent


def _threads() -> list[tuple[str, str, float]]:
    """(thread id, kernel name, CPU seconds) of each live thread; none where /proc is not."""
    out: list[tuple[str, str, float]] = []
    try:
        tasks = list(TASKS.iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name, _, rest = stat[stat.index("(") + 1:].rpartition(")")
        fields = rest.split()
        # utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
        out.append((task.name, name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS))
    return out


def cpu_seconds_by_kind() -> dict[str, float]:
    """Seconds of CPU (user + system) this process's threads used, by kind, since start:
    `event_loop` (the main thread), `recognition`, `audio_decoding`, `recording`, `other`."""
    totals: collections.defaultdict[str, float] = collections.defaultdict(float)
    main = str(os.getpid())
    for tid, name, seconds in _threads():
        totals[MAIN if tid == main else kind_of(name)] += seconds
    with _retired_lock:
        for kind, seconds in _retired.items():
            totals[kind] += seconds
    return {kind: totals.get(kind, 0.0) for kind in (MAIN, *KINDS.values(), OTHER)}


def thread_cpu_seconds(kind: str) -> float:
    """The CPU seconds so far of the live threads of one kind (e.g. `recognition`)."""
    return sum(seconds for _, name, seconds in _threads() if kind_of(name) == kind)

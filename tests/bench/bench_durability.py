"""Durability benchmark: what syncing every SQLite commit to the disk costs.

Run as `python -m tests.bench.bench_durability` (what `make bench` does). On one SQLite file
(WAL mode, as the server runs it) it times audited writes, `Registry.record` (one audit event
a transaction, what every admission, mute, state change and seal writes), with
`synchronous=FULL` (the server's setting: the WAL is synced at every commit) against
`synchronous=NORMAL` (synced only at checkpoints: the last commits can be lost in a power
cut). The two run interleaved, repetition by repetition, so both see the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from courtrooms.database import Database, migrate
from courtrooms.models import HearingKind
from courtrooms.registry import Registry
from courtrooms.schemas import HearingIn
from tests.bench.report import run_stamp, write_section

CLOCK = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MODES = ("NORMAL", "FULL")


async def timed_writes(url: str, mode: str, hearing_id: uuid.UUID, writes: int) -> float:
    db = Database(url, sqlite_synchronous=mode)
    try:
        registry = Registry(db, clock=lambda: CLOCK)
        await registry.record(hearing_id, "bench", "bench.warm_up")
        began = time.perf_counter()
        for n in range(writes):
            await registry.record(hearing_id, "bench", "bench.write", n=n)
        return time.perf_counter() - began
    finally:
        await db.aclose()


async def run(root: Path, writes: int, reps: int) -> dict[str, list[float]]:
    url = f"sqlite+aiosqlite:///{root / 'durability.db'}"
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    try:
        registry = Registry(db, clock=lambda: CLOCK)
        hearing = await registry.create_hearing(
            HearingIn(case_number="(2026)京01刑初1号", title="bench", kind=HearingKind.TRIAL,
                      scheduled_start=CLOCK, scheduled_end=CLOCK.replace(hour=10)),
            "bench", "zh")
    finally:
        await db.aclose()
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for rep in range(reps):
        for mode in MODES if rep % 2 == 0 else reversed(MODES):
            seconds[mode].append(await timed_writes(url, mode, hearing.id, writes))
    return seconds


def report(seconds: dict[str, list[float]], writes: int, reps: int, command: str,
           elapsed: float) -> str:
    rates = {mode: writes / median(seconds[mode]) for mode in MODES}
    ratios = [n / f for n, f in zip(seconds["NORMAL"], seconds["FULL"], strict=True)]
    cost_ms = 1000 * (median(seconds["FULL"]) - median(seconds["NORMAL"])) / writes
    return "\n".join([
        "## Durability: SQLite commits synced to the disk",
        "",
        run_stamp(command, f"Whole run {elapsed:.0f} s"),
        "",
        f"{reps} repetitions of {writes} audited writes (`Registry.record`: one audit event "
        "a transaction) on one SQLite file in WAL mode, `synchronous=FULL` (the server's "
        "setting) interleaved with `synchronous=NORMAL`. Medians.",
        "",
        "| synchronous | writes/s | ms a write |",
        "|---|---:|---:|",
        *[f"| {mode} | {rates[mode]:,.0f} | {1000 / rates[mode]:.2f} |" for mode in MODES],
        "",
        f"FULL ÷ NORMAL write rate: {median(ratios):.2f} (median of the per-repetition "
        f"ratios); FULL costs {cost_ms:.2f} ms more a commit. A live hearing commits a few "
        "audit events and trial record lines a second at most, so the server syncs every "
        "commit.",
    ]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_durability",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300, help="writes per repetition")
    parser.add_argument("--reps", type=int, default=6, help="repetitions per setting")
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/ alone")
    args = parser.parse_args(argv)
    command = " ".join(["python -m tests.bench.bench_durability", *(argv or sys.argv[1:])])
    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tingshen-bench-"))
    try:
        seconds = asyncio.run(run(root, args.writes, args.reps))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    body = report(seconds, args.writes, args.reps, command, time.perf_counter() - began)
    print(body)
    if not args.no_write:
        write_section("durability", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

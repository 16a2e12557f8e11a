"""What both sections of docs/benchmarks.md share: the command that writes them, and how
figures are printed."""

from __future__ import annotations

import statistics

COMMAND = ".venv/bin/python -m tests.bench.bench_forwarding"


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def pct2(x: float) -> str:
    return f"{x * 100:.2f}%"


def fps(values: list[float]) -> str:
    if not values:
        return "none"
    return f"{min(values):.1f} / {statistics.median(values):.1f}"


def and_list(sizes: list[int]) -> str:
    return " and ".join(str(n) for n in sizes)

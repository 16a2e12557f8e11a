"""docs/benchmarks.md: one section per benchmark, each replaced only by its own script."""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from zoneinfo import ZoneInfo

from config import Settings
from config.timezone import local_text

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
COURT_ZONE = ZoneInfo(Settings.model_fields["court_time_zone"].default)

HEADER = """# Benchmarks

Figures written by `make bench` (each section names the command that produced it). The
machines here are noisy 2-core boxes, so every figure that matters is a ratio against a
baseline measured in the same run; absolute rates are for orientation only.
"""


def median_rate(ops: int, seconds: list[float]) -> float:
    """Operations per second over the median repetition."""
    return ops / median(seconds)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


def run_stamp(command: str, extra: str = "") -> str:
    # People read it: in the court's time, as every document (the settings' default zone).
    now = local_text(datetime.now(UTC), COURT_ZONE, "en")
    lines = [f"Command: `{command}`  ", f"Date: {now}  ", f"Machine: {machine()}"]
    if extra:
        lines[-1] += "  "
        lines.append(extra)
    return "\n".join(lines)


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Put `body` between this benchmark's markers, leaving every other section as it is."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote the {name} section of {path.relative_to(ROOT)}", file=sys.stderr)

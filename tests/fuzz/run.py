"""Run an atheris harness of this folder for a bounded number of inputs, from pytest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fuzz(harness: str, runs: int, workdir: Path, seeds: list[bytes], *,
         max_len: int = 8192, max_seconds: int = 120) -> int:
    """Fuzz `tests.fuzz.<harness>` for `runs` inputs, starting from `seeds`; returns the inputs
    run. The corpus and any crash file go to `workdir`, never into the repository."""
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    result = subprocess.run(
        [sys.executable, "-m", f"tests.fuzz.{harness}", f"-runs={runs}", f"-max_len={max_len}",
         f"-max_total_time={max_seconds}", "-timeout=10", "-rss_limit_mb=2048",
         "-len_control=0", f"-artifact_prefix={workdir}/", str(corpus)],
        cwd=ROOT, capture_output=True, text=True, timeout=max_seconds + 60, check=False,
    )
    crashes = sorted(p.name for p in workdir.iterdir() if p.name.startswith(("crash-", "timeout-")))
    assert result.returncode == 0 and not crashes, (crashes, result.stderr[-4000:])
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done, result.stderr[-2000:]
    return int(done.group(1))

"""The machine's CPU, busy or idle, as `/proc/stat` tells it."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.machine import SAMPLE_S, MachineLoad


def stat(path: Path, user: int, system: int, idle: int, iowait: int = 0) -> None:
    path.write_text(f"cpu  {user} 0 {system} {idle} {iowait} 0 0 0 0 0\n"
                    "cpu0 1 2 3 4 5 6 7 8 9 10\n")


def test_the_busy_share_is_over_the_time_since_the_last_sample(tmp_path: Path) -> None:
    path = tmp_path / "stat"
    stat(path, user=100, system=50, idle=850)
    load = MachineLoad(path)
    assert load.read(now=0.0) == 0.0  # one sample says nothing yet
    stat(path, user=250, system=100, idle=900, iowait=50)  # 200 busy of 300
    assert load.read(now=0.5) == 0.0  # not read again so soon
    assert load.read(now=SAMPLE_S) == pytest.approx(200 / 300)
    stat(path, user=260, system=100, idle=990, iowait=50)  # 10 busy of 100
    assert load.read(now=2 * SAMPLE_S) == pytest.approx(0.1)


def test_an_unreadable_stat_reads_as_idle(tmp_path: Path) -> None:
    load = MachineLoad(tmp_path / "absent")
    assert load.read(now=0.0) == 0.0 and load.read(now=5.0) == 0.0


def test_this_machine_reads_between_idle_and_full() -> None:
    load = MachineLoad()
    load.read(now=0.0)
    sum(i * i for i in range(2_000_000))  # some CPU of our own between the samples
    assert 0.0 < load.read(now=SAMPLE_S) <= 1.0

"""How busy the whole machine is: what other processes (another worker, a render's ffmpeg, a
database) take counts as much as this process's own use."""

from __future__ import annotations

import time
from pathlib import Path

PROC_STAT = Path("/proc/stat")
SAMPLE_S = 1.0  # read at most this often; the busy share is over the time since the last read


def busy_jiffies(stat: Path = PROC_STAT) -> tuple[int, int]:
    """The machine's CPU time since boot as (busy, total), in clock ticks summed over its
    cores; raises OSError or ValueError where `stat` cannot be read."""
    with stat.open() as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user and nice)
    total = sum(fields[:8])
    return total - sum(fields[3:5]), total


class MachineLoad:
    """The share of all the machine's CPU time that was busy, from `/proc/stat`, over the last
    second or so (0.0 where `/proc/stat` cannot be read)."""

    def __init__(self, stat: Path = PROC_STAT) -> None:
        self._stat = stat
        self._read_at = float("-inf")
        self._last: tuple[int, int] | None = None  # (busy, total) jiffies
        self.busy = 0.0

    def read(self, now: float | None = None) -> float:
        """The busy share (0-1), sampled again when the last sample is SAMPLE_S old."""
        now = time.monotonic() if now is None else now
        if now - self._read_at < SAMPLE_S:
            return self.busy
        self._read_at = now
        try:
            sample: tuple[int, int] | None = busy_jiffies(self._stat)
        except (OSError, ValueError):
            sample = None
        if sample is not None and self._last is not None and sample[1] > self._last[1]:
            self.busy = (sample[0] - self._last[0]) / (sample[1] - self._last[1])
        self._last = sample
        return self.busy

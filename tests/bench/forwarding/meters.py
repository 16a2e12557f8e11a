"""What the benchmark measures with: CPU of the process, its threads and the machine, RTP
counters, and the event loop's lag."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_cpu_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def thread_cpu_seconds() -> dict[str, float]:
    """CPU of the main (event-loop) thread and of all other threads of this process, and of
    the recording writer threads among those."""
    tick = os.sysconf("SC_CLK_TCK")
    recorders = {t.native_id for t in threading.enumerate() if t.name.startswith("recorder-")}
    main = other = recording = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(task.name) == os.getpid():
            main += seconds
        else:
            other += seconds
        if int(task.name) in recorders:
            recording += seconds
    return {"main": main, "other": other, "recorders": recording}


async def rtp_counters(pcs: list[Any]) -> dict[str, float]:
    """RTP packets the server received (and found missing by sequence gaps) and sent."""
    counts = {"rtp_in": 0.0, "rtp_in_lost": 0.0, "rtp_out": 0.0}
    for pc in pcs:
        for transceiver in pc.getTransceivers():
            received, lost = inbound_rtp(transceiver.receiver)
            counts["rtp_in"] += received
            counts["rtp_in_lost"] += lost
            for stats in (await transceiver.sender.getStats()).values():
                if stats.type == "outbound-rtp":
                    counts["rtp_out"] += stats.packetsSent
    return counts


def inbound_rtp(receiver: Any) -> tuple[int, int]:
    """Packets received and missing (sequence gaps) over every SSRC of `receiver`.

    `RTCRtpReceiver.getStats()` gives every SSRC of a receiver the same stats id, so with RTX
    it reports whichever SSRC came last; the per-SSRC counters are read instead.
    """
    streams = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
    return (
        sum(s.packets_received for s in streams.values()),
        sum(s.packets_lost for s in streams.values()),
    )


def lag_summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples) or [0.0]
    return {"p99_ms": s[int(0.99 * (len(s) - 1))] * 1000, "max_ms": s[-1] * 1000}


class LoopLag:
    """How late a 50 ms timer fires: the event loop's responsiveness during the window."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.recording = False
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.05)
            if self.recording:
                self.samples.append(time.monotonic() - start - 0.05)

    def summary(self) -> dict[str, float]:
        return lag_summary(self.samples)

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

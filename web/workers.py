"""`tingshen serve --workers N`: N server processes sharing one port and one Redis.

The kernel spreads new connections over the workers (SO_REUSEPORT); each hearing's media lives
in one of them (its lease in Redis) and the others relay its participants' signaling there. The
supervisor restarts a worker that dies; the hearings it held resume in the others as their
participants reconnect. On SIGTERM or Ctrl-C every worker drains (finishes its hearings' files
and records) before the supervisor exits.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

log = logging.getLogger("tingshen.workers")

RESTART_DELAY_S = 1.0
# A worker that dies this soon after starting, this many times in a row, will not start: stop.
CRASH_WINDOW_S = 10.0
CRASH_LIMIT = 3
DRAIN_S = 60.0


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    quick_deaths: int = 0


class Supervisor:
    def __init__(self, command: list[str], count: int) -> None:
        self.command = command
        self.count = count
        self.workers: list[Worker] = []
        self.stopping = False

    def _spawn(self, index: int, quick_deaths: int = 0) -> Worker:
        process = subprocess.Popen(self.command)
        log.info("worker %d started (pid %d)", index, process.pid)
        return Worker(index, process, quick_deaths=quick_deaths)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.workers = [self._spawn(i) for i in range(self.count)]
        failed = False
        while not self.stopping:
            time.sleep(0.2)
            for n, worker in enumerate(self.workers):
                code = worker.process.poll()
                if code is None or self.stopping:
                    continue
                quick = time.monotonic() - worker.started < CRASH_WINDOW_S
                deaths = worker.quick_deaths + 1 if quick else 0
                print(f"tingshen: worker {worker.index} (pid {worker.process.pid}) exited with "
                      f"{code}; its hearings resume in the other workers", file=sys.stderr,
                      flush=True)
                if deaths >= CRASH_LIMIT:
                    print(f"tingshen: worker {worker.index} keeps dying at start; stopping",
                          file=sys.stderr, flush=True)
                    self.stopping = failed = True
                    break
                time.sleep(RESTART_DELAY_S)
                self.workers[n] = self._spawn(worker.index, deaths)
        self._drain()
        return 1 if failed else 0

    def _drain(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + DRAIN_S
        for worker in self.workers:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"tingshen: worker {worker.index} did not drain in {DRAIN_S:.0f} s; "
                      "killing it", file=sys.stderr, flush=True)
                worker.process.kill()
                worker.process.wait()


def worker_command(config: Path | None, host: str | None, port: int | None) -> list[str]:
    """How the supervisor starts one worker: this CLI, as `serve --worker`."""
    command = [sys.executable, "-m", "web.cli"]
    if config is not None:
        command += ["--config", str(config)]
    command += ["serve", "--worker"]
    if host is not None:
        command += ["--host", host]
    if port is not None:
        command += ["--port", str(port)]
    return command

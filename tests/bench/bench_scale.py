"""Scale: joins per second and WebSocket clients held by one `tingshen serve` process.

Run: `.venv/bin/python -m tests.bench.bench_scale` (writes the `scale` section of
docs/benchmarks.md; `--only joins` or `--only held` for one measurement).

How it measures is `METHOD`, written into the section with the figures.

A third measurement, 2 worker processes with hearings of 4 recording and transcribing, joins
`MEASUREMENTS` once `tingshen serve --workers N` exists (`Server(extra_args=...)`, and the
load tool's `--media --in-session --speech`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import aiortc

from tests.bench.report import run_stamp, write_section
from tests.servers import free_port
from web.loadtest.plan import LoadPlan, LoadReport, Spread
from web.loadtest.run import LoadRun

COMMAND = ".venv/bin/python -m tests.bench.bench_scale"
METHOD = """\
Each measurement starts its own `tingshen serve` as a subprocess on loopback (a fresh data
dir, SQLite, the tiny.en model, the server's WebSocket heartbeat at its 15 s default) and
drives it with the load tool (`web.loadtest`, what `tingshen loadtest` runs) from this
process. The open-file limit is raised to the hard limit here before the server starts, so
both sides may hold thousands of sockets. Server RSS and CPU come from /proc, summed over the
server's process tree (ready for `--workers`).

Signaling only means participants waiting in the lobby (`auto_admit` off, no judge or clerk):
an admitted participant gets a server-side aiortc peer connection (UDP sockets, ICE
gathering, an SDP offer), which is media, not signaling; the lobby is what a signaling-only
client costs.

- joins: 200 concurrent hearings of 4; join time is WebSocket connect -> `welcome` (the
  server's first reply proving the seat); the baseline is a bare WebSocket connect -> `ping`
  -> `pong` to the same server, with as many in flight.
- held: 5,000 clients (500 hearings of 10) held for 60 s or more, each also sending a
  protocol `ping` every 30 s; drops counted; RSS per held client against the idle server
  (hearings scheduled and opened, nobody connected), CPU while holding against the idle
  server over the same length of time.
"""
TINGSHEN = Path(sys.executable).parent / "tingshen"
START_TIMEOUT_S = 120
HEARTBEAT_S = 15.0  # the server's default
CLIENT_PING_S = 30.0
JOIN_HEARINGS, JOIN_PARTICIPANTS = 200, 4
HELD_HEARINGS, HELD_PARTICIPANTS = 500, 10
IN_FLIGHT = 50
BASELINE_PROBES = 800
HOLD_S = 75.0  # five server heartbeats
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_open_files() -> int:
    """Soft limit to the hard one, inherited by the server started after this."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def process_tree(pid: int) -> list[int]:
    tree, pending = [], [pid]
    while pending:
        p = pending.pop()
        tree.append(p)
        pending += _children(p)
    return tree


@dataclass
class Server:
    """`tingshen serve` in a subprocess with its own data dir, and its /proc figures."""

    root: Path
    heartbeat_s: float = HEARTBEAT_S
    extra_args: Sequence[str] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"  # where it listens (give `--host` too)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TINGSHEN_")}
        env.update({
            "TINGSHEN_DATA_DIR": str(self.root / "var"), "TINGSHEN_ADMIN_TOKEN": self.token,
            # The load runs hearings (open, start, close): no API token may.
            "TINGSHEN_KEEP_ADMIN_TOKEN": "true",
            "TINGSHEN_WHISPER_MODEL": "tiny.en", "TINGSHEN_ICE_HOST_ADDRESSES": "127.0.0.1",
            "TINGSHEN_HEARTBEAT_SECONDS": str(self.heartbeat_s),
            "TINGSHEN_LOG_LEVEL": "warning",
        })
        env.update(self.extra_env)
        log = (self.root / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(TINGSHEN), "serve", "--port", str(self.port), *self.extra_args],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    async def start(self) -> None:
        """Spawn the server and wait until its API answers."""
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited: {self.log_tail()}")
                try:
                    async with session.get(f"{self.url}/api/v1/openapi.json") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {self.log_tail()}")
                await asyncio.sleep(0.2)

    def log_tail(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-2000:]

    def rss_bytes(self) -> int:
        assert self.proc is not None
        total = 0
        for pid in process_tree(self.proc.pid):
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
            except (OSError, IndexError, ValueError):
                pass
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's processes (each /proc/PID/stat covers its
        threads), with that of the children they have reaped (a review render's ffmpeg that
        ended during a measurement)."""
        assert self.proc is not None
        ticks = 0
        for pid in process_tree(self.proc.pid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        return ticks / CLOCK_TICKS

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ms(value: float) -> str:
    return f"{value:,.1f}"


def spread_row(name: str, s: Spread) -> str:
    return f"| {name} | {s.count:,} | {ms(s.p50)} | {ms(s.p95)} | {ms(s.p99)} | {ms(s.max)} |"


def tally(report: LoadReport) -> str:
    present = "?" if report.server_present is None else f"{report.server_present:,}"
    return f"{report.joined:,} / {report.held:,} / {present}"


def problems(report: LoadReport) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(report.errors.items())) or "none"
    drops = ", ".join(f"{k} {v}" for k, v in sorted(report.disconnections.items())) or "none"
    return f"errors: {errors}; disconnections (by close code): {drops}"


# -- measurements -----------------------------------------------------------------------------


async def measure_joins(root: Path) -> str:
    """Joins per second and join time at 200 concurrent hearings, against bare round trips."""
    server = Server(root / "joins")
    server.root.mkdir(parents=True)
    await server.start()
    try:
        plan = LoadPlan(url=server.url, admin_token=server.token, hearings=JOIN_HEARINGS,
                        participants=JOIN_PARTICIPANTS, concurrency=IN_FLIGHT, ping_s=0,
                        max_clients=JOIN_HEARINGS * JOIN_PARTICIPANTS)
        async with LoadRun(plan) as run:
            await run.schedule()
            began = time.monotonic()
            baseline = await run.baseline(BASELINE_PROBES)
            baseline_rate = baseline.count / (time.monotonic() - began)
            cpu0 = server.cpu_seconds()
            await run.join()
            join_cpu = server.cpu_seconds() - cpu0
            await run.hold(2.0)
            report = await run.finish()
    finally:
        server.stop()
    join_p50_ratio = report.join.p50 / baseline.p50
    join_p99_ratio = report.join.p99 / baseline.p99
    cpu_per_join_ms = join_cpu / max(1, report.joined) * 1000
    return f"""### Joins at 200 concurrent hearings (signaling only)

{JOIN_HEARINGS} hearings of {JOIN_PARTICIPANTS} (defendant, lawyer, prosecutor, party: all in
the lobby), opened through the API, then {plan.clients:,} joins with {IN_FLIGHT} in flight.
Baseline: {BASELINE_PROBES} bare round trips (WebSocket connect, `ping`, `pong`, close) to the
same server just before, also {IN_FLIGHT} in flight. Times in ms.

| what | count | p50 | p95 | p99 | max |
|---|---:|---:|---:|---:|---:|
{spread_row("join: connect -> `welcome`", report.join)}
{spread_row("baseline: connect -> `pong`", baseline)}

| figure | value |
|---|---:|
| joins/s | {report.joins_per_s:,.1f} |
| baseline round trips/s | {baseline_rate:,.1f} |
| joins/s ÷ baseline round trips/s | {report.joins_per_s / baseline_rate:.2f} |
| join p50 ÷ baseline p50 | {join_p50_ratio:.1f} |
| join p99 ÷ baseline p99 | {join_p99_ratio:.1f} |
| server CPU per join (ms) | {cpu_per_join_ms:.2f} |
| joined / held at the end / server counts present | {tally(report)} |

{problems(report)}.
"""


async def measure_held(root: Path, hold_s: float) -> str:
    """5,000 clients held with heartbeats by one server process: drops, RSS, CPU."""
    server = Server(root / "held")
    server.root.mkdir(parents=True)
    await server.start()
    try:
        plan = LoadPlan(url=server.url, admin_token=server.token, hearings=HELD_HEARINGS,
                        participants=HELD_PARTICIPANTS, concurrency=IN_FLIGHT,
                        ping_s=CLIENT_PING_S, duration_s=hold_s,
                        max_clients=HELD_HEARINGS * HELD_PARTICIPANTS)
        async with LoadRun(plan) as run:
            await run.schedule()
            # The idle baseline: the same server with the same hearings open, nobody connected.
            idle_cpu0, idle_t0 = server.cpu_seconds(), time.monotonic()
            await asyncio.sleep(min(hold_s, 20.0))
            idle_cpu_share = (server.cpu_seconds() - idle_cpu0) / (time.monotonic() - idle_t0)
            idle_rss = server.rss_bytes()
            began = time.monotonic()
            await run.join()
            join_s = time.monotonic() - began
            cpu0, client0, t0 = server.cpu_seconds(), client_cpu_seconds(), time.monotonic()
            await run.hold()
            held_wall = time.monotonic() - t0
            held_cpu = server.cpu_seconds() - cpu0
            client_cpu = client_cpu_seconds() - client0
            held_rss = server.rss_bytes()
            report = await run.finish()
    finally:
        server.stop()
    held = report.held
    drops = report.joined - held
    per_client_kib = (held_rss - idle_rss) / max(1, held) / 1024
    held_share = held_cpu / held_wall
    return f"""### WebSocket clients held by one process

{HELD_HEARINGS} hearings of {HELD_PARTICIPANTS} (lobby roles, opened through the API):
{plan.clients:,} clients joined ({IN_FLIGHT} in flight, in {join_s:.0f} s), then held for
{held_wall:.0f} s with the server's WebSocket heartbeat every {HEARTBEAT_S:.0f} s (a client
that does not answer is dropped) and each client's protocol `ping` every {CLIENT_PING_S:.0f} s
(first one at a random point of the interval). Idle: the same server after the hearings were
scheduled and opened, before anyone connected, over {min(hold_s, 20.0):.0f} s.

| figure | value |
|---|---:|
| clients joined / held at the end / server counts present | {tally(report)} |
| dropped while held | {drops:,} |
| server RSS idle / holding (MiB) | {idle_rss / 2**20:,.0f} / {held_rss / 2**20:,.0f} |
| RSS per held client (KiB, over idle) | {per_client_kib:.1f} |
| server CPU idle / holding (% of one core) | {idle_cpu_share * 100:.1f} / {held_share * 100:.1f} |
| server CPU seconds while holding | {held_cpu:.1f} over {held_wall:.0f} s |
| load client CPU while holding (% of one core) | {client_cpu / held_wall * 100:.1f} |

| `ping` -> `pong` while holding | count | p50 | p95 | p99 | max |
|---|---:|---:|---:|---:|---:|
{spread_row("round trip (ms)", report.pong)}

{problems(report)}.
"""


@dataclass(frozen=True)
class Measurement:
    name: str
    run: Callable[[Path, argparse.Namespace], Awaitable[str]]


async def joins(root: Path, args: argparse.Namespace) -> str:
    return await measure_joins(root)


async def held(root: Path, args: argparse.Namespace) -> str:
    return await measure_held(root, args.hold)


MEASUREMENTS = (Measurement("joins", joins), Measurement("held", held))


async def measure(names: Sequence[str], args: argparse.Namespace) -> list[str]:
    root = Path(tempfile.mkdtemp(prefix="tingshen-scale-"))
    try:
        return [await m.run(root, args) for m in MEASUREMENTS if m.name in names]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[m.name for m in MEASUREMENTS], action="append",
                        help="run only this measurement (repeatable)")
    parser.add_argument("--hold", type=float, default=HOLD_S,
                        help=f"seconds to hold the clients (at least 60; default {HOLD_S:.0f})")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()
    if args.hold < 60:
        parser.error("--hold must be at least 60 s")
    names = args.only or [m.name for m in MEASUREMENTS]
    limit = raise_open_files()
    began = time.monotonic()
    sections = asyncio.run(measure(names, args))
    whole = time.monotonic() - began
    body = "\n\n".join([
        "## Scale: joins and clients held by one process",
        run_stamp(COMMAND, f"aiohttp {aiohttp.__version__}, aiortc {aiortc.__version__}; "
                           f"open files {limit:,}; SQLite; whole run {whole:.0f} s"),
        METHOD,
        *sections,
    ])
    print(body)
    if args.no_write or set(names) != {m.name for m in MEASUREMENTS}:
        print("(not written: the section needs every measurement)", file=sys.stderr)
    else:
        write_section("scale", body)


if __name__ == "__main__":
    main()

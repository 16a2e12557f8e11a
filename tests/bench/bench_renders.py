"""A live hearing while six review composites render: join and departure latency.

Run as `python -m tests.bench.bench_renders` (what `make bench` does). One in-process
`create_app` server on a loopback port (SQLite, Whisper tiny.en) holds a hearing in session
with a judge and a lawyer, real aiortc peers sending audio and video, so that every departure
finishes the lawyer's recording file. The lawyer joins and leaves again and again:

- join: WebSocket connect -> `welcome`, and -> the server's first media `offer`;
- departure: the lawyer's socket closes -> the judge's roster shows them away (the
  departure has finished their recording file by then).

Baseline cycles run with nothing else in the process; then six composites of other hearings
(each 4 parties, `--seconds` long, made by ffmpeg as the recorder leaves files) are started
through the hub, as six closes would, and the same cycles run while they render; then the
baseline again. The ratio is the loaded median over the median of both baselines, so the
machine's drift during the run cancels out. Renders run in their own pool (two at once) at a
lower CPU priority than the server; before, six renders took every thread of the default
executor and froze departures and rejoins.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp
from aiohttp import web

from config import load_settings
from courtrooms.recordings import FileOutcome
from signaling.review import RENDER_WORKERS
from tests.bench.bench_composite import make_recording
from tests.bench.report import run_stamp, write_section
from tests.clients import Api, HearingClient
from web.app import create_app
from web.keys import HUB, RECORDINGS

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
RENDERS = 6
PARTIES = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])




async def schedule(api: Api, room: str, people: Sequence[tuple[str, str]], hour: int
                   ) -> tuple[str, dict[str, str], dict[str, str]]:
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60 + hour * 7200))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600 + hour * 7200))
    hearing = await api.call("POST", "/hearings", {
        "case_number": f"(2026)测01刑初{hour + 1}号", "title": "bench", "kind": "trial",
        "courtroom_id": room, "scheduled_start": start, "scheduled_end": end,
        "language": "zh", "auto_admit": True,
    }, 201)
    tokens, ids = {}, {}
    for n, (name, role) in enumerate(people):
        body = await api.call("POST", f"/hearings/{hearing['id']}/participants",
                              {"name": f"{name} {hour}-{n}", "role": role,
                               "location": "remote"}, 201)
        tokens[f"{role}{n}"], ids[f"{role}{n}"] = body["token"], body["id"]
    return hearing["id"], tokens, ids


async def recorded(app: web.Application, hearing_id: str, ids: dict[str, str],
                   sources: list[Path], seconds: float) -> None:
    """The hearing's record holds one finished file per participant, as a close leaves it."""
    recordings = app[RECORDINGS]
    hearing = uuid.UUID(hearing_id)
    _origin, index = await recordings.begin_segment(hearing, time.time() - seconds)
    await recordings.end_segment(hearing, index, seconds)
    for source, participant in zip(sources, ids.values(), strict=False):
        relative = f"recordings/{hearing_id}/000-{participant}.webm"
        path = recordings.data_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        await recordings.file_started(hearing, uuid.UUID(participant), index, relative, 0.0)
        await recordings.file_finished(relative, FileOutcome(duration=seconds,
                                                             codecs="vp8,opus"))


async def cycle(base: str, judge: HearingClient, token: str, lawyer_id: str
                ) -> tuple[float, float, float]:
    """One join and departure of the lawyer: (welcome, offer, departure) in seconds."""
    lawyer = HearingClient(base, "lawyer")
    began = time.perf_counter()
    await lawyer.join(token)
    await lawyer.next_message("welcome", within=60)
    welcomed = time.perf_counter() - began
    await lawyer.next_message("offer", within=60)
    offered = time.perf_counter() - began
    await lawyer.wait_for(lambda: bool(lawyer.frames), 60)  # media flows: a file is open
    await judge.wait_for(lambda: (judge.seat(lawyer_id) or {}).get("present", False), 60)
    await asyncio.sleep(0.5)
    began = time.perf_counter()
    await lawyer.close()
    await judge.wait_for(lambda: not (judge.seat(lawyer_id) or {}).get("present"), 60)
    departed = time.perf_counter() - began
    return welcomed, offered, departed


async def run(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    sources = []
    for n in range(PARTIES):
        path = root / f"source-{n}.webm"
        await asyncio.to_thread(make_recording, path, n, args.seconds)
        sources.append(path)
    settings = load_settings(
        environ={}, data_dir=root / "var", database_url=f"sqlite+aiosqlite:///{root}/db.sqlite",
        admin_token=ADMIN_TOKEN, public_url="http://court.example",
        ice_host_addresses=["127.0.0.1"], heartbeat_seconds=1.0, whisper_model="tiny.en",
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"baseline": [], "renders": [], "renders_seen": []}
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(http, base, ADMIN_TOKEN)
            court = await api.call("POST", "/courts", {"name": "Bench court"}, 201)
            room = await api.call("POST", "/courtrooms",
                                  {"court_id": court["id"], "name": "Room"}, 201)
            live, tokens, ids = await schedule(
                api, room["id"], (("Judge", "judge"), ("Lawyer", "lawyer")), 0)
            others = []
            for n in range(RENDERS):
                people = [("Judge", "judge"), ("Defendant", "defendant"),
                          ("Prosecutor", "prosecutor"), ("Lawyer", "lawyer")]
                hearing_id, _tokens, other_ids = await schedule(api, room["id"], people, n + 1)
                await recorded(app, hearing_id, other_ids, sources, args.seconds)
                others.append(uuid.UUID(hearing_id))
            judge = HearingClient(base, "judge")
            await judge.join(tokens["judge0"])
            await judge.next_message("welcome", within=60)
            await api.call("POST", f"/hearings/{live}/open")
            await api.call("POST", f"/hearings/{live}/start")
            try:
                await cycle(base, judge, tokens["lawyer1"], ids["lawyer1"])  # warm-up
                for _ in range(args.cycles):
                    results["baseline"].append(
                        await cycle(base, judge, tokens["lawyer1"], ids["lawyer1"]))
                jobs = app[HUB].composites
                for other in others:
                    jobs.start(other)
                for _ in range(args.cycles):
                    results["renders_seen"].append(jobs.running + jobs.queued)
                    results["renders"].append(
                        await cycle(base, judge, tokens["lawyer1"], ids["lawyer1"]))
                results["still_rendering"] = jobs.running + jobs.queued
                for other in others:
                    jobs.cancel(other)
                await jobs.settled()
                for _ in range(args.cycles):
                    results["baseline"].append(
                        await cycle(base, judge, tokens["lawyer1"], ids["lawyer1"]))
            finally:
                await judge.close()
    finally:
        await runner.cleanup()
    return results


def report(results: dict[str, Any], args: argparse.Namespace, command: str,
           elapsed: float) -> str:
    names = ("join: connect -> `welcome`", "join: connect -> first `offer`",
             "departure: close -> away in the judge's roster")
    lines = [
        "## A live hearing while six composites render",
        "",
        run_stamp(command, f"Whole run {elapsed:.0f} s"),
        "",
        f"One in-process server holds a hearing in session (judge and lawyer, aiortc peers "
        f"with audio and video, recorded). The lawyer joins and leaves {args.cycles} times "
        f"with nothing else running, {args.cycles} times while {RENDERS} composites of other "
        f"hearings ({PARTIES} parties, {args.seconds:.0f} s each) render, then {args.cycles} "
        f"times again with nothing else running. Renders run {RENDER_WORKERS} at a time in "
        "their own pool, ffmpeg at a lower CPU priority. Medians in milliseconds; the ratio "
        "is the median under renders over the median of both baselines.",
        "",
        "| measurement | baseline (ms) | six renders (ms) | ratio |",
        "|---|---:|---:|---:|",
    ]
    ratios = []
    for i, name in enumerate(names):
        base = median(r[i] for r in results["baseline"]) * 1000
        loaded = median(r[i] for r in results["renders"]) * 1000
        ratios.append(loaded / base)
        lines.append(f"| {name} | {base:.0f} | {loaded:.0f} | {loaded / base:.2f} |")
    seen = results["renders_seen"]
    lines += [
        "",
        f"Renders queued or running at each loaded cycle: {min(seen)}–{max(seen)} of "
        f"{RENDERS} ({results['still_rendering']} still at the last; every loaded cycle ran "
        "with renders going). Departures never waited on a render: the worst loaded "
        f"departure took {max(r[2] for r in results['renders']) * 1000:.0f} ms.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_renders",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=8, help="joins and departures per arm")
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="length of each rendered hearing")
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/ alone")
    args = parser.parse_args(argv)
    command = " ".join(["python -m tests.bench.bench_renders", *(argv or sys.argv[1:])])
    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tingshen-bench-"))
    try:
        results = asyncio.run(run(root, args))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    body = report(results, args, command, time.perf_counter() - began)
    print(body)
    if not args.no_write:
        write_section("renders", body)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TINGSHEN_LOG_LEVEL", "warning")
    raise SystemExit(main())

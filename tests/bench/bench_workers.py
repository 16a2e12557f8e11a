"""Hearings of four sustained with recording and transcription: 2 worker processes vs 1.

`tingshen serve --workers N` (PostgreSQL and redis-server of the benchmark's own) is loaded by
`tingshen loadtest --media --in-session` with 1, 2, 3... hearings of four participants, each
sending speech and a webcam's video (both encoded once and replayed: the load clients encode
nothing), until a step is not sustained. Each worker's `/metrics` splits its CPU by part.
The baseline is the same ladder against one worker in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aiortc
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.bench.bench_scale import Server, raise_open_files
from tests.bench.report import run_stamp, write_section
from tests.servers import PostgresServer, RedisServer
from tests.speech import SPEECH
from web.loadtest.encoded import VideoFormat
from web.loadtest.plan import LoadPlan, LoadReport
from web.loadtest.run import run_load

COMMAND = ".venv/bin/python -m tests.bench.bench_workers"
PARTICIPANTS = 4
SPEAKERS = 1  # one speaks at a time, as in court; the others' microphones carry silence
SPEAKING_SHARE = 0.7  # of the time (issue 17): the recording, then silence, looped
HOLD_S = 45.0
MAX_HEARINGS = 6
VIDEO = VideoFormat()  # what a browser's webcam sends: 640x360 VP8 at 30 fps
PARTS = ("event_loop", "voice_detection", "audio_decoding", "recording", "recognition_finals",
         "recognition_partials", "recognition_settling", "recognition_other", "other")
AUDIO_FPS = 50.0
# A step is sustained when every peer connects and stays, media arrives at this share of its
# rate, and the record is less than this behind at p95 (the judge's console turns amber at 3 s).
MIN_RATE_SHARE = 0.9
MAX_LAG_P95_S = 3.0
HEADER = (
    "| workers | hearings | holders | peers | audio fps/stream | video fps/stream "
    "| lag p95 / max (s) | record lines | server cores | client cores | sustained |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)
QUIET_CPU_SHARE = 0.15  # between steps: the closed hearings' composites must finish first
QUIET_WINDOWS = 3
QUIET_MAX_S = 300.0


@dataclass
class Step:
    workers: int
    hearings: int
    report: LoadReport
    server_cores: float
    holders: int
    # Server cores by part of the work (from each worker's /metrics), over the step.
    parts: dict[str, float]

    def failures(self) -> list[str]:
        r = self.report
        out = []
        if r.peers_connected < r.clients:
            out.append(f"{r.peers_connected}/{r.clients} peers connected")
        if r.disconnections:
            out.append(f"disconnections {r.disconnections}")
        audio = r.frame_rates.get("audio", 0.0)
        video = r.frame_rates.get("video", 0.0)
        if audio < AUDIO_FPS * MIN_RATE_SHARE:
            out.append(f"audio {audio:.0f}/s per stream")
        if video < VIDEO.fps * MIN_RATE_SHARE:
            out.append(f"video {video:.0f}/s per stream (the server's downlink adaptation held "
                       f"back {r.videos_held:.0%} of them)")
        if r.recognizer_lag.p95 / 1000 >= MAX_LAG_P95_S:
            out.append(f"recognizer lag p95 {r.recognizer_lag.p95 / 1000:.1f} s")
        if r.captions_received == 0:
            out.append("no trial-record line")
        return out

    def row(self) -> str:
        r = self.report
        verdict = "yes" if not self.failures() else "no: " + "; ".join(self.failures())
        return (f"| {self.workers} | {self.hearings} | {self.holders} | "
                f"{r.peers_connected}/{r.clients} | {r.frame_rates.get('audio', 0):.1f} | "
                f"{r.frame_rates.get('video', 0):.1f} | {r.recognizer_lag.p95 / 1000:.1f} / "
                f"{r.max_recognizer_lag_s:.1f} | "
                f"{r.captions_received} | {self.server_cores:.2f} | "
                f"{r.client_cpu_percent / 100:.2f} | {verdict} |")


async def cpu_by_part(url: str, workers: int) -> dict[float, dict[str, float]]:
    """Each worker's `tingshen_cpu_seconds_total` by part, keyed by its process id."""
    return {w: m["cpu"] for w, m in (await worker_metrics(url, workers)).items()}


async def worker_metrics(url: str, workers: int) -> dict[float, dict[str, dict[str, float]]]:
    """Each worker's CPU seconds by part ("cpu") and review renders by state ("renders"),
    keyed by its process id (the port reaches a worker the kernel picks: asked until every
    worker has answered)."""
    seen: dict[float, dict[str, dict[str, float]]] = {}
    # A new connection each time: a kept-alive one always reaches the same worker.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)
                                     ) as session:
        for _ in range(20 * workers):
            async with session.get(f"{url}/metrics") as r:
                body = await r.text()
            started, found = 0.0, {"cpu": {}, "renders": {}}
            for family in text_string_to_metric_families(body):
                for sample in family.samples:
                    if sample.name == "tingshen_process_id":
                        started = sample.value
                    elif sample.name == "tingshen_cpu_seconds_total":
                        found["cpu"][sample.labels["part"]] = sample.value
                    elif sample.name == "tingshen_review_renders":
                        found["renders"][sample.labels["state"]] = sample.value
            seen[started] = found
            if len(seen) >= workers:
                break
    return seen


def parts_used(before: dict[float, dict[str, float]], after: dict[float, dict[str, float]],
               seconds: float) -> dict[str, float]:
    """Cores each part used between two readings, summed over the workers."""
    return {part: sum(after[w].get(part, 0.0) - before.get(w, {}).get(part, 0.0)
                      for w in after) / seconds for part in PARTS}


async def wait_quiet(server: Server, workers: int) -> None:
    """Until the last step's review renders (which start once its hearings are sealed) have
    finished in every worker and the server uses less than QUIET_CPU_SHARE of a core, over
    QUIET_WINDOWS windows of 2 s in a row (or QUIET_MAX_S pass): a step measures its own
    hearings, not the renders of the one before."""
    deadline, quiet = time.monotonic() + QUIET_MAX_S, 0
    while quiet < QUIET_WINDOWS and time.monotonic() < deadline:
        before = server.cpu_seconds()
        await asyncio.sleep(2.0)
        renders = sum(sum(m["renders"].values())
                      for m in (await worker_metrics(server.url, workers)).values())
        idle = (server.cpu_seconds() - before) / 2.0 < QUIET_CPU_SHARE and renders == 0
        quiet = quiet + 1 if idle else 0


async def ladder(root: Path, workers: int, database: str, redis_url: str, hold_s: float
                 ) -> list[Step]:
    server = Server(root / f"workers-{workers}", extra_args=["--workers", str(workers)],
                    extra_env={"TINGSHEN_DATABASE_URL": database,
                               "TINGSHEN_REDIS_URL": redis_url,
                               "TINGSHEN_WHISPER_MODEL": "base"})
    server.root.mkdir(parents=True)
    keys = redis.Redis.from_url(redis_url, decode_responses=True)
    await server.start()
    steps: list[Step] = []
    try:
        deadline = time.monotonic() + 180
        # Every worker listening (each prints a line once its site is up); one worker is the
        # plain server, up once its API answers.
        while workers > 1 and (server.root / "server.log").read_text().count("Worker ") < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start: {server.log_tail()}")
            await asyncio.sleep(0.5)
        for hearings in range(1, MAX_HEARINGS + 1):
            await wait_quiet(server, workers)
            plan = LoadPlan(url=server.url, admin_token=server.token, hearings=hearings,
                            participants=PARTICIPANTS, media=True, in_session=True,
                            speech=SPEECH / "en_opening.wav", language="en", duration_s=hold_s,
                            ping_s=0, speakers=SPEAKERS, speaking_share=SPEAKING_SHARE,
                            video=VIDEO)
            parts0 = await cpu_by_part(server.url, workers)
            cpu0, t0 = server.cpu_seconds(), time.monotonic()
            holders_seen: set[str] = set()

            async def watch_holders(seen: set[str] = holders_seen) -> None:
                while True:
                    for key in keys.scan_iter("tingshen:lease:*"):
                        holder = keys.get(key)
                        if holder:
                            seen.add(holder)
                    await asyncio.sleep(2.0)

            watcher = asyncio.create_task(watch_holders())
            try:
                report = await run_load(plan)
            finally:
                watcher.cancel()
            took = time.monotonic() - t0
            cores = (server.cpu_seconds() - cpu0) / took
            parts = parts_used(parts0, await cpu_by_part(server.url, workers), took)
            step = Step(workers, hearings, report, cores, len(holders_seen), parts)
            steps.append(step)
            print(step.row(), flush=True)
            if step.failures():
                break
    finally:
        server.stop()
        keys.close()
    return steps


def sustained(steps: list[Step]) -> int:
    return max((s.hearings for s in steps if not s.failures()), default=0)


async def measure(hold_s: float) -> str:
    root = Path(tempfile.mkdtemp(prefix="tingshen-workers-"))
    # Its own directory: the postgres user cannot enter root's private temporary directory.
    pg_root = Path(tempfile.mkdtemp(prefix="tingshen-pg-"))
    postgres = PostgresServer.start(pg_root)
    redis_server = RedisServer.start(root / "redis")
    try:
        results = {}
        for workers in (1, 2):
            name = f"bench_{workers}"
            postgres.psql(f"CREATE DATABASE {name}")
            results[workers] = await ladder(root, workers, f"{postgres.url}/{name}",
                                            redis_server.url, hold_s)
    finally:
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pg_root, ignore_errors=True)
    one, two = sustained(results[1]), sustained(results[2])
    rows = "\n".join(s.row() for w in (1, 2) for s in results[w])
    part_rows = "\n".join(
        f"| {s.workers} | {s.hearings} | "
        + " | ".join(f"{max(0.0, s.parts[p]) / s.hearings:.3f}" for p in PARTS)
        + f" | {sum(s.parts.values()) / s.hearings:.3f} |"
        for w in (1, 2) for s in results[w])
    ratio = f"{two / one:.2f}" if one else "n/a (one worker sustained none)"
    return f"""### Hearings of four with recording and transcription: 2 workers vs 1

Each step schedules that many hearings of {PARTICIPANTS} (judge, defendant, lawyer,
prosecutor; admitted at once), puts them in session (recording every participant, transcribing
everyone live with the multilingual **base** model, language en), and holds them {hold_s:.0f} s
while one participant of each hearing speaks {SPEAKING_SHARE:.0%} of the time (English speech,
`tests/speech/en_opening.wav`, then silence, looped), the others' microphones carry silence
(still Opus, still recorded and run through the voice detector), and every client sends
{VIDEO.label}.
The load tool runs on the same 2 cores; it replays media encoded once before the run (its
cost is the "client cores" column, measured apart from the server's).
Sustained: every peer connected and stayed, audio and video arrive at ≥ {MIN_RATE_SHARE:.0%} of
their rate per stream, the record less than {MAX_LAG_P95_S:.0f} s behind at p95 (the judges'
lag reports, every second), and trial-record lines arrive.
"Holders" is how many workers held the step's hearings (the kernel spreads the first joins).

{HEADER}
{rows}

| figure | value |
|---|---:|
| hearings of four sustained, 1 worker (baseline) | {one} |
| hearings of four sustained, 2 workers | {two} |
| 2 workers ÷ 1 worker | {ratio} |

Server cores per hearing by part of the work (`tingshen_cpu_seconds_total`, summed over the
workers, divided by the step's hearings). *Event loop*: forwarding, ICE/DTLS/SRTP, signaling
and the API; *voice detection* runs on it and is shown apart; *audio decoding*: Opus to 16 kHz
for the recognizer; *recording*: the writers' threads; *recognition*: the inference thread and
CTranslate2's compute threads, finals and partials sharing their CPU by busy time (loading
the model is the rest); *other*: every other thread (database, file hashing).

| workers | hearings | {" | ".join(p.replace("_", " ") for p in PARTS)} | total |
|---:|---:|{"---:|" * (len(PARTS) + 1)}
{part_rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=HOLD_S, help="seconds each step is held")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()
    limit = raise_open_files()
    began = time.monotonic()
    section = asyncio.run(measure(args.hold))
    body = "\n\n".join([
        "## Scale: worker processes with recording and transcription",
        run_stamp(COMMAND, f"aiohttp {aiohttp.__version__}, aiortc {aiortc.__version__}; "
                           f"open files {limit:,}; PostgreSQL and Redis on loopback; "
                           f"whole run {time.monotonic() - began:.0f} s"),
        section,
    ])
    print(body)
    if args.no_write:
        print("(not written)", file=sys.stderr)
    else:
        write_section("workers", body)


if __name__ == "__main__":
    main()

"""Registry benchmark: scheduling with conflict checks and join-token look-ups as data grows.

Run as `python -m tests.bench.bench_registry` (what `make bench` does). Against a real
PostgreSQL cluster started for the run and a real SQLite file it measures, per database:

- `Registry.create_hearing` (a write that first looks for hearings double-booking the
  courtroom) into a calendar already holding `small` and `large` hearings, against the
  baseline `Registry.create_court` (a trivial audited write) on the same database;
- `Registry.resolve_join_token` against the baseline `Registry.get_court` (a read by key).

Every repetition runs on a fresh copy of a seeded database, so each one starts with exactly
the stated number of hearings. Rates are the median of the repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

from sqlalchemy import text

from courtrooms.database import Database, migrate
from courtrooms.errors import ScheduleConflict
from courtrooms.models import HearingKind, Location, Role
from courtrooms.registry import Registry
from courtrooms.schemas import CourtIn, CourtroomIn, HearingIn, ParticipantIn
from tests.bench.report import median_rate, run_stamp, write_section
from tests.servers import PostgresServer

ACTOR = "admin"
LANGUAGE = "zh"
ROOMS = 20
# Each courtroom's day: hearings at 08, 10, 12, 14 and 16 o'clock, an hour each; the hours
# between are free, and the measured hearings are scheduled into them.
HEARING_HOURS = (8, 10, 12, 14, 16)
FREE_HOURS = (9, 11, 13, 15)
WARM_UP_HOUR = 18
CALENDAR_START = datetime(2027, 3, 1, tzinfo=UTC)
# The registry's clock stands after every scheduled start, so every join link is open.
CLOCK = CALENDAR_START + timedelta(days=3650)
# One participant (with a join token) for every this many seeded hearings.
HEARINGS_PER_TOKEN = 10


@dataclass
class Seeded:
    """What a seeded database holds that the measurements need."""

    court_id: uuid.UUID
    rooms: list[uuid.UUID]
    tokens: list[str]
    days: int


@dataclass
class Timings:
    """Seconds per repetition for each measured operation."""

    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, elapsed: float) -> None:
        self.seconds.setdefault(name, []).append(elapsed)


def registry(url: str) -> Registry:
    return Registry(Database(url), clock=lambda: CLOCK)


def slot(day: int, hour: int) -> tuple[datetime, datetime]:
    start = CALENDAR_START + timedelta(days=day, hours=hour)
    return start, start + timedelta(hours=1)


async def seed(url: str, hearings: int) -> Seeded:
    """A court with `ROOMS` courtrooms whose calendars hold `hearings` hearings in all."""
    reg = registry(url)
    try:
        court = await reg.create_court(CourtIn(name="Bench Court"), ACTOR)
        rooms = [
            (await reg.create_courtroom(CourtroomIn(court_id=court.id, name=f"Room {i}"), ACTOR)).id
            for i in range(ROOMS)
        ]
        tokens: list[str] = []
        per_day = ROOMS * len(HEARING_HOURS)
        for n in range(hearings):
            day, rest = divmod(n, per_day)
            hour_index, room_index = divmod(rest, ROOMS)
            start, end = slot(day, HEARING_HOURS[hour_index])
            hearing = await reg.create_hearing(
                HearingIn(
                    case_number=f"(2027)bench{n}",
                    title=f"Bench hearing {n}",
                    kind=HearingKind.TRIAL,
                    courtroom_id=rooms[room_index],
                    scheduled_start=start,
                    scheduled_end=end,
                ),
                ACTOR,
                LANGUAGE,
            )
            if n % HEARINGS_PER_TOKEN == 0:
                issued = await reg.add_participant(
                    hearing.id,
                    ParticipantIn(name=f"Party {n}", role=Role.PARTY, location=Location.REMOTE),
                    ACTOR,
                )
                tokens.append(issued.token)
        days = -(-hearings // per_day)
        return Seeded(court.id, rooms, tokens, days)
    finally:
        await reg.db.aclose()


def measured_hearings(seeded: Seeded, count: int) -> list[HearingIn]:
    """`count` hearings in the free hours of the middle day of the calendar, no two clashing."""
    if count > ROOMS * len(FREE_HOURS):
        raise ValueError(f"at most {ROOMS * len(FREE_HOURS)} measured hearings fit one day")
    day = seeded.days // 2
    out = []
    for i in range(count):
        hour_index, room_index = divmod(i, ROOMS)
        start, end = slot(day, FREE_HOURS[hour_index])
        out.append(
            HearingIn(
                case_number=f"(2027)new{i}",
                title=f"Newly scheduled {i}",
                kind=HearingKind.ARRAIGNMENT,
                courtroom_id=seeded.rooms[room_index],
                scheduled_start=start,
                scheduled_end=end,
            )
        )
    return out


Op = Callable[[], Awaitable[object]]


async def paired(baseline: Sequence[Op], subject: Sequence[Op], rep: int) -> tuple[float, float]:
    """Seconds spent in each list, calls alternating one by one so both see the same load.

    The machine is shared and noisy; alternating keeps a burst of load from landing on one
    side of the comparison. Which side goes first alternates between repetitions.
    """
    spent = [0.0, 0.0]
    for pair in zip(baseline, subject, strict=True):
        for side in ((0, 1) if rep % 2 == 0 else (1, 0)):
            began = time.perf_counter()
            await pair[side]()
            spent[side] += time.perf_counter() - began
    return spent[0], spent[1]


async def measure(url: str, seeded: Seeded, writes: int, reads: int, rep: int) -> dict[str, float]:
    """One repetition on a fresh copy of a seeded database: seconds per measured operation."""
    reg = registry(url)
    try:
        courts = [CourtIn(name=f"Baseline Court {i}") for i in range(writes)]
        hearings = measured_hearings(seeded, writes)
        tokens = [seeded.tokens[i % len(seeded.tokens)] for i in range(reads)]
        await warm_up(reg, seeded)

        def court_op(c: CourtIn) -> Op:
            return lambda: reg.create_court(c, ACTOR)

        def hearing_op(h: HearingIn) -> Op:
            return lambda: reg.create_hearing(h, ACTOR, LANGUAGE)

        def resolve_op(t: str) -> Op:
            return lambda: reg.resolve_join_token(t)

        def get_op() -> Op:
            return lambda: reg.get_court(seeded.court_id)

        result: dict[str, float] = {}
        result["create_court"], result["create_hearing"] = await paired(
            [court_op(c) for c in courts], [hearing_op(h) for h in hearings], rep
        )
        result["get_court"], result["resolve_join_token"] = await paired(
            [get_op() for _ in range(reads)], [resolve_op(t) for t in tokens], rep
        )
        await check_conflicts_are_found(reg, seeded)
        return result
    finally:
        await reg.db.aclose()


async def warm_up(reg: Registry, seeded: Seeded) -> None:
    """One untimed call of each kind: connections opened, statements compiled and cached."""
    await reg.get_court(seeded.court_id)
    await reg.resolve_join_token(seeded.tokens[0])
    await reg.create_court(CourtIn(name="Warm-up Court"), ACTOR)
    start, end = slot(seeded.days // 2, WARM_UP_HOUR)
    await reg.create_hearing(
        HearingIn(case_number="(2027)warm-up", title="Warm-up hearing", kind=HearingKind.TRIAL,
                  courtroom_id=seeded.rooms[0], scheduled_start=start, scheduled_end=end),
        ACTOR,
        LANGUAGE,
    )


async def check_conflicts_are_found(reg: Registry, seeded: Seeded) -> None:
    """The measured writes did check: a hearing clashing with a seeded one is refused."""
    start, _ = slot(seeded.days // 2, HEARING_HOURS[0])
    clash = HearingIn(
        case_number="(2027)clash",
        title="Clashing hearing",
        kind=HearingKind.TRIAL,
        courtroom_id=seeded.rooms[0],
        scheduled_start=start + timedelta(minutes=30),
        scheduled_end=start + timedelta(minutes=90),
    )
    try:
        await reg.create_hearing(clash, ACTOR, LANGUAGE)
    except ScheduleConflict:
        return
    raise AssertionError("a double-booked courtroom was not refused: the benchmark is void")


class Backend:
    """A database kind: make migrated databases, seed them once, copy them per repetition."""

    name: str
    version_sql: str

    def empty(self, label: str) -> str:
        raise NotImplementedError

    def copy(self, source: str, label: str) -> str:
        raise NotImplementedError

    def version(self, url: str) -> str:
        async def ask() -> str:
            db = Database(url)
            try:
                async with db.read() as session:
                    return str((await session.execute(text(self.version_sql))).scalar_one())
            finally:
                await db.aclose()

        return asyncio.run(ask())


class SQLiteBackend(Backend):
    name = "SQLite"
    version_sql = "SELECT 'SQLite ' || sqlite_version()"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template = root / "template.db"
        migrate(self.url(self.template))

    @staticmethod
    def url(path: Path) -> str:
        return f"sqlite+aiosqlite:///{path}"

    def empty(self, label: str) -> str:
        path = self.root / f"{label}.db"
        shutil.copy(self.template, path)
        return self.url(path)

    def copy(self, source: str, label: str) -> str:
        path = self.root / f"{label}.db"
        shutil.copy(source.removeprefix("sqlite+aiosqlite:///"), path)
        return self.url(path)


class PostgresBackend(Backend):
    name = "PostgreSQL"
    version_sql = "SELECT 'PostgreSQL ' || current_setting('server_version')"

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        server.psql("CREATE DATABASE bench_template")
        migrate(f"{server.url}/bench_template")

    def empty(self, label: str) -> str:
        self.server.psql(f"CREATE DATABASE {label} TEMPLATE bench_template")
        return f"{self.server.url}/{label}"

    def copy(self, source: str, label: str) -> str:
        template = source.rsplit("/", 1)[1]
        self.server.psql(f"CREATE DATABASE {label} TEMPLATE {template}")
        return f"{self.server.url}/{label}"


@dataclass
class Result:
    backend: str
    size: int
    tokens: int
    seed_seconds: float
    timings: Timings


def run_backend(backend: Backend, sizes: Sequence[int], reps: int, writes: int,
                reads: int) -> list[Result]:
    results = []
    for size in sizes:
        began = time.perf_counter()
        source = backend.empty(f"seed_{size}")
        seeded = asyncio.run(seed(source, size))
        seed_seconds = time.perf_counter() - began
        timings = Timings()
        for rep in range(reps):
            url = backend.copy(source, f"rep_{size}_{rep}")
            for name, elapsed in asyncio.run(measure(url, seeded, writes, reads, rep)).items():
                timings.add(name, elapsed)
        results.append(Result(backend.name, size, len(seeded.tokens), seed_seconds, timings))
        rates = {n: f"{median_rate(writes if n.startswith('create') else reads, s):.0f}/s"
                 for n, s in timings.seconds.items()}
        print(f"{backend.name} with {size} hearings (seeded in {seed_seconds:.1f} s): {rates}",
              file=sys.stderr)
    return results


def rate(result: Result, name: str, writes: int, reads: int) -> float:
    ops = writes if name.startswith("create") else reads
    return median_rate(ops, result.timings.seconds[name])


def relative(result: Result, subject: str, baseline: str) -> float:
    """Median over repetitions of subject's rate ÷ baseline's rate (equal call counts)."""
    return median(
        b / s
        for s, b in zip(
            result.timings.seconds[subject], result.timings.seconds[baseline], strict=True
        )
    )


def report(results: list[Result], args: argparse.Namespace, command: str,
           versions: list[str], elapsed: float) -> str:
    w, r = args.writes, args.reads
    small, large = args.small, args.large
    by = {(res.backend, res.size): res for res in results}
    backends = list(dict.fromkeys(res.backend for res in results))
    lines = [
        "## Registry",
        "",
        run_stamp(command, f"Databases: {', '.join(versions)}; whole run {elapsed:.0f} s"),
        "",
        f"Each database holds one court with {ROOMS} courtrooms whose calendars hold the stated "
        f"number of one-hour hearings ({len(HEARING_HOURS)} a day per room), and a join token "
        f"for every {HEARINGS_PER_TOKEN}th hearing. Each of {args.reps} repetitions runs on a "
        "fresh copy of that database and times, one call after another on one event loop, "
        f"{w} `create_court` calls (baseline write) alternating one by one with {w} "
        "`create_hearing` calls into free hours of the calendar's middle day (each checking the "
        f"courtroom for double-booking), then {r} `get_court` calls (baseline read) alternating "
        f"with {r} `resolve_join_token` calls. Rates are medians over the repetitions; ratios "
        "are medians of the per-repetition ratios, whose two sides ran interleaved and so under "
        "the same load. PostgreSQL runs with fsync off, SQLite in WAL mode.",
        "",
        "### Scheduling a hearing with conflict checks",
        "",
        "| database | existing hearings | `create_court`/s (baseline) | `create_hearing`/s "
        "| hearing ÷ court |",
        "|---|---:|---:|---:|---:|",
    ]
    for b in backends:
        for size in (small, large):
            res = by[(b, size)]
            court = rate(res, "create_court", w, r)
            hearing = rate(res, "create_hearing", w, r)
            ratio = relative(res, "create_hearing", "create_court")
            lines.append(f"| {b} | {size:,} | {court:,.0f} | {hearing:,.0f} | {ratio:.2f} |")
    lines += [
        "",
        f"Growth from {small:,} to {large:,} existing hearings: (hearing ÷ court at {large:,}) ÷ "
        f"(hearing ÷ court at {small:,}). 1.00 means scheduling does not slow down as the "
        "calendar fills, beyond what every audited write does.",
        "",
        "| database | `create_hearing` growth relative to baseline |",
        "|---|---:|",
    ]
    for b in backends:
        growth = relative(by[(b, large)], "create_hearing", "create_court") / relative(
            by[(b, small)], "create_hearing", "create_court"
        )
        lines.append(f"| {b} | {growth:.2f} |")
    lines += [
        "",
        "### Resolving a join token",
        "",
        "| database | existing hearings | join tokens | `get_court`/s (baseline) "
        "| `resolve_join_token`/s | resolve ÷ get_court |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for b in backends:
        for size in (small, large):
            res = by[(b, size)]
            get = rate(res, "get_court", w, r)
            resolve = rate(res, "resolve_join_token", w, r)
            ratio = relative(res, "resolve_join_token", "get_court")
            lines.append(f"| {b} | {size:,} | {res.tokens:,} | {get:,.0f} | {resolve:,.0f} "
                         f"| {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_registry",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100, help="existing hearings, small case")
    parser.add_argument("--large", type=int, default=2000, help="existing hearings, large case")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per case")
    parser.add_argument("--writes", type=int, default=60, help="writes timed per repetition")
    parser.add_argument("--reads", type=int, default=300, help="reads timed per repetition")
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/ alone")
    args = parser.parse_args(argv)
    command = " ".join(["python -m tests.bench.bench_registry", *(argv or sys.argv[1:])])
    if args.writes > ROOMS * len(FREE_HOURS):
        parser.error(f"--writes must be at most {ROOMS * len(FREE_HOURS)}")

    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tingshen-bench-"))
    pg_root = Path(tempfile.mkdtemp(prefix="tingshen-bench-pg-"))
    server = PostgresServer.start(pg_root)
    try:
        backends: list[Backend] = [SQLiteBackend(root), PostgresBackend(server)]
        results, versions = [], []
        for backend in backends:
            results += run_backend(backend, (args.small, args.large), args.reps, args.writes,
                                   args.reads)
            versions.append(backend.version(backend.empty("version_probe")))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pg_root, ignore_errors=True)
    body = report(results, args, command, versions, time.perf_counter() - began)
    print(body)
    if not args.no_write:
        write_section("registry", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

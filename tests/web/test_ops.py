"""Liveness, readiness and metrics of the real app, with a real database and real participants."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import prometheus_client
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from config import Settings
from courtrooms.database import Database
from courtrooms.models import HearingState, Role
from tests.clients import HearingClient
from tests.conftest import FakeClock
from tests.signaling.conftest import schedule
from web import ops
from web.keys import HUB
from web.ops import METRICS, database_check

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: TestClient) -> Samples:
    r = await client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(await r.text()):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


# -- liveness and readiness -------------------------------------------------------------------


async def test_healthz_answers_without_a_token(client: TestClient) -> None:
    r = await client.get("/healthz")
    assert r.status == 200
    assert await r.json() == {"status": "ok"}


async def test_readyz_is_ready_when_database_and_model_are_up(client: TestClient) -> None:
    r = await client.get("/readyz")
    assert r.status == 200, await r.text()
    assert await r.json() == {"status": "ready", "checks": {
        "database": "ok", "transcription": "ok", "draining": "ok", "executor": "ok",
        "renders": "ok"}}


async def test_readyz_is_degraded_not_unready_while_a_record_has_a_gap(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hearing here whose transcriber failed: the process still holds its media, so a load
    # balancer must keep it (200); the body and the metrics say what is wrong.
    hub = client.app[HUB]
    monkeypatch.setattr(type(hub), "records_with_gaps", property(lambda self: 1))
    monkeypatch.setattr(type(hub), "records_stopped", property(lambda self: 1))
    r = await client.get("/readyz")
    assert r.status == 200, await r.text()
    assert await r.json() == {"status": "degraded", "checks": {
        "database": "ok", "transcription": "degraded", "draining": "ok", "executor": "ok",
        "renders": "ok"}}
    samples = await scrape(client)
    assert value(samples, "tingshen_records_with_gaps") == 1
    assert value(samples, "tingshen_records_stopped") == 1
    assert value(samples, "tingshen_transcriber_failures_total") == 0
    hub.draining = True  # degraded and draining: unready
    try:
        r = await client.get("/readyz")
        assert r.status == 503 and (await r.json())["status"] == "unready"
    finally:
        hub.draining = False


async def test_readyz_refuses_while_draining(client: TestClient) -> None:
    hub = client.app[HUB]
    hub.draining = True
    try:
        r = await client.get("/readyz")
        assert r.status == 503
        assert await r.json() == {"status": "unready", "checks": {
            "database": "ok", "transcription": "ok", "draining": "draining", "executor": "ok",
            "renders": "ok"}}
        samples = await scrape(client)
        assert value(samples, "tingshen_draining") == 1
    finally:
        hub.draining = False
    assert (await client.get("/readyz")).status == 200


@contextlib.contextmanager
def sqlite_unreachable(url: str) -> Iterator[None]:
    """The database file's storage is gone: a directory stands where the file was."""
    path = Path(make_url(url).database or "")
    away = path.with_name(path.name + ".away")
    path.rename(away)
    path.mkdir()
    try:
        yield
    finally:
        path.rmdir()
        away.rename(path)


@contextlib.contextmanager
def postgres_unreachable(request: pytest.FixtureRequest, url: str) -> Iterator[None]:
    """The server refuses the database and drops its sessions (as in a failover)."""
    server = request.getfixturevalue("postgres")
    name = make_url(url).database
    server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        yield
    finally:
        server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


async def test_readyz_names_an_unreachable_database(
    client: TestClient, settings: Settings, request: pytest.FixtureRequest
) -> None:
    db = client.app[HUB].registry.db
    url = settings.database
    if db.dialect == "sqlite":
        await db.engine.dispose()  # its open connection would still answer; new ones cannot
        broken = sqlite_unreachable(url)
    else:
        broken = postgres_unreachable(request, url)
    with broken:
        for _ in range(2):  # the dropped connection, then a new one refused
            r = await client.get("/readyz")
            assert r.status == 503
            body = await r.json()
            assert body["status"] == "unready"
            assert body["checks"]["database"].startswith("error: ")
            assert body["checks"]["transcription"] == "ok"
            assert body["checks"]["draining"] == "ok"
    r = await client.get("/readyz")
    assert r.status == 200, await r.text()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts and never answers: a database host that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_database_check_gives_up_on_a_silent_database(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "READY_DATABASE_TIMEOUT_S", 0.5)
    db = Database(f"postgresql+asyncpg://tingshen@127.0.0.1:{silent_server}/tingshen")
    try:
        started = asyncio.get_running_loop().time()
        assert await database_check(db) == "timeout"
        assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        await db.aclose()


# -- metrics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_metrics_have_their_own_registry(client: TestClient) -> None:
    assert client.app[METRICS] is not prometheus_client.REGISTRY
    samples = await scrape(client)
    assert value(samples, "tingshen_websocket_connections") == 0
    assert total(samples, "tingshen_hearings_live") == 0
    assert {state.value for state in HearingState} <= {
        dict(labels)["state"] for name, labels in samples if name == "tingshen_hearings_live"}
    assert "process_resident_memory_bytes" in {name for name, _ in samples}
    default = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "tingshen_" not in default


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_metrics_speak_openmetrics_when_asked(client: TestClient) -> None:
    r = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(await r.text())}
    assert families["tingshen_recognizer_lag_seconds"].type == "gaugehistogram"
    assert families["tingshen_forwarded_bytes"].type == "counter"


async def test_http_errors_are_counted_by_status_and_code(
    client: TestClient, admin: dict[str, str]
) -> None:
    before = await scrape(client)
    r = await client.post("/api/v1/courts", json={"name": ""}, headers=admin)
    assert r.status == 422
    after = await scrape(client)
    invalid = ("tingshen_http_errors_total", {"status": "422", "code": "invalid"})
    assert value(after, invalid[0], **invalid[1]) == value(before, invalid[0], **invalid[1]) + 1
    assert total(after, "tingshen_http_errors_total") == total(
        before, "tingshen_http_errors_total") + 1

    assert (await client.get("/api/v1/courts")).status == 401
    assert (await client.get("/no-such-page")).status == 404
    after2 = await scrape(client)
    assert value(after2, "tingshen_http_errors_total", status="401", code="unauthorized") == (
        value(after, "tingshen_http_errors_total", status="401", code="unauthorized") + 1)
    assert value(after2, "tingshen_http_errors_total", status="404", code="not_found") == (
        value(after, "tingshen_http_errors_total", status="404", code="not_found") + 1)
    assert total(after2, "tingshen_http_errors_total") == total(
        after, "tingshen_http_errors_total") + 2


async def wait_metric(client: TestClient, check: Callable[[Samples], bool],
                      within: float = 20.0) -> Samples:
    """Scrape until `check(samples)` holds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        samples = await scrape(client)
        if check(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"metrics never matched; last: {samples}")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_metrics_follow_a_live_hearing(
    client: TestClient, admin: dict[str, str], clock: FakeClock, settings: Settings
) -> None:
    hearing = await schedule(client, admin, clock)
    judge = HearingClient(hearing.base_url, "judge")
    defendant = HearingClient(hearing.base_url, "defendant")
    stranger = HearingClient(hearing.base_url, "stranger")
    try:
        await stranger.connect()  # a WebSocket that never joins
        await judge.join(hearing.tokens["judge"])
        await defendant.join(device_key=hearing.device_key)
        d_id = hearing.ids["defendant"]
        await judge.wait_for(lambda: (judge.seat(d_id) or {}).get("present") is True)
        await judge.send({"type": "command", "action": "admit", "participant_id": d_id})
        await judge.wait_for(lambda: judge.frames_from(d_id, "video") > 10, 30)

        samples = await scrape(client)
        for role in Role:
            expected = 1 if role.value in ("judge", "defendant") else 0
            assert value(samples, "tingshen_participants_connected", role=role.value) == expected
        assert value(samples, "tingshen_websocket_connections") == 3
        assert value(samples, "tingshen_hearings_live", state="scheduled") == 1
        assert total(samples, "tingshen_hearings_live") == 1
        bytes_before = value(samples, "tingshen_forwarded_bytes_total")
        frames_before = value(samples, "tingshen_forwarded_frames_total")
        assert bytes_before > 0 and frames_before > 0

        # Media keeps flowing both ways: the counters grow with it. (Waited for, not slept
        # for: a busy CI machine once delivered no frame in the second this slept.)
        def frames() -> int:
            return judge.frames_from(d_id, "video") + defendant.frames_from(
                hearing.ids["judge"], "video")

        base = frames()
        await judge.wait_for(lambda: frames() - base > 10, 30)
        received = frames() - base  # before the scrape: the server forwarded at least these
        samples = await scrape(client)
        assert value(samples, "tingshen_forwarded_frames_total") - frames_before >= received
        assert value(samples, "tingshen_forwarded_bytes_total") > bytes_before

        # One bad signaling message: that code's counter goes up by exactly one.
        errors_before = samples
        mark = len(defendant.messages)
        await defendant.send({"type": "command", "action": "close"})
        refused = await defendant.next_message("error", after=mark)
        samples = await scrape(client)
        code = refused["code"]
        assert value(samples, "tingshen_signaling_errors_total", code=code) == value(
            errors_before, "tingshen_signaling_errors_total", code=code) + 1
        assert total(samples, "tingshen_signaling_errors_total") == total(
            errors_before, "tingshen_signaling_errors_total") + 1

        # In session: both are recorded and transcribed.
        await judge.send({"type": "command", "action": "open"})
        await judge.wait_for(lambda: judge.hearing_state == "open")
        await judge.send({"type": "command", "action": "start"})
        await judge.wait_for(lambda: judge.hearing_state == "in_session")
        samples = await wait_metric(client, lambda s: (
            value(s, "tingshen_recording_files_open") == 2
            and value(s, "tingshen_recording_bytes_total") > 0))
        assert value(samples, "tingshen_hearings_live", state="in_session") == 1
        assert value(samples, "tingshen_recognizer_lag_seconds_gcount") == 1
        assert value(samples, "tingshen_recognizer_lag_seconds_bucket", le="+Inf") == 1
        assert value(samples, "tingshen_recognizer_lag_max_seconds") >= 0
        recorded = value(samples, "tingshen_recording_bytes_total")
        await wait_metric(client, lambda s: value(s, "tingshen_recording_bytes_total") > recorded)
        # The CPU by part of the work: recording, decoding the audio and detecting voice in
        # it grow while the two are in session (the thread clocks tick every 10 ms).
        cpu_before = samples
        samples = await wait_metric(client, lambda s: all(
            value(s, "tingshen_cpu_seconds_total", part=part)
            > value(cpu_before, "tingshen_cpu_seconds_total", part=part)
            for part in ("recording", "audio_decoding", "voice_detection", "event_loop")))
        assert {dict(labels)["part"] for name, labels in samples
                if name == "tingshen_cpu_seconds_total"} == {
            "event_loop", "voice_detection", "audio_decoding", "recording",
            "recognition_finals", "recognition_partials", "recognition_settling",
            "recognition_other", "other"}
        cpu_during = samples
    finally:
        for c in (judge, defendant, stranger):
            await c.close()

    samples = await wait_metric(client, lambda s: (
        total(s, "tingshen_participants_connected") == 0
        and value(s, "tingshen_websocket_connections") == 0
        and total(s, "tingshen_hearings_live") == 0))
    assert value(samples, "tingshen_recording_files_open") == 0
    assert value(samples, "tingshen_recognizer_lag_seconds_gcount") == 0
    # Counters keep what the hearing did after it has gone.
    assert value(samples, "tingshen_recording_bytes_total") > recorded
    assert value(samples, "tingshen_forwarded_bytes_total") > bytes_before
    # The recorders' threads have ended; what they spent is still counted.
    assert value(samples, "tingshen_cpu_seconds_total", part="recording") >= value(
        cpu_during, "tingshen_cpu_seconds_total", part="recording")



async def test_readyz_reports_a_starved_executor_and_a_stuck_render_queue(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six long renders once took every thread of the default executor: departures and
    rejoins froze while /readyz said ready."""
    hub = client.app[HUB]
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(2))
    release = threading.Event()
    busy = [loop.run_in_executor(None, release.wait) for _ in range(2)]
    try:
        r = await client.get("/readyz")
        assert r.status == 503, await r.text()
        body = await r.json()
        assert body["status"] == "unready" and body["checks"]["executor"] == "starved"
    finally:
        release.set()
        await asyncio.gather(*busy)
    r = await client.get("/readyz")
    assert r.status == 200 and (await r.json())["checks"]["executor"] == "ok"
    # A render queue that does not move: degraded (live hearings do not wait for it).
    monkeypatch.setattr(hub.composites, "stuck", lambda: True)
    r = await client.get("/readyz")
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["status"] == "degraded" and body["checks"]["renders"] == "stuck"


async def test_metrics_count_the_review_renders_queued_and_running(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renders run ffmpeg, about a core each: an operator (and the workers benchmark, between
    its steps) sees how many are waiting and running."""
    release = asyncio.Event()
    started: list[uuid.UUID] = []

    async def render(registry: object, recordings: object, hearing_id: uuid.UUID,
                     *args: object, **kwargs: object) -> None:
        started.append(hearing_id)
        await release.wait()

    monkeypatch.setattr("signaling.review.render_hearing", render)
    composites = client.app[HUB].composites
    samples = await scrape(client)
    assert value(samples, "tingshen_review_renders", state="queued") == 0
    assert value(samples, "tingshen_review_renders", state="running") == 0
    for _ in range(3):  # one more than the render threads
        composites.start(uuid.uuid4())
    samples = await wait_metric(client, lambda s: value(
        s, "tingshen_review_renders", state="running") == 2)
    assert value(samples, "tingshen_review_renders", state="queued") == 1
    release.set()
    await wait_metric(client, lambda s: value(s, "tingshen_review_renders", state="queued")
                      + value(s, "tingshen_review_renders", state="running") == 0)
    assert len(started) == 3


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # as a CPU-heavy call on the loop would


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_metrics_count_the_event_loops_stalls(client: TestClient) -> None:
    watch = client.app[HUB].loop_watch
    before = watch.stalls  # a busy machine may have stalled it already
    assert value(await scrape(client), "tingshen_event_loop_stalls_total") == before
    hold_the_loop(watch.stall_s + 0.3)
    deadline = time.monotonic() + 10
    while watch.stalls == before:
        assert time.monotonic() < deadline, "the stall was never counted"
        await asyncio.sleep(0.05)
    after = await scrape(client)
    assert value(after, "tingshen_event_loop_stalls_total") == watch.stalls > before
    assert value(after, "tingshen_event_loop_longest_stall_seconds") >= watch.stall_s

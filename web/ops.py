"""Operations: liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics (`/metrics`).

None of them asks for a token: load balancers and Prometheus call them without one. So they
name no hearing, participant or person: metrics are labelled by state, role, status and
error code only, and readiness names its failing checks, not their error messages.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import os
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import text

from config.threads import cpu_seconds_by_kind
from courtrooms.database import Database
from courtrooms.models import HearingState, Role
from signaling.hub import Hub
from web.errors import ERROR_CODE, Handler
from web.keys import HUB

log = logging.getLogger(__name__)

READY_DATABASE_TIMEOUT_S = 2.0
READY_EXECUTOR_TIMEOUT_S = 1.0
# Buckets of the recognizer's lag over the hearings being transcribed: under 2 s the record
# keeps up with speech; past 30 s the clerk sees the record fall behind.
LAG_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

# (status, code) of every error response, counted by `count_http_errors`.
HttpErrors = collections.Counter[tuple[int, str]]
HTTP_ERRORS = web.AppKey("http_errors", HttpErrors)
METRICS = web.AppKey("metrics", CollectorRegistry)


def add_ops_routes(app: web.Application) -> None:
    """Serve `/healthz`, `/readyz` and `/metrics`, and count the app's error responses."""
    app[HTTP_ERRORS] = collections.Counter()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TingshenCollector(app))
    ProcessCollector(registry=registry)
    app[METRICS] = registry
    # Outermost, so it sees every error response as the client gets it.
    app.middlewares.insert(0, count_http_errors)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


@web.middleware
async def count_http_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as e:
        # Raised past the JSON errors (pages, WebSocket upgrades): named by the status.
        if e.status >= 400:
            request.app[HTTP_ERRORS][(e.status, _status_code(e.status))] += 1
        raise
    if response.status >= 400:
        code = response.get(ERROR_CODE) or _status_code(response.status)
        request.app[HTTP_ERRORS][(response.status, code)] += 1
    return response


def _status_code(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process runs and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for new hearings: the database answers, Whisper is loaded, not draining.

    A hearing whose live record stopped or has a gap not yet recovered makes the process
    `degraded`, still 200: it holds that hearing's media, and a load balancer that dropped it
    would only cut the hearing off (the record is recovered from the recording here).
    Operators learn of it from this body and the metrics.
    """
    hub = request.app[HUB]
    transcription = "ok"
    if not hub.transcription_ready:
        transcription = "not_loaded"
    elif hub.records_with_gaps:
        transcription = "degraded"
    checks = {
        "database": await database_check(hub.registry.db),
        "transcription": transcription,
        "draining": "draining" if hub.draining else "ok",
        "executor": await executor_check(),
        "renders": "stuck" if hub.composites.stuck() else "ok",
    }
    if hub.cluster is not None:
        checks["redis"] = "ok" if hub.cluster.connected else "unreachable"
    # A stuck render queue holds no live hearing back (renders have their own threads).
    ready = all(result in ("ok", "degraded", "stuck") for result in checks.values())
    status = "unready"
    if ready:
        status = "degraded" if {"degraded", "stuck"} & set(checks.values()) else "ready"
    return web.json_response({"status": status, "checks": checks},
                             status=200 if ready else 503)


async def executor_check() -> str:
    """`ok` when the event loop's default executor runs a no-op within a second; `starved`
    when its threads are all taken (departures, rejoins and hashing would wait for them)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(READY_EXECUTOR_TIMEOUT_S):
            await loop.run_in_executor(None, _nothing)
    except TimeoutError:
        log.warning("readiness: the default executor did not answer in %.0f s",
                    READY_EXECUTOR_TIMEOUT_S)
        return "starved"
    return "ok"


def _nothing() -> None:
    return None


async def database_check(db: Database) -> str:
    """`ok`, `timeout`, or `error: <the exception's class>` (its message may name hosts)."""
    try:
        async with asyncio.timeout(READY_DATABASE_TIMEOUT_S), db.read() as session:
            await session.execute(text("SELECT 1"))
    except TimeoutError:
        return "timeout"
    except Exception as e:
        log.warning("readiness: the database does not answer: %s", e)
        return f"error: {type(e).__name__}"
    return "ok"


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text format, or OpenMetrics when the scraper asks for it (which keeps
    the lag's gauge histogram typed as one)."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(
        body=encode(request.app[METRICS]), headers={"Content-Type": content_type}
    )


class TingshenCollector(Collector):
    """Reads the app's live state at scrape time; the hot paths only add to integers."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        hub = self._app.get(HUB)  # absent before start-up: everything reads zero
        yield from self._hearings(hub)
        yield from self._media(hub)
        yield from self._transcription(hub)
        yield from self._cpu(hub)
        yield from self._loop(hub)
        yield from self._errors(hub)

    def _hearings(self, hub: Hub | None) -> Iterator[Metric]:
        live = list(hub.hearings.values()) if hub is not None else []
        hearings = GaugeMetricFamily(
            "tingshen_hearings_live", "Hearings held live by this process, by state.",
            labels=["state"],
        )
        states = collections.Counter(h.state for h in live)
        for known in HearingState:
            hearings.add_metric([known.value], states.pop(known.value, 0))
        for state, count in states.items():
            hearings.add_metric([state], count)
        yield hearings

        participants = GaugeMetricFamily(
            "tingshen_participants_connected",
            "Participants connected to this process's hearings, by role.", labels=["role"],
        )
        roles = collections.Counter(role for h in live for role in h.connected_roles)
        for seat in Role:
            participants.add_metric([seat.value], roles.pop(seat.value, 0))
        for role, count in roles.items():
            participants.add_metric([role], count)
        yield participants

        yield GaugeMetricFamily(
            "tingshen_websocket_connections",
            "Signaling WebSockets open, joined to a hearing or not yet.",
            value=hub.signaling_counters.websockets_open if hub is not None else 0,
        )
        yield GaugeMetricFamily(
            "tingshen_draining", "1 while this process drains its hearings to shut down.",
            value=1 if hub is not None and hub.draining else 0,
        )
        cluster = hub.cluster if hub is not None else None
        yield GaugeMetricFamily(
            "tingshen_relayed_sessions",
            "Participants whose WebSocket reached another process, served here over Redis.",
            value=cluster.relayed_sessions if cluster is not None else 0,
        )
        yield GaugeMetricFamily(
            "tingshen_redis_connected", "1 while Redis answers (0 without Redis configured).",
            value=1 if cluster is not None and cluster.connected else 0,
        )

    def _media(self, hub: Hub | None) -> Iterator[Metric]:
        counters = hub.media_counters if hub is not None else None
        yield CounterMetricFamily(
            "tingshen_forwarded_frames",
            "Media frames forwarded to subscribers (each subscriber counts).",
            value=counters.frames_forwarded if counters else 0,
        )
        yield CounterMetricFamily(
            "tingshen_forwarded_bytes",
            "Media payload bytes forwarded to subscribers (each subscriber counts).",
            value=counters.bytes_forwarded if counters else 0,
        )
        yield CounterMetricFamily(
            "tingshen_recording_bytes",
            "Media payload bytes handed to the recording files.",
            value=counters.bytes_recorded if counters else 0,
        )
        files = 0
        if hub is not None:
            files = sum(h.media.open_files for h in hub.hearings.values())
        yield GaugeMetricFamily(
            "tingshen_recording_files_open", "Recording files being written now.", value=files
        )

        renders = GaugeMetricFamily(
            "tingshen_review_renders", "Review composites being rendered, by state.",
            labels=["state"],
        )
        renders.add_metric(["queued"], hub.composites.queued if hub is not None else 0)
        renders.add_metric(["running"], hub.composites.running if hub is not None else 0)
        yield renders

    def _transcription(self, hub: Hub | None) -> Iterator[Metric]:
        live = list(hub.hearings.values()) if hub is not None else []
        # No hearing ids as labels: the largest lag, and how many hearings lag how much.
        lags = [h.recording.transcript.lag_seconds for h in live]
        yield GaugeMetricFamily(
            "tingshen_recognizer_lag_max_seconds",
            "The largest recognizer lag (how far the trial record is behind speech) of this "
            "process's hearings.",
            value=max(lags, default=0.0),
        )
        transcribing = [lag for h, lag in zip(live, lags, strict=True)
                        if h.recording.transcript.feeding or lag > 0]
        buckets = [(str(bound), sum(lag <= bound for lag in transcribing))
                   for bound in LAG_BUCKETS_S]
        buckets.append(("+Inf", len(transcribing)))
        yield GaugeHistogramMetricFamily(
            "tingshen_recognizer_lag_seconds",
            "Hearings being transcribed, by their recognizer lag.",
            buckets=buckets, gsum_value=sum(transcribing),
        )
        yield GaugeMetricFamily(
            "tingshen_records_stopped",
            "Hearings whose live transcriber failed and has not restarted yet.",
            value=hub.records_stopped if hub is not None else 0,
        )
        yield GaugeMetricFamily(
            "tingshen_records_with_gaps",
            "Hearings whose live record stopped or has a gap not yet transcribed from the "
            "recording.",
            value=hub.records_with_gaps if hub is not None else 0,
        )
        counters = hub.transcription_counters if hub is not None else None
        for name, doc, value in (
            ("transcriber_failures", "Hearing transcribers stopped by an error.",
             counters.failures if counters else 0),
            ("transcriber_restarts", "Hearing transcribers started again after a failure.",
             counters.restarts if counters else 0),
            ("lines_recovered", "Trial record lines transcribed from the recording to fill a "
             "gap the live transcriber left.", counters.lines_recovered if counters else 0),
            ("recoveries_failed", "Gaps in a live record that could not be transcribed from "
             "the recording.", counters.recoveries_failed if counters else 0),
            ("lines_settled", "Live trial record lines whose text settling (offline-style "
             "decoding behind the live lines) revised.", counters.lines_settled if counters
             else 0),
            ("lines_added_settled", "Trial record lines settling found that the live lines "
             "had missed.", counters.lines_added_settled if counters else 0),
            ("settle_failures", "Settled spans that could not be stored (their live lines "
             "stayed).", counters.settle_failures if counters else 0),
        ):
            yield CounterMetricFamily(f"tingshen_{name}", doc, value=value)

    def _cpu(self, hub: Hub | None) -> Iterator[Metric]:
        """The process's CPU by what it was spent on, from its named threads (a court sizes
        its servers from these: docs/operations.md)."""
        threads = cpu_seconds_by_kind()
        if not threads:
            return
        worker = hub.services.worker if hub is not None else None
        recognition = threads["recognition"]
        finals, partials, settling, loading = (
            worker.cpu.split(recognition) if worker is not None
            else (0.0, 0.0, 0.0, recognition))
        detection = worker.cpu.voice_detection_s if worker is not None else 0.0
        parts = {
            # The event loop: forwarding, ICE, DTLS and SRTP, signaling, the API.
            "event_loop": threads["event_loop"] - detection,
            "voice_detection": detection,
            "audio_decoding": threads["audio_decoding"],
            "recording": threads["recording"],
            "recognition_finals": finals,
            "recognition_partials": partials,
            # The record decoded again behind the live lines (transcription/settling.py).
            "recognition_settling": settling,
            # Loading the model.
            "recognition_other": loading,
            "other": threads["other"],
        }
        # Which process answered: `serve --workers N` shares one port among N processes.
        yield GaugeMetricFamily("tingshen_process_id", "This process's id.", value=os.getpid())
        cpu = CounterMetricFamily(
            "tingshen_cpu_seconds", "CPU seconds this process spent, by part of the work.",
            labels=["part"],
        )
        for part, seconds in parts.items():
            cpu.add_metric([part], max(0.0, seconds))
        yield cpu

    def _loop(self, hub: Hub | None) -> Iterator[Metric]:
        watch = hub.loop_watch if hub is not None else None
        yield CounterMetricFamily(
            "tingshen_event_loop_stalls", "Times the event loop did not run for a second or "
            "more (the log names what held it).", value=watch.stalls if watch else 0)
        yield GaugeMetricFamily(
            "tingshen_event_loop_longest_stall_seconds", "The longest such stall since start.",
            value=watch.longest_s if watch else 0.0)

    def _errors(self, hub: Hub | None) -> Iterator[Metric]:
        http_errors = CounterMetricFamily(
            "tingshen_http_errors", "HTTP error responses, by status and error code.",
            labels=["status", "code"],
        )
        for (status, code), count in sorted(self._app[HTTP_ERRORS].items()):
            http_errors.add_metric([str(status), code], count)
        yield http_errors
        signaling_errors = CounterMetricFamily(
            "tingshen_signaling_errors", "Signaling `error` messages sent to participants, "
            "by code.", labels=["code"],
        )
        if hub is not None:
            for code, count in sorted(hub.signaling_counters.errors_sent.items()):
                signaling_errors.add_metric([code], count)
        yield signaling_errors

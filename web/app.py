"""The application factory, used by `tingshen serve` and by the tests alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from config import Settings, ensure_admin_token
from courtrooms import anchor
from courtrooms.accounts import StaffAccounts
from courtrooms.database import Database, migrate
from courtrooms.errors import SigningKeyError
from courtrooms.models import utcnow
from courtrooms.recordings import Recordings
from courtrooms.registry import Registry
from courtrooms.staff import StaffSessions
from courtrooms.tokens import ApiTokens
from signaling.bus import InProcessBus, LiveBus, RedisBus
from signaling.checkpoints import Checkpointer
from signaling.cluster import Cluster
from signaling.hub import Hub
from signaling.session import serve_relayed, websocket_handler
from web.api import api
from web.endpoints import MAX_BODY_BYTES
from web.errors import json_errors
from web.keys import (
    ADMIN_TOKEN,
    API_TOKENS,
    HUB,
    LINKS,
    OPENAPI,
    RECORDINGS,
    REGISTRY,
    SETTINGS,
    SIGN_IN_LIMITS,
    STAFF_ACCOUNTS,
    STAFF_SESSIONS,
    VIEWINGS,
)
from web.links import MediaLinks
from web.openapi import build_openapi
from web.ops import add_ops_routes
from web.pages import add_pages
from web.signin_limits import SignInLimits
from web.viewings import Viewings

log = logging.getLogger(__name__)
DATABASE = web.AppKey("database", Database)


def tingshen_version() -> str:
    try:
        return version("tingshen")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    run_migrations: bool = True,
) -> web.Application:
    """An aiohttp application serving the API and pages with `settings`.

    The database is migrated and opened at start-up and closed at clean-up.
    """
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[ADMIN_TOKEN], _ = ensure_admin_token(settings)
    app[OPENAPI] = build_openapi(api, tingshen_version())
    app[SIGN_IN_LIMITS] = SignInLimits()

    async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
        if run_migrations:
            # Alembic runs its own event loop; keep it off this one.
            await asyncio.to_thread(migrate, settings.database)
        db = Database(settings.database)
        try:
            # Created at the first start; kept where the settings say, outside the database.
            signer = await asyncio.to_thread(anchor.load_or_create_key, settings.signing_key)
        except SigningKeyError:
            await db.aclose()
            raise
        app[DATABASE] = db
        registry = Registry(db, clock)
        registry.join_grace = timedelta(hours=settings.join_grace_hours)
        app[REGISTRY] = registry
        recordings = Recordings(db, clock, settings.data_dir, signer)
        app[RECORDINGS] = recordings
        app[VIEWINGS] = Viewings(registry)
        staff_sessions = StaffSessions(db, clock)
        staff_sessions.idle = timedelta(minutes=settings.staff_idle_minutes)
        staff_sessions.lifetime = timedelta(hours=settings.staff_session_hours)
        app[STAFF_SESSIONS] = staff_sessions
        app[STAFF_ACCOUNTS] = StaffAccounts(db, clock)
        app[API_TOKENS] = ApiTokens(db, clock)
        app[LINKS] = MediaLinks(signer.derive("tingshen signed links"))
        cluster: Cluster | None = None
        bus: LiveBus = InProcessBus(settings.data_dir / "live")
        if settings.redis_url is not None:
            cluster = Cluster(settings.redis_url)
            try:
                await cluster.start()
            except Exception:
                await cluster.aclose()
                await db.aclose()
                raise
            bus = RedisBus(cluster)
        hub = Hub(registry, recordings, bus, settings,
                  heartbeat_s=settings.heartbeat_seconds, cluster=cluster)
        hub.transcripts.signer = signer
        checkpointer = Checkpointer(db, signer, settings.checkpoints, clock,
                                    settings.checkpoint_interval_seconds, settings.checkpoint_url)
        if cluster is not None:
            cluster.on_relay = lambda socket: serve_relayed(hub, socket)
        hub.start()
        app[HUB] = hub
        checkpointer.start()
        try:
            await hub.start_transcription()
            await hub.recover_recordings()
            yield
        finally:
            await hub.aclose()
            await checkpointer.aclose()  # after the hub: its last seals are checkpointed
            if cluster is not None:
                await cluster.aclose()
            await db.aclose()

    app.cleanup_ctx.append(registry_ctx)

    async def drain(app: web.Application) -> None:
        # Before aiohttp closes the sockets itself: people are told to reconnect (1012).
        if HUB in app:
            await app[HUB].drain()

    app.on_shutdown.append(drain)
    api.add_to(app)

    async def signaling(request: web.Request) -> web.StreamResponse:
        return await websocket_handler(request, request.app[HUB])

    app.router.add_get("/ws", signaling)
    add_pages(app)
    add_ops_routes(app)
    return app

"""Pages for court staff: scheduling, hearings live now (supervision), and review."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    pass

"""The prison terminal kiosk (`/terminal`): a fixed device, authenticated by its device key."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    pass

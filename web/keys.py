"""The application's shared objects, as typed AppKeys: the one module to import them from."""

from __future__ import annotations

from aiohttp import web

from config import Settings
from courtrooms.accounts import StaffAccounts
from courtrooms.recordings import Recordings
from courtrooms.registry import Registry
from courtrooms.staff import StaffSessions
from courtrooms.tokens import ApiTokens
from signaling.hub import Hub
from web.links import MediaLinks
from web.signin_limits import SignInLimits
from web.viewings import Viewings

ADMIN_TOKEN = web.AppKey("admin_token", str)
SETTINGS = web.AppKey("settings", Settings)
REGISTRY = web.AppKey("registry", Registry)
RECORDINGS = web.AppKey("recordings", Recordings)
HUB = web.AppKey("hub", Hub)
OPENAPI = web.AppKey("openapi", dict)
VIEWINGS = web.AppKey("viewings", Viewings)
STAFF_SESSIONS = web.AppKey("staff_sessions", StaffSessions)
STAFF_ACCOUNTS = web.AppKey("staff_accounts", StaffAccounts)
API_TOKENS = web.AppKey("api_tokens", ApiTokens)
LINKS = web.AppKey("links", MediaLinks)
SIGN_IN_LIMITS = web.AppKey("sign_in_limits", SignInLimits)

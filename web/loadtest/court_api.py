"""The few REST calls the load tool makes to the server under test."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from web.errors import LoadTestError

API = "/api/v1"


class CourtApi:
    """The few REST calls the tool makes, with the admin token."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/") + API
        self._headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with self._session.request(method, self._base + path, json=body,
                                             headers=self._headers) as r:
                text = await r.text()
                if r.status >= 400:
                    try:
                        error = json.loads(text)["error"]
                        detail = f"{error['code']}: {error['message']}"
                    except (ValueError, KeyError, TypeError):
                        detail = text[:200]
                    raise LoadTestError(f"{method} {API}{path} -> {r.status} {detail}")
                return json.loads(text) if text else None
        except (aiohttp.ClientError, OSError) as e:
            raise LoadTestError(f"{method} {API}{path}: {type(e).__name__}: {e}") from e

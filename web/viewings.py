"""Reads of the record, audited once per viewing.

A player fetches a recording in many range requests (and seeks from anywhere), a page of an
exhibit in many images: each reader's first fetch of a thing is audited, then nothing more of
the same thing by the same reader for `VIEWING_S`. Kept per process: with several workers a
viewing may be audited once in each, never not at all.
"""

from __future__ import annotations

import time
import uuid

from courtrooms.registry import Registry

VIEWING_S = 30 * 60.0
MAX_TRACKED = 10_000


class Viewings:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._last: dict[tuple[str, str, str], float] = {}

    async def audit(self, hearing_id: uuid.UUID, actor: str, action: str, **what: str) -> None:
        """Audit `action` on `what` by `actor`, unless they are already viewing it."""
        key = (actor, action, repr(sorted(what.items())))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < VIEWING_S:
            return
        if len(self._last) >= MAX_TRACKED:  # the oldest viewings are over anyway
            for old in sorted(self._last, key=self._last.__getitem__)[: MAX_TRACKED // 2]:
                del self._last[old]
        self._last[key] = now
        await self._registry.record(hearing_id, actor, action, **what)

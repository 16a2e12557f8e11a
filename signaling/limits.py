"""Rate limits on what one participant can make the server do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Allows `rate` events a second with bursts of `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def ready(self) -> bool:
        """Whether an event would be allowed now (nothing is taken)."""
        self._refill()
        return self.tokens >= 1

    def allow(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


# Messages on one connection.
MESSAGES_PER_S, MESSAGES_BURST = 20.0, 60.0
# A new peer connection (media_restart) sets up ICE and DTLS on the server: a page needs one
# after a network change, not one a second.
MEDIA_RESTARTS_PER_S, MEDIA_RESTARTS_BURST = 1 / 5, 5.0
# Joins of one participant into a live hearing (a rejoin replaces the previous connection and
# its peer): a page reconnecting with backoff stays well within this.
ARRIVALS_PER_S, ARRIVALS_BURST = 1 / 3, 10.0


class Coalesced:
    """Calls `fn` now, or once at the end of the interval when it was just called: however
    often it is asked for, `fn` runs at most once per `interval_s`, and always after the
    last request (so what it sends is the latest)."""

    def __init__(self, interval_s: float, fn: Callable[[], None]) -> None:
        self.interval_s = interval_s
        self._fn = fn
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if self._timer is not None:
            return  # the call already scheduled serves this request too
        loop = asyncio.get_running_loop()
        wait = self._last + self.interval_s - loop.time()
        if wait <= 0:
            self._run()
        else:
            self._timer = loop.call_later(wait, self._run)

    def _run(self) -> None:
        self._timer = None
        self._last = asyncio.get_running_loop().time()
        self._fn()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

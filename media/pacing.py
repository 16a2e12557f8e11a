"""Pacing a subscriber's video so that its audio never waits behind it.

aiortc sends each frame's packets as fast as it can; a keyframe (tens of kilobytes) then
arrives at the subscriber's bottleneck all at once and the queue there drops whatever comes
next, audio included. Here video packets to one subscriber leave at the rate its link
carries (a token bucket that may run into debt by one packet), while audio and RTCP go at
once. A video sender that must wait simply sends later: its slot's queue grows, and a slot
that falls too far behind starts again from a keyframe (`media.forwarding`).
"""

from __future__ import annotations

import asyncio

# Tokens never pile up beyond this: a link idle for a while still gets no burst larger than
# what its bottleneck queues in a few tens of milliseconds.
BURST_S = 0.04
MIN_BURST_BYTES = 2_400


class Pacer:
    """One subscriber's video pacing; `rate_bps` None: no limit (nothing known of the link)."""

    def __init__(self) -> None:
        self.rate_bps: float | None = None
        self.waited_s = 0.0  # total time video packets waited here
        self._tokens = 0.0
        self._at: float | None = None
        self._lock = asyncio.Lock()  # FIFO: packets leave in the order they came

    def _refill(self, now: float) -> None:
        rate = self.rate_bps
        if rate is None:
            self._tokens = 0.0
        elif self._at is not None:
            burst = max(MIN_BURST_BYTES, rate / 8 * BURST_S)
            self._tokens = min(burst, self._tokens + (now - self._at) * rate / 8)
        self._at = now

    def try_take(self, nbytes: int, now: float) -> bool:
        """Take `nbytes` if they may leave now, without waiting (retransmissions: one that
        cannot go now is not worth sending later)."""
        if self.rate_bps is None and not self._lock.locked():
            return True
        if self._lock.locked():
            return False
        self._refill(now)
        if self._tokens < 0:
            return False
        self._tokens -= nbytes
        return True

    async def take(self, nbytes: int) -> None:
        """Wait until `nbytes` of video may leave."""
        if self.rate_bps is None and not self._lock.locked():
            return
        loop = asyncio.get_running_loop()
        async with self._lock:
            self._refill(loop.time())
            while self.rate_bps is not None and self._tokens < 0:
                wait = -self._tokens * 8 / self.rate_bps
                self.waited_s += wait
                await asyncio.sleep(wait)
                self._refill(loop.time())
            self._tokens -= nbytes

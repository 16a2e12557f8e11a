"""Stalls of the process's event loop: when, how long, and what held it.

Everything live in a process runs on one event loop: signaling, media forwarding, the Redis
heartbeat that keeps the process's hearings its own (a process key of 4 s, leases of 5 s). A
callback that holds the loop for seconds delays all of them at once, and afterwards nothing
says which one it was. A stalled loop cannot time itself, so a thread watches its heartbeat
and, the moment it goes stale, takes the loop thread's stack: the log names the code that held
the loop, while it holds it. `/metrics` counts the stalls and keeps the longest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)

STALL_S = 1.0  # a loop that has not run for this long is stalled
TICK_S = 0.1
STACK_FRAMES = 12


class LoopWatch:
    """Watches the running loop from `start()` to `aclose()`."""

    def __init__(self, stall_s: float = STALL_S, tick_s: float = TICK_S) -> None:
        self.stall_s, self.tick_s = stall_s, tick_s
        self.stalls = 0  # stalls of stall_s or more, ended
        self.longest_s = 0.0  # the longest stall's length
        self._beat = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._stop.clear()
        self._task = asyncio.create_task(self._tick(), name="loop-watch")
        self._thread = threading.Thread(target=self._watch, name="loopwatch", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._thread is not None:
            self._stop.set()
            # It wakes every tick to look at the loop: joined at once (not in the default
            # executor, which a stalled task may hold).
            self._thread.join(self.tick_s * 5)
            self._thread = None

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            self._beat = before
            await asyncio.sleep(self.tick_s)
            # The loop's own measure of the stall: how late the sleep ended.
            late = time.monotonic() - before - self.tick_s
            if late >= self.stall_s:
                self.stalls += 1
                self.longest_s = max(self.longest_s, late)
                log.warning("the event loop was stalled for %.1f s", late)

    def _watch(self) -> None:
        reported = None  # the beat whose stall was reported
        while not self._stop.wait(self.tick_s):
            beat = self._beat
            if time.monotonic() - beat < self.stall_s or beat == reported:
                continue
            reported = beat
            frame = sys._current_frames().get(self._loop_thread)
            stack = "".join(traceback.format_stack(frame, limit=STACK_FRAMES)) if frame else ""
            log.warning("the event loop has not run for %.1f s; it is in:\n%s",
                        time.monotonic() - beat, stack.rstrip())

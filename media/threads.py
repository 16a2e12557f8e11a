"""Worker threads the event loop waits for without the default executor.

`asyncio.to_thread(thread.join)` would take a thread of the loop's default executor for as
long as the join waits; when long work fills that executor (six composite renders did),
departures and rejoins, which finish files, froze. Here the thread tells the loop itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

from config.threads import name_this_thread, retire_this_thread

END_POLL_S = 0.01


def start_thread(target: Callable[[], None], name: str) -> asyncio.Future[None]:
    """Run `target` in a new daemon thread; the future completes on this loop when it ends."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        name_this_thread(name)
        try:
            target()
        finally:
            retire_this_thread(name)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, ended)

    threading.Thread(target=run, name=name, daemon=True).start()
    return ended


def _resolve(ended: asyncio.Future[None]) -> None:
    if not ended.done():
        ended.set_result(None)


async def put_end(items: queue.Queue[Any]) -> None:
    """Queue the end marker (None) for a worker thread, waiting on the loop while it is full."""
    await put_waiting(items, None)


async def put_waiting(items: queue.Queue[Any], item: Any) -> None:
    """Queue `item` for a worker thread, waiting on the loop while the queue is full."""
    while True:
        try:
            items.put_nowait(item)
            return
        except queue.Full:
            await asyncio.sleep(END_POLL_S)

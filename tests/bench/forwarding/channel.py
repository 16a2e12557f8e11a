"""The benchmark's processes talk over multiprocessing pipes, read on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
from typing import Any

from media.aiortc_adapter import restrict_host_addresses

LOOPBACK = ["127.0.0.1"]
READY_TIMEOUT_S = 40.0


class Channel:
    """One end of a multiprocessing pipe, read on the event loop; sends never block the loop."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self.inbox.put_nowait(self.conn.recv())
        except (EOFError, OSError):
            self._loop.remove_reader(self.conn.fileno())
            self.inbox.put_nowait(None)

    async def send(self, message: Any) -> None:
        async with self._lock:
            await asyncio.to_thread(self.conn.send, message)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.conn.fileno())


def child_setup() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(processName)s %(name)s: %(message)s")
    restrict_host_addresses(LOOPBACK)

"""A participant's network link that a test can cut: a TCP relay between one browser context and
the server. Chromium's offline emulation (`context.set_offline`) leaves open WebSockets working
both ways, so the server never learns of the "drop"; cutting here drops the traffic as a dead
network does: nothing passes either way, no FIN or RST reaches anyone, and the server finds out
from its own heartbeat. Restoring resets the dead connections, as the browser finds them when
the network comes back, and passes new ones again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Link:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._up = asyncio.Event()
        self._up.set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def cut(self) -> None:
        self._up.clear()

    async def restore(self) -> None:
        # Connections that lived through the cut are dead: reset them, both ends.
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._up.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            # A connection opened while the link is cut waits, as a SYN into a dead network does.
            await self._up.wait()
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except (OSError, asyncio.CancelledError):
            self._writers.discard(writer)
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        tasks = {asyncio.create_task(self._pipe(reader, up_writer)),
                 asyncio.create_task(self._pipe(up_reader, writer))}
        self._pipes |= tasks
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._pipes -= tasks
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                # While cut, an end's FIN is not passed on either: it is held until the restore
                # resets the connection.
                await self._up.wait()
                return
            await self._up.wait()
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def link_to(target_port: int) -> AsyncIterator[Link]:
    link = Link(target_port)
    await link.start()
    try:
        yield link
    finally:
        await link.close()

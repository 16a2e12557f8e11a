"""Periodic checkpoints of the audit chain's head, signed, appended to the checkpoint file and
sent to a configured URL. Nothing here ever waits on a hearing or makes one wait: a URL that
does not answer is retried at the next checkpoint, from where its deliveries stopped."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import aiohttp

from courtrooms import anchor
from courtrooms.database import Database
from signaling.tasks import TaskSet

log = logging.getLogger(__name__)

POST_TIMEOUT_S = 10.0
# Checkpoints sent in one round; the rest follow at the next.
POST_BATCH = 100


class Checkpointer:
    """Owns the checkpoint loop of one process (`start`, `aclose`)."""

    def __init__(
        self,
        db: Database,
        signer: anchor.Signer,
        checkpoint_file: Path,
        clock: Callable[[], datetime],
        interval_s: float,
        url: str | None = None,
    ) -> None:
        self.db = db
        self.signer = signer
        self.log = anchor.CheckpointLog(checkpoint_file)
        self.clock = clock
        self.interval_s = interval_s
        self.url = url
        # How far the URL has taken the file (a seq), kept beside it across restarts.
        self.delivered_file = checkpoint_file.with_name(checkpoint_file.name + ".delivered")
        self._last: tuple[int, str] | None = None
        self._tasks = TaskSet("checkpoints")

    def start(self) -> None:
        self._tasks.spawn(self._run(), name="checkpoints")
        if self.url is not None:
            # Apart: a URL that hangs delays its deliveries, never the checkpoints.
            self._tasks.spawn(self._send(), name="checkpoint-delivery")

    async def aclose(self) -> None:
        """Stop the loop; the head as the process leaves it is checkpointed."""
        await self._tasks.cancel()
        try:
            await self.checkpoint()
        except Exception:
            log.exception("the final checkpoint of the audit chain failed")

    async def _run(self) -> None:
        while True:
            try:
                await self.checkpoint()
            except Exception:
                log.exception("checkpointing the audit chain failed; retried in %.0f s",
                              self.interval_s)
            await asyncio.sleep(self.interval_s)

    async def _send(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.deliver()
            except Exception:
                log.exception("delivering checkpoints failed; retried in %.0f s",
                              self.interval_s)

    async def checkpoint(self) -> anchor.Checkpoint | None:
        """Sign the chain's head and append it to the file, unless it was already."""
        if self._last is None:
            last = await asyncio.to_thread(self.log.last)
            if last is not None:
                self._last = (int(last["seq"]), str(last["hash"]))
        head = await anchor.head(self.db)
        if head is None or (head.seq, head.hash) == self._last:
            return None
        checkpoint = anchor.Checkpoint.make(self.signer, head.seq, head.hash, self.clock())
        await asyncio.to_thread(self.log.append, checkpoint)
        self._last = (head.seq, head.hash)
        return checkpoint

    async def deliver(self) -> int:
        """POST the checkpoints the URL has not taken yet, oldest first; stops at the first
        failure (logged) and returns how many were taken."""
        assert self.url is not None
        checkpoints, _ = await asyncio.to_thread(self.log.read)
        done = await asyncio.to_thread(self._delivered)
        pending = sorted((c for c in checkpoints if int(c["seq"]) > done),
                         key=lambda c: int(c["seq"]))[:POST_BATCH]
        sent = 0
        if not pending:
            return 0
        timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                for checkpoint in pending:
                    async with http.post(self.url, json=checkpoint) as response:
                        if response.status >= 300:
                            raise aiohttp.ClientResponseError(
                                response.request_info, (), status=response.status,
                                message=response.reason or "")
                    sent += 1
                    await asyncio.to_thread(self._mark_delivered, int(checkpoint["seq"]))
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("the checkpoint of audit event %s was not taken by %s (%s); "
                        "retried at the next checkpoint", pending[sent]["seq"], self.url,
                        e.__class__.__name__)
        return sent

    def _delivered(self) -> int:
        try:
            return int(json.loads(self.delivered_file.read_text())["seq"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return 0

    def _mark_delivered(self, seq: int) -> None:
        partial = self.delivered_file.with_name(self.delivered_file.name + ".partial")
        partial.write_text(json.dumps({"seq": seq}))
        os.replace(partial, self.delivered_file)

"""Owning background tasks: one way to spawn them, log their failures, and end them."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class TaskSet:
    """Tasks with one owner. `cancel()` ends them (cancel, then await); `finish()` waits for
    them to complete, for work that must not be cut short (finishing files, sealing)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None,
              context: contextvars.Context | None = None) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s failed", self.name, task.get_name(),
                      exc_info=task.exception())

    async def finish(self) -> None:
        """Wait for every task, including those spawned meanwhile."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel every task and wait until each has ended."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            # gather: the tasks' cancellations are results; our own still propagates.
            await asyncio.gather(*tasks, return_exceptions=True)

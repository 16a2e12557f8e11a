"""Stalls of the event loop are counted, measured, and the code that held the loop named."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from signaling.loopwatch import LoopWatch


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # as a CPU-heavy call on the loop would


async def until(condition, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)


async def test_a_stall_is_counted_measured_and_its_culprit_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = LoopWatch(stall_s=0.3, tick_s=0.05)
    watch.start()
    try:
        await asyncio.sleep(0.2)
        assert watch.stalls == 0
        with caplog.at_level(logging.WARNING, logger="signaling.loopwatch"):
            hold_the_loop(0.8)
            await until(lambda: watch.stalls == 1)
        assert 0.7 <= watch.longest_s < 5.0, watch.longest_s
        # Named while it held the loop, by the watching thread.
        named = [r.getMessage() for r in caplog.records if "has not run" in r.getMessage()]
        assert len(named) == 1 and "hold_the_loop" in named[0], named
        # A loop that runs again is no longer reported.
        caplog.clear()
        await asyncio.sleep(0.5)
        assert watch.stalls == 1 and not caplog.records
    finally:
        await watch.aclose()

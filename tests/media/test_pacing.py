"""Pacing a subscriber's video: no faster than its link, in order, retransmissions never wait."""

from __future__ import annotations

import asyncio

from media.pacing import Pacer


async def test_without_a_known_limit_nothing_waits():
    pacer = Pacer()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(1000):
        await pacer.take(1200)
    assert pacer.waited_s == 0.0
    assert pacer.try_take(1200, loop.time())
    assert loop.time() - start < 5.0  # not a timing claim: it only never slept


async def test_video_leaves_no_faster_than_the_rate_and_in_order():
    pacer = Pacer()
    pacer.rate_bps = 400_000  # 50 kB/s
    loop = asyncio.get_running_loop()
    order: list[int] = []

    async def packet(i: int) -> None:
        await pacer.take(5_000)
        order.append(i)

    start = loop.time()
    await asyncio.gather(*(packet(i) for i in range(10)))
    # 50 kB at 50 kB/s: the first packet goes at once, the others wait their turn (a lower
    # bound only: a busy machine may take longer, never less).
    assert loop.time() - start >= 0.9 * (45_000 / 50_000)
    assert order == list(range(10))
    assert pacer.waited_s > 0


async def test_a_retransmission_that_cannot_go_now_is_not_sent():
    pacer = Pacer()
    pacer.rate_bps = 80_000
    loop = asyncio.get_running_loop()
    await pacer.take(1_200)  # the link's share is spent for a while
    assert not pacer.try_take(1_200, loop.time())
    await asyncio.sleep(0.3)  # 3 kB of room again
    assert pacer.try_take(1_200, loop.time())

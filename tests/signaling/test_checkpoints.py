"""Checkpoints of the audit chain: signed, appended to their file, and sent to a real HTTP
server that may be down (retried later, from where deliveries stopped)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from courtrooms import anchor
from courtrooms.registry import Registry
from courtrooms.schemas import CourtIn
from signaling.checkpoints import Checkpointer
from tests.conftest import FakeClock
from tests.courtrooms.builders import ACTOR
from tests.servers import free_port


class Receiver:
    """A real HTTP server taking checkpoints; `failing` answers 503 instead."""

    def __init__(self) -> None:
        self.taken: list[dict[str, Any]] = []
        self.failing = False
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/checkpoints"
        self.runner: web.AppRunner | None = None

    async def take(self, request: web.Request) -> web.Response:
        if self.failing:
            return web.Response(status=503)
        self.taken.append(await request.json())
        return web.Response(status=201)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/checkpoints", self.take)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def receiver() -> Any:
    r = Receiver()
    yield r
    await r.stop()


def checkpointer(registry: Registry, tmp_path: Path, url: str | None = None,
                 interval_s: float = 60.0) -> Checkpointer:
    signer = anchor.load_or_create_key(tmp_path / "keys" / "signing.pem")
    return Checkpointer(registry.db, signer, tmp_path / "checkpoints.jsonl", registry.clock,
                        interval_s, url)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_moved_head_is_checkpointed_once(
    registry: Registry, tmp_path: Path
) -> None:
    keeper = checkpointer(registry, tmp_path)
    assert await keeper.checkpoint() is None  # an empty chain has no head
    await registry.create_court(CourtIn(name="Court 1"), ACTOR)
    first = await keeper.checkpoint()
    assert first is not None and first.seq == 1
    assert await keeper.checkpoint() is None  # unchanged
    # A new process reads where the file stands: no duplicate either.
    assert await checkpointer(registry, tmp_path).checkpoint() is None
    await registry.create_court(CourtIn(name="Court 2"), ACTOR)
    second = await keeper.checkpoint()
    assert second is not None and second.seq == 2
    written, bad = anchor.CheckpointLog(tmp_path / "checkpoints.jsonl").read()
    assert bad == [] and [c["seq"] for c in written] == [1, 2]
    assert written[1] == second.to_json()
    assert keeper.signer.check(second.payload(), written[1]["signature"]) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_checkpoints_reach_the_url_once_it_answers(
    registry: Registry, tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = checkpointer(registry, tmp_path, receiver.url)
    await registry.create_court(CourtIn(name="Court 1"), ACTOR)
    await keeper.checkpoint()
    # Nobody listens yet: logged, nothing lost.
    with caplog.at_level(logging.WARNING, "signaling.checkpoints"):
        assert await keeper.deliver() == 0
    assert "retried at the next checkpoint" in caplog.text
    await receiver.start()
    receiver.failing = True
    await registry.create_court(CourtIn(name="Court 2"), ACTOR)
    await keeper.checkpoint()
    assert await keeper.deliver() == 0
    receiver.failing = False
    assert await keeper.deliver() == 2
    assert [c["seq"] for c in receiver.taken] == [1, 2]
    assert await keeper.deliver() == 0  # each is sent once
    # A restarted process resumes after what was taken.
    await registry.create_court(CourtIn(name="Court 3"), ACTOR)
    again = checkpointer(registry, tmp_path, receiver.url)
    await again.checkpoint()
    assert await again.deliver() == 1
    assert [c["seq"] for c in receiver.taken] == [1, 2, 3]
    assert all(again.signer.check({k: v for k, v in c.items() if k != "signature"},
                                  c["signature"]) is None for c in receiver.taken)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_loop_never_waits_on_a_url_that_hangs(
    registry: Registry, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL that takes the connection and never answers: checkpoints go on being
    written, and closing the checkpointer does not wait for it."""
    import signaling.checkpoints

    monkeypatch.setattr(signaling.checkpoints, "POST_TIMEOUT_S", 30.0)
    hanging = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = hanging.sockets[0].getsockname()[1]
    try:
        keeper = checkpointer(registry, tmp_path, f"http://127.0.0.1:{port}/", 0.05)
        await registry.create_court(CourtIn(name="Court 1"), ACTOR)
        keeper.start()
        log = anchor.CheckpointLog(tmp_path / "checkpoints.jsonl")
        await asyncio.sleep(0.5)  # the delivery is hanging by now
        await registry.create_court(CourtIn(name="Court 2"), ACTOR)
        for _ in range(100):
            if (last := log.last()) is not None and last["seq"] == 2:
                break
            await asyncio.sleep(0.05)
        assert [c["seq"] for c in log.read()[0]] == [1, 2]
        await registry.create_court(CourtIn(name="Court 3"), ACTOR)
        started = asyncio.get_running_loop().time()
        await keeper.aclose()
        assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        hanging.close()
    # The final checkpoint is written at close although the URL never answered.
    assert [c["seq"] for c in log.read()[0]] == [1, 2, 3]
    assert json.loads((tmp_path / "checkpoints.jsonl").read_text().splitlines()[-1])["seq"] == 3

"""`tingshen loadtest` against the real app on a loopback port: its report must be true."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
import wave
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aioice.ice
import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from tests.conftest import ADMIN_TOKEN
from tests.speech import SPEECH
from web.app import create_app
from web.errors import LoadTestError
from web.keys import HUB
from web.loadtest.cli import video_format
from web.loadtest.encoded import VideoFormat
from web.loadtest.peer import EncodedMedia, load_speech
from web.loadtest.plan import LoadPlan
from web.loadtest.run import LoadRun

TINGSHEN = Path(sys.executable).parent / "tingshen"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    """The real app with the real clock: the tool schedules hearings for now."""
    return create_app(settings)


@pytest.fixture
async def server(aiohttp_client: Any, app: web.Application) -> TestClient:
    """`app` on a real loopback port."""
    return await aiohttp_client(app)


def base_url(server: TestClient) -> str:
    return str(server.make_url("")).rstrip("/")


def plan(server: TestClient, **changes: Any) -> LoadPlan:
    small = LoadPlan(url=base_url(server), admin_token=ADMIN_TOKEN, hearings=3, participants=3,
                     duration_s=2.5, ping_s=0.5, concurrency=4)
    return replace(small, **changes)


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def hearing_states(server: TestClient, ids: list[str]) -> set[str]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    states = set()
    for hearing_id in ids:
        r = await server.get(f"/api/v1/hearings/{hearing_id}", headers=admin)
        states.add((await r.json())["state"])
    return states


async def test_signaling_clients_are_held_as_the_server_sees_them(
    server: TestClient, app: web.Application
) -> None:
    hub = app[HUB]
    async with LoadRun(plan(server)) as run:
        invitations = await run.schedule()
        baseline = await run.baseline(5)
        assert len(invitations) == 9 and len(run.hearing_ids) == 3
        await run.join()
        # The server's own state: 9 connections, each a present seat waiting in the lobby.
        assert len(hub.connections) == 9
        seats = [s for h in run.hearing_ids for s in await hub.seats(uuid.UUID(h))]
        assert len(seats) == 9
        assert all(s.present and not s.admitted for s in seats)
        assert not any(live.media.peers for live in hub.hearings.values())
        # Heartbeats every second (the test settings): held clients must answer them.
        await run.hold()
        report = await run.finish()

    assert report.joined == 9 and report.join.count == 9
    assert report.held == 9 and report.server_present == 9
    assert report.errors == {} and report.disconnections == {}
    assert 0 < report.join.p50 <= report.join.p99 <= report.join.max
    assert report.joins_per_s > 0 and report.held_seconds >= 2.5
    assert baseline.count == 5 and report.baseline == baseline
    assert report.pings > 9 and report.pongs == report.pings
    # Left clean: everyone gone, every hearing cancelled.
    assert report.hearings_cleaned == 3 and report.cleanup_errors == {}
    await eventually(lambda: not hub.connections and not hub.hearings)
    assert await hearing_states(server, run.hearing_ids) == {"cancelled"}


@sqlite_only
async def test_a_wrong_token_is_counted_as_the_servers_refusal(server: TestClient) -> None:
    async with LoadRun(plan(server)) as run:
        await run.schedule()
        run.invitations[4] = replace(run.invitations[4], token="forged-" + "x" * 40)
        await run.join()
        await run.hold(0.5)
        report = await run.finish()

    assert report.errors == {"access_denied": 1}
    assert report.joined == 8 and report.held == 8 and report.server_present == 8


@sqlite_only
@pytest.mark.alone  # real-time media from eight clients in this process: `make test` runs it alone
async def test_media_clients_answer_offers_and_receive_frames(
    server: TestClient, app: web.Application
) -> None:
    hub = app[HUB]
    async with LoadRun(plan(server, hearings=1, participants=3, media=True,
                            speech=SPEECH / "en_opening.wav", duration_s=3.0)) as run:
        await run.schedule()
        await run.join()
        await run.hold()
        (live,) = hub.hearings.values()
        assert len(live.media.peers) == 3  # every participant admitted, with a peer
        report = await run.finish()

    assert report.held == 3 and report.server_present == 3
    assert report.offers_answered >= 3 and report.peers_connected == 3
    assert report.frames_received.get("audio", 0) > 0
    assert report.frames_received.get("video", 0) > 0
    # Each client receives the two others' audio and video, at some rate, while held.
    assert set(report.frame_rates) == {"audio", "video"}
    assert all(rate > 0 for rate in report.frame_rates.values())
    assert report.errors == {} and report.disconnections == {}
    await eventually(lambda: not hub.connections and not hub.hearings)
    assert await hearing_states(server, run.hearing_ids) == {"cancelled"}


@sqlite_only
async def test_a_media_client_told_its_connection_failed_connects_again(
    server: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Consent checks every ~1 s: a connection whose checks go unanswered is lost after 6 s.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1)
    async with LoadRun(plan(server, hearings=1, participants=2, media=True)) as run:
        await run.schedule()
        await run.join()
        first, second = run.clients
        assert first.peer is not None and second.peer is not None
        await eventually(lambda: run.tally.frames["video"] > 10, 20)
        # The first client's link stops, its WebSocket still up.
        lost_pc = first.peer.pc
        assert lost_pc is not None
        pairs = [pair for t in lost_pc.getTransceivers() if t.sender.transport is not None
                 for pair in t.sender.transport.transport._connection._nominated.values()]
        sockets = {id(pair.protocol) for pair in pairs}
        addresses = {(pair.local_candidate.host, pair.local_candidate.port) for pair in pairs}
        original = aioice.ice.StunProtocol.datagram_received

        def cut(self: Any, data: bytes, addr: tuple[str, int]) -> None:
            if id(self) not in sockets and addr not in addresses:
                original(self, data, addr)

        monkeypatch.setattr(aioice.ice.StunProtocol, "datagram_received", cut)
        await eventually(lambda: run.tally.media_failures["ice"] == 1, 20)
        monkeypatch.setattr(aioice.ice.StunProtocol, "datagram_received", original)
        # Retried at once: a new connection, and media both ways again.
        frames = run.tally.frames["audio"]
        await eventually(lambda: first.peer is not None and first.peer.pc is not lost_pc
                         and first.peer.connected and run.tally.frames["audio"] > frames + 100,
                         20)
        report = await run.finish()

    assert report.media_failures == {"ice": 1} and report.peers_connected == 2
    assert report.errors == {} and report.disconnections == {}


@sqlite_only
async def test_the_cli_subcommand_reports_and_writes_json(
    server: TestClient, app: web.Application, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGSHEN_")}

    async def loadtest(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(TINGSHEN), "loadtest", "--url", base_url(server), "--hearings", "2",
            "--participants", "2", "--duration", "1", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return proc.returncode, stdout.decode(), stderr.decode()

    code, stdout, stderr = await loadtest("--token", ADMIN_TOKEN, "--json", str(out))
    assert code == 0, stderr
    assert "joined 4/4" in stdout and "the server counts 4 present" in stdout
    report = json.loads(out.read_text())
    assert report["held"] == report["server_present"] == 4 and report["errors"] == {}

    code, stdout, stderr = await loadtest("--token", "not-the-admin-token-at-all")
    assert code == 2 and stdout == ""
    assert "401 unauthorized" in stderr and "Traceback" not in stderr
    await eventually(lambda: not app[HUB].connections and not app[HUB].hearings)


def test_plans_that_cannot_run_are_refused_naming_the_problem(tmp_path: Path) -> None:
    ok = LoadPlan(url="http://127.0.0.1:1", admin_token="t" * 16, hearings=2, participants=3)
    with pytest.raises(LoadTestError, match="over --max-clients 5"):
        replace(ok, max_clients=5).check()
    with pytest.raises(LoadTestError, match="--in-session needs --media"):
        replace(ok, in_session=True).check()
    with pytest.raises(LoadTestError, match="--url"):
        replace(ok, url="127.0.0.1:8080").check()
    with pytest.raises(LoadTestError, match="at least 1"):
        replace(ok, hearings=0).check()
    for share in (0.0, 1.5):
        with pytest.raises(LoadTestError, match="--speaking-share"):
            replace(ok, speaking_share=share).check()
    not_wav = tmp_path / "speech.wav"
    not_wav.write_text("not audio")
    with pytest.raises(LoadTestError, match="cannot read it as WAV"):
        LoadRun(replace(ok, media=True, speech=not_wav))


def test_the_camera_format_is_read_from_the_command_line_and_checked() -> None:
    assert video_format("320x240@15") == VideoFormat(320, 240, 15, 266_666)
    assert video_format("640x360@30") == VideoFormat()
    for bad in ("640x360", "641x360@30", "640x360@0", "4000x360@30", "big"):
        with pytest.raises(argparse.ArgumentTypeError):
            video_format(bad)


def test_media_is_encoded_once_as_a_browser_would_send_it() -> None:
    rate = 16_000
    speech = (np.sin(np.arange(rate * 2) * 2 * np.pi * 300 / rate) * 8000).astype(np.int16)
    media = EncodedMedia.encode((speech, rate), VideoFormat(160, 120, 15, 100_000))
    assert len(media.speech) == 100 and len(media.silence) == 50  # 20 ms frames
    assert len(media.video) == 4 * 15 and media.video[0][1] and media.fps == 15
    # Real Opus and VP8: a decoder takes every frame back.
    opus = av.CodecContext.create("opus", "r")
    decoded = sum(f.samples for p in media.speech for f in opus.decode(av.Packet(p)))
    assert abs(decoded - 2 * 48_000) <= 2 * 960
    vp8 = av.CodecContext.create("vp8", "r")
    pictures = [f for data, _ in media.video for f in vp8.decode(av.Packet(data))]
    assert len(pictures) == 60 and (pictures[0].width, pictures[0].height) == (160, 120)


def test_a_speaker_speaks_the_share_of_the_time_asked(tmp_path: Path) -> None:
    """Silence follows each pass of the recording (the normal hearing: someone speaks 70 %
    of the time, not without pause)."""
    wav = tmp_path / "speech.wav"
    said = (np.sin(np.arange(16_000 * 7) * 2 * np.pi * 300 / 16_000) * 8000).astype(np.int16)
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16_000)
        f.writeframes(said.tobytes())
    whole, rate = load_speech(wav)
    assert rate == 16_000 and np.array_equal(whole, said)
    looped, _ = load_speech(wav, 0.7)
    assert looped.size == 16_000 * 10 and np.array_equal(looped[:said.size], said)
    assert not looped[said.size:].any()

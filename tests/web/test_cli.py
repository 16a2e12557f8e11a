"""`tingshen` as people run it: a real process, a real port, real signals."""

from __future__ import annotations

import asyncio
import html
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import free_port

TINGSHEN = Path(sys.executable).parent / "tingshen"
START_TIMEOUT_S = 120
DEMO_TITLE = "张某某盗窃案 公开开庭审理（演示）"


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGSHEN_")}
    env.update({"TINGSHEN_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
                "TINGSHEN_WHISPER_MODEL": "tiny.en", **extra})
    return env


def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def read_until(proc: subprocess.Popen[str], marker: str, count: int = 1) -> str:
    """Stdout up to and including the `count`th line starting with `marker`; fails on exit or
    timeout."""
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(
                f"no {marker!r} line in {START_TIMEOUT_S}s: {''.join(seen)}"
            ) from None
        if line is None:
            raise AssertionError(f"tingshen exited early ({proc.wait()}): {''.join(seen)}")
        seen.append(line)
        if line.startswith(marker):
            count -= 1
            if count == 0:
                return "".join(seen)


def test_serve_seed_demo_prints_working_links_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    proc = subprocess.Popen(
        [str(TINGSHEN), "serve", "--seed-demo", "--port", str(port)],
        env=clean_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out = read_until(proc, "API:")
        base = f"http://127.0.0.1:{port}"
        assert f"Tingshen listening on {base}" in out

        links = dict(re.findall(rf"^\s+(\w+)\s+\S+\s+({re.escape(base)}/join/\S+)$", out,
                                re.MULTILINE))
        assert set(links) == {"judge", "defendant", "lawyer"}, out
        assert len(set(links.values())) == 3
        device_key = re.search(r"device key: (\S+)  \(kiosk: (\S+)\)$", out, re.MULTILINE)
        clerk = re.search(r"^Staff sign-in / API token \((.*)\): (\S+)$", out, re.MULTILINE)
        assert device_key and clerk, out
        token = clerk.group(2)
        assert "generated" in clerk.group(1)
        # Kept where it says, readable by the owner only.
        kept = data_dir / "admin_token"
        assert kept.read_text().strip() == token
        assert kept.stat().st_mode & 0o077 == 0

        status, page = http(links["lawyer"])
        assert status == 200, page
        staff = re.search(r"^Scheduling (\S+)\s+Live now (\S+)\s+Review (\S+)$", out,
                          re.MULTILINE)
        assert staff, out
        for url in (*staff.groups(), device_key.group(2)):
            assert http(url)[0] == 200, url
        assert html.escape(DEMO_TITLE) in page and "李律师" in page

        status, text = http(f"{base}/api/v1/hearings",
                            {"Authorization": f"Bearer {token}"})
        assert status == 200, text
        hearings: dict[str, Any] = json.loads(text)
        assert hearings["total"] == 1 and hearings["items"][0]["title"] == DEMO_TITLE
        status, _ = http(f"{base}/api/v1/hearings", {"Authorization": f"Bearer {token}x"})
        assert status == 401

        status, text = http(f"{base}/api/v1/terminal/assignment",
                            {"Authorization": f"Device {device_key.group(1)}"})
        assert status == 200, text
        assignment = json.loads(text)
        assert assignment["hearing"]["id"] == hearings["items"][0]["id"]
        assert assignment["participant"]["role"] == "defendant" and assignment["token"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_with_an_invalid_port_names_the_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(TINGSHEN), "serve"], env=clean_env(tmp_path / "var", TINGSHEN_PORT="notaport"),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TINGSHEN_PORT" in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "var" / "tingshen.db").exists()  # nothing was started or created


def start_server(data_dir: Path, port: int, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(TINGSHEN), "serve", "--port", str(port), *extra],
        env=clean_env(data_dir, TINGSHEN_ICE_HOST_ADDRESSES="127.0.0.1"),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    return proc, read_until(proc, "API:")


async def record_then_kill(proc: subprocess.Popen[str], base: str, judge_token: str,
                           seconds: float) -> tuple[str, float]:
    """The judge opens and starts the hearing; the server is killed `seconds` later."""
    from tests.clients import HearingClient

    judge = HearingClient(base, "judge")
    try:
        await judge.join(judge_token)
        hearing_id = (await judge.next_message("welcome"))["hearing"]["id"]
        await judge.next_message("offer")
        for action, state in (("open", "open"), ("start", "in_session")):
            await judge.send({"type": "command", "action": action})
            await judge.wait_for(lambda s=state: judge.hearing_state == s)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        proc.send_signal(signal.SIGKILL)
        return hearing_id, time.monotonic() - started
    finally:
        await judge.close()


def post(url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def test_a_killed_server_keeps_its_recording_and_recovers_it_at_start(tmp_path: Path) -> None:
    from tests.probe import codecs, duration, playable_seconds

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "var"
    proc, out = start_server(data_dir, port, "--seed-demo")
    judge_token = re.search(r"judge\s+\S+\s+\S+/join/(\S+)", out)
    admin_token = re.search(r"Staff sign-in / API token \([^)]*\): (\S+)", out)
    assert judge_token and admin_token, out
    admin = {"Authorization": f"Bearer {admin_token.group(1)}"}
    hearing_id, recorded = asyncio.run(record_then_kill(proc, base, judge_token.group(1), 6.0))
    proc.wait(10)

    files = list((data_dir / "recordings" / hearing_id).glob("*.webm"))
    assert len(files) == 1
    # Everything up to the last two seconds plays, straight from the killed server's file.
    assert playable_seconds(files[0]) >= recorded - 2.0

    proc, _ = start_server(data_dir, port)
    try:
        status, text = http(f"{base}/api/v1/hearings/{hearing_id}/recordings", admin)
        assert status == 200, text
        [item] = json.loads(text)["items"]
        assert item["status"] == "recovered" and item["error"] is None
        assert item["duration"] >= recorded - 2.0
        assert codecs(files[0]) == ["opus", "vp8"]
        assert abs(duration(files[0]) - item["duration"]) < 0.1
        assert item["size"] == files[0].stat().st_size
        status, text = http(f"{base}/api/v1/audit?hearing_id={hearing_id}&limit=200", admin)
        actions = [e["action"] for e in json.loads(text)["items"]]
        assert "recording.recovered" in actions

        status, text = post(f"{base}/api/v1/hearings/{hearing_id}/close", admin)
        assert status == 200, text
        deadline = time.monotonic() + 120
        while True:
            status, text = http(f"{base}/api/v1/hearings/{hearing_id}/composite", admin)
            composite = json.loads(text)
            if composite["state"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert composite == {"state": "done", "progress": 1.0, "error": None}
        status, text = http(f"{base}/api/v1/hearings/{hearing_id}/recordings", admin)
        [mp4] = [i for i in json.loads(text)["items"] if i["kind"] == "composite"]
        assert mp4["media_type"] == "video/mp4" and mp4["codecs"] == "h264,aac"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    env = clean_env(data_dir)
    verified = subprocess.run([str(TINGSHEN), "verify-audit"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert verified.returncode == 0, verified.stderr
    assert "sealed recordings match" in verified.stdout
    rendered = subprocess.run([str(TINGSHEN), "render", hearing_id], env=env,
                              capture_output=True, text=True, timeout=300)
    assert rendered.returncode == 0, rendered.stderr
    assert "100%" in rendered.stderr and "composite written" in rendered.stdout
    with files[0].open("r+b") as f:
        f.seek(100)
        f.write(b"tampered")
    verified = subprocess.run([str(TINGSHEN), "verify-audit"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert verified.returncode == 1
    assert files[0].name in verified.stderr and "altered" in verified.stderr


def test_a_missing_speech_model_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    result = subprocess.run(
        [str(TINGSHEN), "serve", "--port", str(free_port())],
        env=clean_env(tmp_path / "var", TINGSHEN_WHISPER_MODEL=str(empty)),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "cannot start" in result.stderr and "model.bin" in result.stderr
    assert "Traceback" not in result.stderr

"""`tingshen` as people run it: a real process, a real port, real signals."""

from __future__ import annotations

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
    env.update(TINGSHEN_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **extra)
    return env


def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def read_until(proc: subprocess.Popen[str], marker: str) -> str:
    """Stdout up to and including the line starting with `marker`; fails on exit or timeout."""
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
        device_key = re.search(r"device key: (\S+)$", out, re.MULTILINE)
        clerk = re.search(r"^Clerk API token \((.*)\): (\S+)$", out, re.MULTILINE)
        assert device_key and clerk, out
        token = clerk.group(2)
        assert "generated" in clerk.group(1)
        # Kept where it says, readable by the owner only.
        kept = data_dir / "admin_token"
        assert kept.read_text().strip() == token
        assert kept.stat().st_mode & 0o077 == 0

        status, page = http(links["lawyer"])
        assert status == 200, page
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

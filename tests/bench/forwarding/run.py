"""One configuration run: the server and client processes started, the hearing set up, measured
in windows (switching recording on and off between them), and the processes ended."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from config.machine import busy_jiffies
from tests.bench.forwarding.channel import READY_TIMEOUT_S
from tests.bench.forwarding.clients import clients_main
from tests.bench.forwarding.loops import MediaLoops
from tests.bench.forwarding.recording_section import describe_window
from tests.bench.forwarding.results import (
    RECORDING_SCHEDULE,
    RECORDING_SETTLE_S,
    Config,
    RecordingRun,
    Result,
    Setup,
    Window,
    combine,
)
from tests.bench.forwarding.server import server_main

log = logging.getLogger("bench_forwarding")


def _expect(conn: multiprocessing.connection.Connection, kind: str, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {kind!r} within {timeout} s")
    message = conn.recv()
    if message[0] != kind:
        raise RuntimeError(f"expected {kind!r}, got {message[0]!r}")
    return message[1] if len(message) > 1 else None


def _snapshots(controls: list[Any], which: str) -> tuple[list[dict[str, Any]], float]:
    for c in controls:
        c.send(("snapshot", which))
    snaps = [_expect(c, "snapshot", 10) for c in controls]
    clients = [{**client, "at": s["at"]} for s in snaps for client in s["clients"]]
    return clients, sum(s["cpu_s"] for s in snaps)


def _measure_window(
    server_ctl: multiprocessing.connection.Connection, controls: list[Any], seconds: float,
    recording: bool,
) -> Window:
    busy0, total0 = busy_jiffies()
    server_ctl.send(("start",))
    before, _ = _snapshots(controls, "start")
    time.sleep(seconds)
    after, client_cpu = _snapshots(controls, "stop")
    server_ctl.send(("stop",))
    busy1, total1 = busy_jiffies()
    server = _expect(server_ctl, "measured", 10)
    return Window(recording, server, before, after, client_cpu, busy1 - busy0, total1 - total0)


def _switch_recording(server_ctl: multiprocessing.connection.Connection, on: bool) -> None:
    server_ctl.send(("record", on))
    _expect(server_ctl, "recorded", 30)
    time.sleep(RECORDING_SETTLE_S)


def run_config(
    config: Config, loops: MediaLoops, warmup_s: float, measure_s: float,
    record_dir: Path | None = None,
) -> tuple[list[Result], RecordingRun | None]:
    """One hearing. A recording config (which needs `record_dir`) gives the forwarding row of
    its windows without recording, its recording row and their comparison."""
    recording_mode = config.mode == "recording"
    if recording_mode and record_dir is None:
        raise ValueError("a recording config needs a directory for its files")
    ctx = multiprocessing.get_context("spawn")
    pids = [f"p{i}" for i in range(config.participants)]
    groups = [pids[i :: config.client_processes] for i in range(config.client_processes)]
    server_ctl, server_ctl_child = ctx.Pipe()
    processes, controls, server_ends = [], [], []
    index = 0
    for group in groups:
        server_end, client_end = ctx.Pipe()
        ctl, ctl_child = ctx.Pipe()
        server_ends.append(server_end)
        controls.append(ctl)
        processes.append(ctx.Process(
            target=clients_main, name=f"clients-{index}",
            args=(group, index, config.participants, loops, client_end, ctl_child),
        ))
        index += len(group)
    server = ctx.Process(
        target=server_main, name="server",
        args=(config.mode, groups, server_ends, server_ctl_child,
              str(record_dir) if record_dir else None),
    )
    schedule = RECORDING_SCHEDULE if recording_mode else (False,)
    window_s = measure_s / schedule.count(False)
    windows: list[Window] = []
    recording_log: dict[str, Any] = {}
    for p in [server, *processes]:
        p.start()
    try:
        setup_s = _expect(server_ctl, "negotiated", READY_TIMEOUT_S)
        # Ready: every subscriber has frames from every other participant's audio and video.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            clients, _ = _snapshots(controls, "poll")
            missing = [
                f"{c['participant']}<-{s['source']}:{s['kind']}"
                for c in clients for s in c["streams"].values() if s["frames"] == 0
            ]
            complete = all(
                len(c["streams"]) == 2 * (config.participants - 1) for c in clients
            )
            if (complete and not missing) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        setup = Setup(
            setup_s=setup_s,
            first_frame_s=[
                s["first_frame_s"] for c in clients for s in c["streams"].values()
                if s["kind"] == "video" and s["first_frame_s"] is not None
            ],
            keyframe_requests_setup=sum(c["keyframe_requests"] for c in clients),
        )
        time.sleep(warmup_s)

        recording = False
        for on in schedule:
            if on != recording:
                _switch_recording(server_ctl, on)
                recording = on
            windows.append(_measure_window(server_ctl, controls, window_s, on))
            if recording_mode:
                log.info("  window %d: %s", len(windows),
                         describe_window(combine(config, windows[-1:], setup), on))
        if recording:
            _switch_recording(server_ctl, False)
        if recording_mode:
            server_ctl.send(("recording_log",))
            recording_log = _expect(server_ctl, "recording_log", 10)
    finally:
        for c in [server_ctl, *controls]:
            with contextlib.suppress(OSError):
                c.send(("quit",))
        for p in [*processes, server]:
            p.join(15)
            if p.is_alive():
                p.terminate()
                p.join(5)

    if not recording_mode:
        return [combine(config, windows, setup)], None
    forwarding = Config("forwarding", config.participants, config.client_processes)
    alone = combine(forwarding, [w for w in windows if not w.recording], setup)
    with_recording = combine(config, [w for w in windows if w.recording], setup)
    run = RecordingRun(
        participants=config.participants,
        windows=[combine(config, [w], setup) for w in windows],
        alone=alone, recording=with_recording, all_alone=alone, all_recording=with_recording,
        log=recording_log,
        files=[
            {**f, "size": Path(f["path"]).stat().st_size if Path(f["path"]).exists() else 0,
             "probe": probe(Path(f["path"]))}
            for f in recording_log.get("files", [])
        ],
    )
    used = run.used_pairs
    run.alone = combine(forwarding, [windows[a] for a, _ in used], setup)
    run.recording = combine(config, [windows[b] for _, b in used], setup)
    return [alone, with_recording], run


def probe(path: Path) -> dict[str, Any]:
    """What ffprobe, independent of PyAV's muxer, reads in a recorded file: every packet of
    every stream, counted."""
    if not path.exists():
        return {"error": "missing"}
    if shutil.which("ffprobe") is None:
        return {"error": "ffprobe is not installed"}
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "stream=codec_type,codec_name,width,height,sample_rate,nb_read_packets"
         ":format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip() or f"ffprobe exited {done.returncode}"}
    found = json.loads(done.stdout)
    return {
        "streams": {
            s["codec_type"]: {
                "codec": s["codec_name"],
                "packets": int(s.get("nb_read_packets", 0)),
                **({"size": f"{s['width']}x{s['height']}"} if "width" in s else {}),
                **({"rate": int(s["sample_rate"])} if "sample_rate" in s else {}),
            }
            for s in found.get("streams", [])
        },
        "duration_s": float(found.get("format", {}).get("duration", 0.0)),
        "warnings": done.stderr.strip(),
    }


def filesystem_of(path: Path) -> str:
    """The type of the filesystem that holds `path` (from /proc/mounts)."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            mount = fields[1]
            if (resolved == mount or resolved.startswith(mount.rstrip("/") + "/")) and len(
                mount
            ) >= len(best):
                best, kind = mount, fields[2]
    return kind

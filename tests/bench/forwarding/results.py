"""What a configuration measured: its windows, and the rows and comparisons made of them."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import Any

from tests.bench.forwarding.loops import FPS
from tests.bench.forwarding.meters import lag_summary

# Windows of a recording config: without (False) and with (True) recording, in ABBA order so
# that a drift in the machine's load weighs on both sides alike; each (A, B) is a pair.
RECORDING_SCHEDULE = (False, True, True, False, False, True, True, False)
RECORDING_PAIRS = ((0, 1), (3, 2), (4, 5), (7, 6))
# After recording starts: the keyframe it asks for arrives and the files open. After it stops:
# the writer threads have ended.
RECORDING_SETTLE_S = 1.0
# A pair compares when both its windows forwarded at a steady 30 fps and the load from
# outside this benchmark differed between them by at most this many cores.
PAIR_OTHERS_TOLERANCE = 0.25
MIN_PAIRS = 2  # fewer comparable pairs than this: the hearing size gives no verdict
TRACKS_PER_FILE = 2  # a participant's file holds their video and their audio


@dataclass(frozen=True)
class Config:
    mode: str
    participants: int
    client_processes: int

    @property
    def video_streams(self) -> int:
        return self.participants * (self.participants - 1)

    @property
    def label(self) -> str:
        return "forwarding + recording" if self.mode == "recording" else self.mode


@dataclass
class Result:
    config: Config
    server: dict[str, Any]
    video_fps: list[float]
    audio_fps: list[float]
    video_kbps: list[float]
    first_frame_s: list[float]
    keyframe_requests: int
    keyframe_requests_setup: int
    sent_fps: list[float]
    client_cpu_s: float
    machine_busy_cores: float
    setup_s: float
    missing: list[str]
    rtp_packets: int
    rtp_lost: int

    @property
    def server_core(self) -> float:
        return self.server["cpu_s"] / self.server["wall_s"]

    @property
    def per_stream_core(self) -> float:
        return self.server_core / self.config.video_streams

    @property
    def delivered_video_fps(self) -> float:
        return sum(self.video_fps)

    @property
    def others_cores(self) -> float:
        """What the rest of the machine used (not this server, not its clients), in cores."""
        wall = self.server["wall_s"]
        return self.machine_busy_cores - self.server_core - self.client_cpu_s / wall

    @property
    def cpu_ms_per_video_frame(self) -> float:
        frames = self.delivered_video_fps * self.server["wall_s"]
        return self.server["cpu_s"] * 1000 / frames if frames else float("nan")


@dataclass
class Window:
    """One measured window: the server's figures and the clients' snapshots around it."""

    recording: bool
    server: dict[str, Any]
    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    client_cpu_s: float
    busy: float
    total: float

    @property
    def server_core(self) -> float:
        return self.server["cpu_s"] / self.server["wall_s"]


@dataclass(frozen=True)
class Setup:
    setup_s: float
    first_frame_s: list[float]
    keyframe_requests_setup: int


def steady(r: Result) -> bool:
    """Forwarding kept (nearly) full rate, without catching up on a backlog (which moves work
    from one window into the next)."""
    return (
        min(r.video_fps, default=0) >= 0.9 * FPS
        and statistics.median(r.video_fps or [0]) <= 1.1 * FPS
    )


@dataclass
class RecordingRun:
    """One hearing measured without and with recording, in alternating windows.

    `alone` and `recording` sum the windows of the pairs that compare (all pairs when fewer
    than `MIN_PAIRS` do, and then the run gives no verdict); `all_alone` and `all_recording`
    sum every window of each kind.
    """

    participants: int
    windows: list[Result]  # each window on its own, in the order measured
    alone: Result
    recording: Result
    all_alone: Result
    all_recording: Result
    log: dict[str, Any]
    files: list[dict[str, Any]]  # the room's report of each file, with its size and ffprobe

    @property
    def comparable_pairs(self) -> list[tuple[int, int]]:
        return [
            (a, b) for a, b in RECORDING_PAIRS
            if steady(self.windows[a]) and steady(self.windows[b])
            and abs(self.windows[a].others_cores - self.windows[b].others_cores)
            <= PAIR_OTHERS_TOLERANCE
        ]

    @property
    def determined(self) -> bool:
        return len(self.comparable_pairs) >= MIN_PAIRS

    @property
    def used_pairs(self) -> list[tuple[int, int]]:
        return self.comparable_pairs if self.determined else list(RECORDING_PAIRS)

    @property
    def pair_differences(self) -> list[float]:
        """Recording minus alone, in cores, for each pair used."""
        return [
            self.windows[b].server_core - self.windows[a].server_core
            for a, b in self.used_pairs
        ]

    @property
    def tracks(self) -> int:
        return self.participants * TRACKS_PER_FILE

    @property
    def difference(self) -> float:
        return self.recording.server_core - self.alone.server_core

    @property
    def per_file(self) -> float:
        return self.difference / self.participants

    @property
    def per_track(self) -> float:
        return self.difference / self.tracks

    def share(self, key: str) -> float:
        """A CPU figure of the recording windows minus the same of the windows without, as a
        share of a core."""
        on, off = self.recording.server, self.alone.server
        return on[key] / on["wall_s"] - off[key] / off["wall_s"]

    @property
    def writer_per_file(self) -> float:
        """CPU of one writer thread while recording, as a share of a core."""
        on = self.recording.server
        return on["recorder_threads_cpu_s"] / on["wall_s"] / self.participants

    @property
    def bytes_per_s_per_file(self) -> float:
        seconds = sum(f["duration_s"] for f in self.files)
        return sum(f["size"] for f in self.files) / seconds if seconds else 0.0


def combine(config: Config, windows: list[Window], setup: Setup) -> Result:
    """One row from one or more windows: totals over the windows, rates over their time."""
    server: dict[str, Any] = {
        key: sum(w.server[key] for w in windows)
        for key in ("wall_s", "cpu_s", "system_cpu_s", "main_thread_cpu_s",
                    "other_threads_cpu_s", "recorder_threads_cpu_s")
    }
    server["threads"] = max(w.server["threads"] for w in windows)
    server["loop_lag"] = lag_summary([x for w in windows for x in w.server["lag_samples"]])
    counters: dict[str, float] = {}
    for w in windows:
        for key, value in w.server["counters"].items():
            counters[key] = (
                max(counters.get(key, value), value) if key.endswith("_max")
                else counters.get(key, 0) + value
            )
    server["counters"] = counters

    streams: dict[tuple[str, str], dict[str, Any]] = {}
    sent: dict[str, list[float]] = {}  # participant -> [video frames sent, seconds]
    keyframe_requests = rtp_packets = rtp_lost = 0
    for w in windows:
        for b, a in zip(w.before, w.after, strict=True):
            elapsed = a["at"] - b["at"]
            for mid, s in a["streams"].items():
                s0 = b["streams"].get(mid, {"frames": 0, "bytes": 0})
                entry = streams.setdefault(
                    (a["participant"], mid),
                    {"kind": s["kind"], "source": s["source"], "frames": 0, "bytes": 0,
                     "seconds": 0.0},
                )
                entry["frames"] += s["frames"] - s0["frames"]
                entry["bytes"] += s["bytes"] - s0["bytes"]
                entry["seconds"] += elapsed
            tally = sent.setdefault(a["participant"], [0.0, 0.0])
            tally[0] += a["video_sent"] - b["video_sent"]
            tally[1] += elapsed
            keyframe_requests += a["keyframe_requests"] - b["keyframe_requests"]
            rtp_packets += a["rtp"]["packets"] - b["rtp"]["packets"]
            rtp_lost += a["rtp"]["lost"] - b["rtp"]["lost"]

    video_fps, audio_fps, video_kbps, missing = [], [], [], []
    for (participant, _), entry in streams.items():
        fps = entry["frames"] / entry["seconds"]
        if entry["kind"] == "video":
            video_fps.append(fps)
            video_kbps.append(entry["bytes"] * 8 / entry["seconds"] / 1000)
        else:
            audio_fps.append(fps)
        if fps == 0:
            missing.append(f"{participant}<-{entry['source']}:{entry['kind']}")
    busy, total = sum(w.busy for w in windows), sum(w.total for w in windows)
    return Result(
        config=config, server=server, video_fps=video_fps, audio_fps=audio_fps,
        video_kbps=video_kbps, first_frame_s=setup.first_frame_s,
        keyframe_requests=keyframe_requests, keyframe_requests_setup=setup.keyframe_requests_setup,
        sent_fps=[frames / seconds for frames, seconds in sent.values()],
        client_cpu_s=sum(w.client_cpu_s for w in windows),
        machine_busy_cores=busy / total * (os.cpu_count() or 1) if total else 0.0,
        setup_s=setup.setup_s, missing=missing, rtp_packets=rtp_packets, rtp_lost=rtp_lost,
    )

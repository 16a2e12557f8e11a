"""The `recording` section of docs/benchmarks.md: server CPU per recorded track, and the files
checked."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import aiortc
import av

from media.recording import (
    CLUSTER_MS,
)
from tests.bench.forwarding.loops import AUDIO_FRAME_MS, FPS, MediaLoops
from tests.bench.forwarding.results import (
    MIN_PAIRS,
    PAIR_OTHERS_TOLERANCE,
    RECORDING_PAIRS,
    RECORDING_SCHEDULE,
    RECORDING_SETTLE_S,
    RecordingRun,
    Result,
    steady,
)
from tests.bench.forwarding.text import COMMAND, fps, pct, pct2
from tests.bench.forwarding.writer import WRITER_MEDIA_S, WRITER_REPEATS
from tests.bench.report import run_stamp

TARGET_PER_TRACK = 0.01  # issue 4: under 1% of a core per recorded track


def describe_window(r: Result, recording: bool) -> str:
    return (
        f"{'recording' if recording else 'alone'}, server {pct(r.server_core)}, video fps "
        f"{fps(r.video_fps)}, publishers sent {fps(r.sent_fps)}, RTP in missing "
        f"{r.server['counters'].get('rtp_in_lost', 0):.0f}, machine busy "
        f"{r.machine_busy_cores:.2f} (others {r.others_cores:.2f})"
    )


def describe_recording(run: RecordingRun) -> str:
    return (
        f"recording P={run.participants}: alone {pct(run.alone.server_core)}, with recording "
        f"{pct(run.recording.server_core)}: {pct2(run.per_track)} of a core per track "
        f"({len(run.comparable_pairs)} pairs compare: "
        f"{', '.join(pct2(d / run.tracks) for d in run.pair_differences)}), writer "
        f"threads {pct2(run.writer_per_file)} per file, {len(run.files)} files, "
        f"{run.bytes_per_s_per_file / 1000:.1f} kB/s per file, "
        f"frames lost {run.log.get('frames_lost')}, failures {run.log.get('failures')}, "
        f"probe {[f['probe'] for f in run.files[:1]]}"
    )


def file_problems(run: RecordingRun) -> tuple[list[str], list[str]]:
    """Whatever makes a file of `run` not an honest recording, and what ffprobe warned about
    (a damaged frame: it reads on past it)."""
    problems, warnings = [], []
    if len(run.files) != run.log.get("started"):
        problems.append(f"{run.log.get('started')} files started, {len(run.files)} finished")
    for f in run.files:
        name = Path(f["path"]).name
        streams = f["probe"].get("streams", {})
        if f["size"] <= 0:
            problems.append(f"{name} is empty")
        if f["error"]:
            problems.append(f"{name}: {f['error']}")
        if "error" in f["probe"]:
            problems.append(f"ffprobe cannot read {name}: {f['probe']['error']}")
        elif (streams.get("video", {}).get("codec"), streams.get("audio", {}).get("codec")) != (
            "vp8", "opus"
        ):
            problems.append(f"ffprobe finds {streams} in {name}")
        if f["probe"].get("warnings"):
            first = f["probe"]["warnings"].splitlines()[0]
            warnings.append(f"{name}: `{first[:120]}`")
    if run.log.get("frames_lost"):
        problems.append(f"{run.log['frames_lost']} frames lost by the writers")
    problems += [f"failure reported: {m}" for m in run.log.get("failures", [])]
    return problems, warnings


def _in_file_rate(run: RecordingRun, kind: str) -> float:
    """The lowest packet rate of `kind` that ffprobe counts in a file (per recorded second)."""
    rates = [
        f["probe"]["streams"][kind]["packets"] / f["duration_s"]
        for f in run.files
        if f["duration_s"] and kind in f["probe"].get("streams", {})
    ]
    return min(rates, default=0.0)


def render_recording(runs: list[RecordingRun], writer: dict[str, Any], loops: MediaLoops,
                     total_s: float, warmup_s: float, measure_s: float,
                     filesystem: str) -> str:
    window_s = measure_s / RECORDING_SCHEDULE.count(False)
    media_kbps = loops.video_kbps + loops.audio_kbps
    lines = [
        "## Recording: server CPU per recorded track",
        "",
        run_stamp(
            COMMAND,
            f"nproc {len(os.sched_getaffinity(0))}; Python {platform.python_version()}, aiortc "
            f"{aiortc.__version__}, PyAV {av.__version__}; the run that wrote the forwarding "
            f"section (whole run {total_s:.0f} s)",
        ),
        "",
        "Each hearing is set up as in the forwarding benchmark (P participants on loopback, "
        f"each publishing VP8 at {loops.video_kbps:.0f} kbit/s and Opus at "
        f"{loops.audio_kbps:.0f} kbit/s, each subscribing to all others) and, after the "
        f"{warmup_s:.0f} s warm-up, measured in {len(RECORDING_SCHEDULE)} windows of "
        f"{window_s:.2f} s: forwarding alone (A) and forwarding while the room records (B), "
        "in the order " + "".join("B" if on else "A" for on in RECORDING_SCHEDULE) + ", so "
        "that a change in the machine's load weighs on both alike. Recording is "
        "`MediaRoom.start_recording` as signaling calls it: a `ParticipantRecorder` per "
        "participant, one WebM file holding their VP8 video and Opus audio, remuxed (never "
        "decoded) by one writer thread per file. It starts "
        f"{RECORDING_SETTLE_S:.0f} s before each block of two B windows (the keyframe it asks "
        "for arrives, the files open) and `stop_recording()` ends it after them (the files "
        "are finished), so each block is one segment of P files and the windows hold steady "
        f"recording only. Files go to a temporary directory ({filesystem}, the checkout's "
        "filesystem), removed after the run. The windows pair up ("
        + ", ".join(f"{a + 1}–{b + 1}" for a, b in RECORDING_PAIRS)
        + "); a pair compares when both its windows forwarded at a steady 30 fps (slowest "
        "stream ≥ 27 fps, median ≤ 33 fps: no backlog delivered late) and the load from "
        f"outside this benchmark differed between them by at most {PAIR_OTHERS_TOLERANCE} "
        "core, and the figures below sum the windows of the pairs that compare (with fewer "
        f"than {MIN_PAIRS}, all pairs, and no verdict). Server CPU is the server process's "
        "(all threads, `getrusage`), summed over those A windows and over those B windows; "
        "the difference is everything recording adds (the taps on the event loop, the "
        "writer threads, the kernel's part of the writes), divided by the P files or the 2P "
        "tracks recorded at once. Each pair gives a difference of its own: their spread "
        "shows the noise.",
        "",
        "| participants | files (tracks) recorded at once | pairs that compare (of "
        f"{len(RECORDING_PAIRS)}) | server CPU, forwarding alone | forwarding + recording | "
        "difference (% of a core) | per file | **per track** | per track, lowest / highest "
        "pair | difference by thread: event loop / other threads / of which kernel | writer "
        "thread, per file |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        pairs = [d / run.tracks for d in run.pair_differences]
        lines.append(
            f"| {run.participants} | {run.participants} ({run.tracks}) | "
            + (f"{len(run.comparable_pairs)} | " if run.determined
               else f"{len(run.comparable_pairs)} (too few: all summed) | ")
            + f"{pct(run.alone.server_core)} | {pct(run.recording.server_core)} | "
            f"{pct2(run.difference)} | {pct2(run.per_file)} | **{pct2(run.per_track)}** | "
            f"{pct2(min(pairs))} / {pct2(max(pairs))} | "
            f"{pct2(run.share('main_thread_cpu_s'))} / "
            f"{pct2(run.share('other_threads_cpu_s'))} / {pct2(run.share('system_cpu_s'))} | "
            f"{pct2(run.writer_per_file)} |"
        )
    lines += [
        "",
        "The files, checked after the run: sizes, the recorder's own report, and `ffprobe "
        "-count_packets` reading every packet of every file. Bytes written per second are "
        "the files' sizes over their recorded durations; *media sent* is what a publisher "
        f"sends ({media_kbps / 8:.1f} kB/s of VP8 and Opus payload).",
        "",
        "| participants | files written (segments) | recorded duration min / max (s) | bytes "
        "written per s, per file / whole hearing | per file ÷ media sent | in the files, "
        "video / audio packets per s (lowest file) | read by ffprobe | frames lost / write "
        "errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        durations = [f["duration_s"] for f in run.files] or [0.0]
        read = sum(1 for f in run.files if "streams" in f["probe"])
        kinds: dict[str, Any] = next(
            (f["probe"]["streams"] for f in run.files if "streams" in f["probe"]), {}
        )
        codecs = " + ".join(
            f"{s['codec']} {s.get('size') or s.get('rate', '')}".strip() for s in kinds.values()
        )
        errors = sum(1 for f in run.files if f["error"]) + len(run.log.get("failures", []))
        lines.append(
            f"| {run.participants} | {len(run.files)} "
            f"({len({f['segment'] for f in run.files})}) | "
            f"{min(durations):.1f} / {max(durations):.1f} | "
            f"{run.bytes_per_s_per_file / 1000:.1f} kB / "
            f"{run.bytes_per_s_per_file * run.participants / 1000:.0f} kB | "
            f"{run.bytes_per_s_per_file * 8 / 1000 / media_kbps:.3f} | "
            f"{_in_file_rate(run, 'video'):.1f} / {_in_file_rate(run, 'audio'):.1f} | "
            f"{read} of {len(run.files)} ({codecs or 'none'}) | "
            f"{run.log.get('frames_lost', 0)} / {errors} |"
        )
    lines += [
        "",
        "Forwarding in all the windows, alone (A) / while recording (B): recording must not "
        "cost the live hearing its frames, and fewer frames delivered would make the B "
        "windows look cheaper than they are.",
        "",
        "| participants | video fps min / median at subscribers, A | same, B | audio fps "
        "min, A / B | server loop lag p99 (ms), A / B | RTP in missing, A / B | machine busy "
        f"(cores of {os.cpu_count()}), A / B | of which not this benchmark, A / B |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        a, b = run.all_alone, run.all_recording
        lines.append(
            f"| {run.participants} | {fps(a.video_fps)} | {fps(b.video_fps)} | "
            f"{min(a.audio_fps, default=0):.1f} / {min(b.audio_fps, default=0):.1f} | "
            f"{a.server['loop_lag']['p99_ms']:.1f} / {b.server['loop_lag']['p99_ms']:.1f} | "
            f"{a.server['counters'].get('rtp_in_lost', 0):.0f} / "
            f"{b.server['counters'].get('rtp_in_lost', 0):.0f} | "
            f"{a.machine_busy_cores:.2f} / {b.machine_busy_cores:.2f} | "
            f"{a.others_cores:.2f} / {b.others_cores:.2f} |"
        )
    ms = writer["ms_per_media_s"]
    lines += [
        "",
        f"The writer alone: {WRITER_MEDIA_S} s of one participant's frames (the same VP8 and "
        "Opus loops) muxed on one thread with nothing else running in it, CPU of that "
        f"thread (`time.thread_time`, kernel included), median of {WRITER_REPEATS}. This is "
        "the cost of the file itself, without the queue, the thread hand-offs and the event "
        "loop's side.",
        "",
        "| writer | CPU ms per second of media | % of a core per file |",
        "|---|---:|---:|",
        f"| the recorder's `_MatroskaWriter` (an unbuffered Python file object) | "
        f"{ms['recorder']:.2f} | {pct2(ms['recorder'] / 1000)} |",
        f"| the same muxing into an unbuffered Python file object | {ms['python_file']:.2f} | "
        f"{pct2(ms['python_file'] / 1000)} |",
        f"| the same muxing into FFmpeg's own file I/O | {ms['ffmpeg_io']:.2f} | "
        f"{pct2(ms['ffmpeg_io'] / 1000)} |",
        "",
        "In the hearings each writer thread used "
        + ", ".join(
            f"{pct2(run.writer_per_file)} of a core at {run.participants} participants"
            for run in runs
        )
        + f", against {pct2(ms['recorder'] / 1000)} for the same muxing alone. The rest is "
        "the hand-off: every frame (about "
        f"{FPS + 1000 // AUDIO_FRAME_MS} a second per file) is put on the writer's queue and "
        "wakes its thread, which then takes the GIL from the busy event loop.",
        "",
        f"FFmpeg writes through the Python file object {writer['writes_per_media_s']:.1f} "
        f"times per second of media ({CLUSTER_MS} ms clusters, written in pieces of the AVIO "
        "buffer), so the file object costs "
        f"{ms['python_file'] - ms['ffmpeg_io']:.2f} ms per second of media, "
        f"{pct2((ms['python_file'] - ms['ffmpeg_io']) / 1000)} of a core per file.",
        "",
        "Against the issue's target (from this run):",
        "",
    ]
    for run in runs:
        pairs = [d / run.tracks for d in run.pair_differences]
        verdict = (
            ("met" if run.per_track < TARGET_PER_TRACK else "NOT met") if run.determined
            else f"undetermined (fewer than {MIN_PAIRS} pairs compare, see below)"
        )
        lines.append(
            f"- Under 1% of a core per recorded track, {run.participants} participants "
            f"({run.tracks} tracks in {run.participants} files): {pct2(run.per_track)} per "
            f"track ({pct2(run.per_file)} per file; {len(run.comparable_pairs)} of "
            f"{len(RECORDING_PAIRS)} pairs compare, pairs from {pct2(min(pairs))} to "
            f"{pct2(max(pairs))}): {verdict}."
        )
    for run in runs:
        problems, warnings = file_problems(run)
        line = f"- Files at {run.participants} participants: " + (
            f"all {len(run.files)} written, none empty, no write error, no frame lost, every "
            "one read through by ffprobe with its VP8 and Opus streams."
            if not problems else "PROBLEMS: " + "; ".join(problems) + "."
        )
        if warnings:
            line += (
                f" ffprobe warned about {len(warnings)} file(s), a damaged frame each: "
                + "; ".join(warnings) + "."
            )
        lines.append(line)
        unsteady = [i + 1 for i, w in enumerate(run.windows) if not steady(w)]
        if unsteady:
            lines.append(
                f"- At {run.participants} participants forwarding did not hold a steady 30 fps "
                f"in window(s) {', '.join(map(str, unsteady))} (see each window below; above "
                "30 is a backlog delivered late): the machine was short of CPU there."
            )
    lines += [
        "",
        "Each window on its own (server CPU, slowest / median video stream in fps, machine "
        "busy outside this benchmark in cores), * marking the windows of pairs that compare:",
        "",
    ]
    for run in runs:
        used = {i for pair in run.comparable_pairs for i in pair}
        lines.append(
            f"- {run.participants} participants: "
            + "; ".join(
                f"{i + 1}{'*' if i in used else ''} {'B' if on else 'A'} "
                f"{pct(w.server_core)}, {fps(w.video_fps)}, {max(w.others_cores, 0):.2f}"
                for i, (on, w) in enumerate(zip(RECORDING_SCHEDULE, run.windows, strict=True))
            )
            + "."
        )
    lines += ["", *RECORDING_NOTES]
    return "\n".join(lines)


RECORDING_NOTES = [
    "Notes:",
    "",
    "- What a B window does not hold: opening a file (at the first keyframe) and finishing it "
    "(cues, duration), once per file per segment; the writer measurement above bounds the "
    "muxing itself.",
    "- The kernel writes to the page cache inside the server's `write` calls (counted); the "
    "disk writeback that follows runs in the kernel's flusher threads, not in the server "
    "process (not counted).",
    "- Clients share the 2 cores with the server, and other work on the machine may too "
    "(*machine busy*); the alternation spreads that over A and B alike, and the per-pair "
    "figures show how much it moves a single pair.",
]

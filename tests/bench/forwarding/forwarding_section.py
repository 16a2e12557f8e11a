"""The `forwarding` section of docs/benchmarks.md: server CPU per forwarded video stream,
against the baseline SFU."""

from __future__ import annotations

import os
import platform
import statistics

import aiortc
import av

from tests.bench.forwarding.loops import FPS, KEYFRAME_EVERY, MediaLoops
from tests.bench.forwarding.results import RECORDING_SCHEDULE, Result
from tests.bench.forwarding.text import COMMAND, and_list, fps, pct
from tests.bench.report import run_stamp


def describe(r: Result) -> str:
    c = r.config
    return (
        f"{c.label} P={c.participants}: server {pct(r.server_core)} of a core, "
        f"{pct(r.per_stream_core)} per forwarded video stream ({c.video_streams} streams), "
        f"video fps min/median {fps(r.video_fps)}, audio {fps(r.audio_fps)}, "
        f"loop lag p99 {r.server['loop_lag']['p99_ms']:.1f} ms, "
        f"client RTP packets {r.rtp_packets} lost {r.rtp_lost}, "
        f"publishers sent fps {fps(r.sent_fps)}, "
        f"client CPU {pct(r.client_cpu_s / r.server['wall_s'])}, "
        f"machine busy {r.machine_busy_cores:.2f} cores, "
        f"counters {r.server['counters']}"
    )


def render(results: list[Result], loops: MediaLoops, total_s: float, warmup_s: float,
           measure_s: float, windowed: list[int]) -> str:
    """The forwarding section; `windowed` are the hearing sizes whose forwarding rows come
    from a recording config's windows without recording."""
    nproc = len(os.sched_getaffinity(0))
    results = [r for r in results if r.config.mode != "recording"]
    windows_note = (
        f" At {and_list(windowed)} participants the forwarding rows are the windows without "
        "recording of the recording benchmark's hearings (next section): the same "
        f"{measure_s:.0f} s in {RECORDING_SCHEDULE.count(False)} windows, alternating with "
        "windows that record (where recording left a backlog, the next window delivers it: "
        "fps above 30)."
        if windowed else ""
    )
    lines = [
        "## Forwarding: server CPU per forwarded video stream",
        "",
        run_stamp(
            COMMAND,
            f"nproc {nproc}; Python {platform.python_version()}, aiortc {aiortc.__version__}, "
            f"PyAV {av.__version__} (FFmpeg libvpx/libopus); whole run {total_s:.0f} s",
        ),
        "",
        "Each row is one hearing on loopback: P participants, each publishing 640x360 30 fps "
        f"VP8 (pre-encoded loop, {loops.video_kbps:.0f} kbit/s, a keyframe every 2 s and on "
        "PLI) plus 20 ms Opus, and subscribing to everyone else: P×(P−1) forwarded video "
        "streams, as many audio streams. The server runs alone in its own process; its CPU "
        "(all threads, `getrusage`) is taken over "
        f"{measure_s:.0f} s after a {warmup_s:.0f} s warm-up that starts once every subscriber "
        "has frames from every publisher. *forwarding* is `MediaRoom` + `ParticipantPeer` "
        "(audio tap decoding each participant's Opus included); *baseline* is aiortc's "
        "classic SFU, `MediaRelay` (decode once per source, re-encode VP8 and Opus per "
        "subscriber). \"Per stream\" is the server's whole CPU divided by the forwarded video "
        "streams (audio and fixed costs included). Received fps are counted at the "
        "subscribers from reassembled frames (no decoding), min / median over streams."
        + windows_note,
        "",
        "| mode | participants | video streams | server CPU (% of one core) | "
        "per video stream (% of a core) | event-loop thread / other threads / of which kernel "
        "| server ms CPU per delivered frame | video fps min / median | audio fps min / median "
        "| video kbit/s median |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = r.config
        lines.append(
            f"| {c.mode} | {c.participants} | {c.video_streams} | {pct(r.server_core)} | "
            f"{pct(r.per_stream_core)} | "
            f"{pct(r.server['main_thread_cpu_s'] / r.server['wall_s'])} / "
            f"{pct(r.server['other_threads_cpu_s'] / r.server['wall_s'])} / "
            f"{pct(r.server['system_cpu_s'] / r.server['wall_s'])} | "
            f"{r.cpu_ms_per_video_frame:.2f} | {fps(r.video_fps)} | {fps(r.audio_fps)} | "
            f"{statistics.median(r.video_kbps) if r.video_kbps else 0:.0f} |"
        )
    lines += [
        "",
        "Load and health in the same windows. Clients run in their own processes but share the "
        "machine's cores with the server (and with whatever else runs on the box: *machine "
        "busy* is the whole machine). RTP counts are the server's own (received, missing by "
        "sequence gaps, sent); *drops* are frames a `ForwardedTrack` discarded (slow "
        "subscriber or waiting for a keyframe).",
        "",
        "| mode | participants | client CPU (% of one core, processes) | machine busy (cores of "
        f"{os.cpu_count()}) | server loop lag p99 / max (ms) | RTP in / out per s | RTP in "
        "missing | server µs CPU per RTP packet (in + out) | drops (video / audio) | "
        "publishers' sent fps min | PLIs reaching publishers (setup / window) | first video "
        "frame after offer, median / max (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c, k, wall = r.config, r.server["counters"], r.server["wall_s"]
        packets = k.get("rtp_in", 0) + k.get("rtp_out", 0)
        drops = (
            f"{k['video_dropped']:.0f} / {k['audio_dropped']:.0f}"
            if "video_dropped" in k else "n/a"
        )
        ff = (
            f"{statistics.median(r.first_frame_s):.2f} / {max(r.first_frame_s):.2f}"
            if r.first_frame_s else "none"
        )
        lines.append(
            f"| {c.mode} | {c.participants} | "
            f"{pct(r.client_cpu_s / wall)} ({c.client_processes}) | "
            f"{r.machine_busy_cores:.2f} | "
            f"{r.server['loop_lag']['p99_ms']:.1f} / {r.server['loop_lag']['max_ms']:.1f} | "
            f"{k.get('rtp_in', 0) / wall:.0f} / {k.get('rtp_out', 0) / wall:.0f} | "
            f"{k.get('rtp_in_lost', 0):.0f} | "
            f"{r.server['cpu_s'] * 1e6 / packets if packets else float('nan'):.0f} | "
            f"{drops} | {min(r.sent_fps, default=0):.1f} | "
            f"{r.keyframe_requests_setup} / {r.keyframe_requests} | {ff} |"
        )
    lines += ["", *verdicts(results), "", *NOTES, *keyframe_note(results)]
    return "\n".join(lines)


NOTES = [
    "Notes:",
    "",
    "- The baseline re-encodes at the bitrate aiortc's REMB handling picks (see its kbit/s), "
    "so it sends fewer packets than forwarding, which passes the publishers' bitrate through; "
    "when it cannot keep 30 fps on this box, CPU per stream understates its cost and CPU per "
    "delivered frame is the fair comparison.",
    "- \"Per stream\" divides all the server's CPU (audio forwarding, the audio tap's Opus "
    "decoding, receiving the publishers, RTCP) by the video streams, so small hearings carry "
    "their fixed cost on few streams; the marginal figure compares two hearing sizes.",
    "- Publishers ignore REMB (pre-encoded) and answer a PLI with the loop's next keyframe. "
    "Subscribers count reassembled frames and do not decode, so client load is lower than a "
    "browser's; their UDP receive buffers are raised to 4 MB so that client stalls do not "
    "show as loss (the server keeps the kernel default).",
    "- On loopback the kernel delivers each datagram to the receiving socket within the "
    "sender's `sendto`, so the server's kernel time may include part of the clients' receive "
    "path; that weighs more on forwarding, which sends more packets than the re-encoding "
    "baseline.",
    "- CPU seconds are taken under whatever else runs on the 2 cores; contention inflates "
    "them somewhat (shared caches), equally for both modes within one run.",
]


def keyframe_note(results: list[Result]) -> list[str]:
    """What the first-frame and PLI columns say about keyframe requests while joining."""
    forwarding = [r for r in results if r.config.mode == "forwarding" and r.first_frame_s]
    baseline = [r for r in results if r.config.mode == "baseline" and r.first_frame_s]
    if not forwarding:
        return []
    worst = max(max(r.first_frame_s) for r in forwarding)
    reached = sum(r.keyframe_requests_setup for r in forwarding)
    line = (
        f"- Joining: in the forwarding runs {reached} keyframe request(s) reached a publisher "
        f"during setup, and a new slot's first video frame came up to {worst:.2f} s after its "
        f"offer (publishers' periodic keyframe: every {KEYFRAME_EVERY / FPS:.0f} s)"
    )
    if baseline:
        line += (
            f"; the baseline, whose encoders start with a keyframe, took at most "
            f"{max(max(r.first_frame_s) for r in baseline):.2f} s"
        )
    return [line + "."]


def verdicts(results: list[Result]) -> list[str]:
    out = ["Against the issue's targets (ratios from this run):", ""]
    for base in (r for r in results if r.config.mode == "baseline"):
        for fwd in (r for r in results if r.config.mode == "forwarding"
                    and r.config.participants == base.config.participants):
            ratio = base.per_stream_core / fwd.per_stream_core
            frame_ratio = base.cpu_ms_per_video_frame / fwd.cpu_ms_per_video_frame
            out.append(
                f"- At least 10× less CPU than the baseline, {base.config.participants} "
                f"participants: baseline ÷ forwarding = {frame_ratio:.1f}× per delivered "
                f"video frame ({base.cpu_ms_per_video_frame:.2f} ms vs "
                f"{fwd.cpu_ms_per_video_frame:.2f} ms), {ratio:.1f}× per forwarded stream "
                f"(baseline delivering {statistics.median(base.video_fps or [0]):.1f} fps): "
                f"{'met' if frame_ratio >= 10 else 'NOT met'} per frame, "
                f"{'met' if ratio >= 10 else 'NOT met'} per stream."
            )
    forwarding = sorted(
        (r for r in results if r.config.mode == "forwarding"), key=lambda r: r.config.participants
    )
    for fwd in forwarding:
        out.append(
            f"- At most 3% of a core per forwarded video stream, {fwd.config.participants} "
            f"participants: {pct(fwd.per_stream_core)}: "
            f"{'met' if fwd.per_stream_core <= 0.03 else 'NOT met'}."
        )
    if len({r.config.participants for r in forwarding}) >= 2:
        small, large = forwarding[0], forwarding[-1]
        marginal = (large.server_core - small.server_core) / (
            large.config.video_streams - small.config.video_streams
        )
        out.append(
            f"- At most 1% of a core per forwarded video stream at the margin (issue 16), "
            f"from {small.config.participants} to {large.config.participants} participants: "
            f"{pct(marginal)} of a core per added forwarded video stream (with its audio): "
            f"{'met' if marginal <= 0.01 else 'NOT met'}."
        )
    for fwd in (r for r in forwarding if r.config.participants in (6, 10)):
        ok = fwd.server_core < 1.0 and fwd.video_fps and min(fwd.video_fps) >= 0.9 * FPS
        out.append(
            f"- A {fwd.config.participants}-party hearing ({fwd.config.video_streams} forwarded "
            f"video streams) on one core: server at {pct(fwd.server_core)} of a core "
            f"(event-loop thread {pct(fwd.server['main_thread_cpu_s'] / fwd.server['wall_s'])}), "
            f"slowest stream {min(fwd.video_fps, default=0):.1f} fps: {'met' if ok else 'NOT met'}."
        )
    for r in results:
        if r.missing or not r.video_fps or min(r.video_fps) < 0.9 * FPS:
            out.append(
                f"- {r.config.mode} at {r.config.participants} participants did not deliver "
                f"every stream at full rate (slowest {min(r.video_fps, default=0):.1f} fps; "
                f"silent: {', '.join(r.missing) or 'none'})."
            )
    return out

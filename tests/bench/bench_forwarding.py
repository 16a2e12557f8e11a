"""Server CPU per forwarded video stream: encoded forwarding against aiortc's decode+re-encode;
and server CPU per recorded track, against forwarding alone in the same hearing.

Run: `.venv/bin/python -m tests.bench.bench_forwarding` (writes the `forwarding` and
`recording` sections of docs/benchmarks.md).

Each configuration starts one server process and client processes (multiprocessing, spawn),
joined by pipes that carry the SDP offers (server) and answers (clients). The server's CPU is
read inside its own process (`getrusage(RUSAGE_SELF)`, every thread included), so client load
is not counted, though it shares the machine's cores.

- forwarding: a `media.room.MediaRoom` of `media.peer.ParticipantPeer`s, as signaling builds
  them (the audio tap that decodes each participant's Opus for the trial record included).
- recording: the forwarding server's hearing, measured in windows that alternate between
  forwarding alone and forwarding while `MediaRoom.start_recording` records every participant
  (one WebM file each, VP8 and Opus remuxed, never decoded) into a temporary directory. The
  forwarding-alone windows give the forwarding row of that hearing size; the difference
  between the two, paired window by window, is the recording's cost.
- baseline (same run): the classic aiortc SFU. Each participant's tracks are relayed with
  `aiortc.contrib.media.MediaRelay`, so each source is decoded once and every subscriber's
  sender re-encodes (VP8 and Opus).

Clients are identical in both modes: publishers replay a 640x360 30 fps VP8 loop and 20 ms Opus
frames encoded once before the run (no encoding during the measurement, a keyframe every 2 s
and on every PLI), and subscribers count reassembled frames through
`media.aiortc_adapter.capture_encoded` (no decoding).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from tests.bench.forwarding.forwarding_section import describe, render
from tests.bench.forwarding.loops import MediaLoops, encode_audio_loop, encode_video_loop
from tests.bench.forwarding.recording_section import describe_recording, render_recording
from tests.bench.forwarding.results import Config, RecordingRun, Result
from tests.bench.forwarding.run import filesystem_of, run_config
from tests.bench.forwarding.writer import measure_writer
from tests.bench.report import write_section

# A recording config also gives the forwarding row of its hearing size (its windows without
# recording), so the forwarding rows at 3 and 6 participants come from those.
DEFAULT_CONFIGS = (
    "recording:3:1,baseline:3:1,recording:6:2,baseline:2:1,forwarding:2:1,recording:10:3"
)

log = logging.getLogger("bench_forwarding")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--measure", type=float, default=15.0)
    parser.add_argument(
        "--configs", default=DEFAULT_CONFIGS,
        help="comma-separated mode:participants:client_processes (default %(default)s)",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    started = time.monotonic()
    loops = MediaLoops(encode_video_loop(), encode_audio_loop())
    log.info("encoded loops: %d video frames (%.0f kbit/s), %d Opus frames",
             len(loops.video), loops.video_kbps, len(loops.audio))
    configs = [
        Config(mode, int(participants), int(processes))
        for mode, participants, processes in (c.split(":") for c in args.configs.split(","))
    ]
    results: list[Result] = []
    recordings: list[RecordingRun] = []
    workdir = Path(tempfile.mkdtemp(prefix="tingshen-bench-recording-"))
    try:
        filesystem = filesystem_of(workdir)
        writer = measure_writer(loops, workdir / "writer")
        log.info("writer alone: %s", writer)
        for config in configs:
            record_dir = (
                workdir / f"hearing-{config.participants}" if config.mode == "recording"
                else None
            )
            rows, recording = run_config(config, loops, args.warmup, args.measure, record_dir)
            for result in rows:
                log.info("%s", describe(result))
            results += rows
            if recording is not None:
                log.info("%s", describe_recording(recording))
                recordings.append(recording)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total_s = time.monotonic() - started
    body = render(results, loops, total_s, args.warmup, args.measure,
                  windowed=[r.participants for r in recordings])
    print(body)
    recording_body = (
        render_recording(recordings, writer, loops, total_s, args.warmup, args.measure,
                         filesystem)
        if recordings else None
    )
    if recording_body:
        print(recording_body)
    if not args.no_write:
        write_section("forwarding", body)
        if recording_body:
            write_section("recording", recording_body)


if __name__ == "__main__":
    main()

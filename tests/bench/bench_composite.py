"""Review composite render speed: a 4-party hearing against a 2-party one, in the same run.

Run: `.venv/bin/python -m tests.bench.bench_composite` (writes the `composite` section of
docs/benchmarks.md).

Before timing, ffmpeg makes one recording per participant as the recorder leaves them: WebM
with 640x360 30 fps VP8 (800 kbit/s) and Opus. The pictures are ffmpeg's `testsrc2` pattern,
hue-shifted per participant, with temporal noise added so that every frame changes (harder to
encode than a talking head in front of a still background; the figures lean pessimistic). Each
repetition renders the 4-party hearing and the 2-party one with `media.composite`'s defaults
(1280x720, 25 fps, H.264 + AAC), alternating which goes first. Wall time is divided by the
timeline's length (the real-time factor; under 1 is faster than real time); CPU is ffmpeg's
(a child process) plus this process's (probing and the audio mix), from `getrusage`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from zoneinfo import ZoneInfo

from config.machine import busy_jiffies
from media import composite
from media.composite import render_composite
from media.composite_sources import CompositeSource
from media.filtergraph import picture_area, tile_layout
from media.stamp import Stamp
from tests.bench.report import run_stamp, write_section

COMMAND = ".venv/bin/python -m tests.bench.bench_composite"
CAPTIONS = ("审判长 张三", "被告人 李四", "公诉人 王五", "辩护人 赵六")
TARGET_RTF = 1.0  # the issue: faster than real time for a 4-party hearing
# As every hearing's composite carries them: the case number and the court's clock.
STAMP = Stamp("(2026)京0105刑初1024号", 1_795_396_265.0, ZoneInfo("Asia/Shanghai"))


@dataclass
class Run:
    parties: int
    wall: float
    ffmpeg_cpu: float
    python_cpu: float
    machine_busy: float  # cores of the whole machine busy during the run, this render included
    size_bytes: int

    @property
    def cpu(self) -> float:
        return self.ffmpeg_cpu + self.python_cpu


def make_recording(path: Path, index: int, seconds: float) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i",
         f"testsrc2=s=640x360:r=30:d={seconds},hue=h={index * 90},noise=alls=8:allf=t+u",
         "-f", "lavfi", "-i", f"sine=f={300 + 100 * index}:r=48000:d={seconds}",
         "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "16", "-b:v", "800k",
         "-c:a", "libopus", "-b:a", "32k", str(path)],
        check=True,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def render(sources: list[CompositeSource], output: Path, seconds: float) -> Run:
    busy0, total0 = busy_jiffies()
    children0, own0 = _children_cpu(), _own_cpu()
    began = time.perf_counter()
    render_composite(sources, output, timeline_end=seconds, stamp=STAMP)
    wall = time.perf_counter() - began
    busy1, total1 = busy_jiffies()
    parties = len({s.participant_id for s in sources})
    run = Run(
        parties=parties,
        wall=wall,
        ffmpeg_cpu=_children_cpu() - children0,
        python_cpu=_own_cpu() - own0,
        machine_busy=(busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1),
        size_bytes=output.stat().st_size,
    )
    output.unlink()
    print(f"{parties} parties: {wall:.1f} s wall for {seconds:.0f} s "
          f"(x{wall / seconds:.2f}), CPU {run.cpu:.1f} s, machine busy "
          f"{run.machine_busy:.2f} cores", file=sys.stderr)
    return run


def moving_pixels(parties: int) -> int:
    """Pixels of 16:9 video in the composite's tiles (the rest is still background)."""
    area = 0
    for tile in tile_layout(parties, picture_area((1280, 720), stamped=True)):
        w, h = tile.video[2], tile.video[3]
        area += int(min(w, h * 16 / 9) * min(h, w * 9 / 16))
    return area


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].split(" Copyright")[0]


def report(runs: list[Run], seconds: float, reps: int, command: str, whole: float) -> str:
    by: dict[int, list[Run]] = {}
    for r in runs:
        by.setdefault(r.parties, []).append(r)

    def med(parties: int, attribute: str) -> float:
        return median(getattr(r, attribute) for r in by[parties])

    def cpu(parties: int) -> float:
        return median(r.cpu for r in by[parties])

    lines = [
        "## Composite: rendering the review MP4",
        "",
        run_stamp(command, f"{ffmpeg_version()}, x264 preset `{composite.X264_PRESET}` "
                           f"`{composite.X264_PARAMS}` CRF {composite.X264_CRF}; "
                           f"whole run {whole:.0f} s"),
        "",
        f"Each participant: one {seconds:.0f} s WebM recording, 640x360 30 fps VP8 at "
        "800 kbit/s (ffmpeg `testsrc2`, hue-shifted per participant, with temporal noise: every "
        "frame changes, harder to encode than a talking head) and Opus. Rendered with "
        "`render_composite`'s defaults: 1280x720 25 fps H.264 (x264) + AAC, captions, grid, "
        "the stamp (case number and the wall clock, drawn on every frame), audio mixed at "
        "48 kHz. Medians of "
        f"{reps} repetitions; the 4-party and 2-party renders alternate. Real-time factor = "
        "wall time ÷ timeline length (under 1: faster than real time). CPU = ffmpeg (child "
        "process) + Python (probing, audio decoding and mixing). *Machine busy* counts every "
        "process on the box during the render, this one included: the box is shared, and "
        "other work slows the render down.",
        "",
        "| participants | timeline (s) | wall (s) | real-time factor | CPU (s) | of which Python "
        "| CPU per timeline second (cores) | machine busy (cores of "
        f"{os.cpu_count()}) | output (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for parties in sorted(by, reverse=True):
        wall = med(parties, "wall")
        lines.append(
            f"| {parties} | {seconds:.0f} | {wall:.1f} | {wall / seconds:.2f} "
            f"| {cpu(parties):.1f} | {med(parties, 'python_cpu'):.1f} "
            f"| {cpu(parties) / seconds:.2f} | {med(parties, 'machine_busy'):.2f} "
            f"| {med(parties, 'size_bytes') / 1e6:.1f} |"
        )
    four_rtf = med(4, "wall") / seconds
    verdict = "met" if four_rtf < TARGET_RTF else "NOT met"
    worst = max(r.wall for r in by[4]) / seconds
    lines += [
        "",
        "Against the issue's target (same run):",
        "",
        f"- A 4-party hearing renders faster than real time on this machine: real-time factor "
        f"{four_rtf:.2f} (median; slowest repetition {worst:.2f}): {verdict}.",
        f"- 4 parties ÷ 2 parties: wall {med(4, 'wall') / med(2, 'wall'):.2f}×, CPU "
        f"{cpu(4) / cpu(2):.2f}×. Both outputs are 1280x720; the 4-party one has two more "
        f"streams to decode and scale and more moving picture to encode "
        f"({moving_pixels(4) / 1e3:.0f}k pixels of video against {moving_pixels(2) / 1e3:.0f}k).",
        "",
        "Notes:",
        "",
        "- Output size reflects the synthetic noise (every pixel changes every frame); a camera "
        "picture of people sitting still compresses far better.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_composite",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each recording")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each render")
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/ alone")
    args = parser.parse_args(argv)
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])

    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tingshen-bench-composite-"))
    try:
        sources = []
        for i, caption in enumerate(CAPTIONS):
            path = root / f"participant{i}.webm"
            make_recording(path, i, args.seconds)
            sources.append(CompositeSource(path, f"p{i}", caption, 0.0, args.seconds))
        print(f"made {len(sources)} recordings of {args.seconds:.0f} s", file=sys.stderr)
        render(sources[:1], root / "warm-up.mp4", 2.0)  # font cache, page cache, code paths
        runs = []
        for rep in range(args.reps):
            order = (4, 2) if rep % 2 == 0 else (2, 4)
            for parties in order:
                runs.append(render(sources[:parties], root / "out.mp4", args.seconds))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    body = report(runs, args.seconds, args.reps, command, time.perf_counter() - began)
    print(body)
    if not args.no_write:
        write_section("composite", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

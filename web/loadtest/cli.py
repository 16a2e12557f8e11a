"""The `tingshen loadtest` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path

from web.errors import LoadTestError
from web.loadtest.encoded import VideoFormat
from web.loadtest.plan import LoadPlan
from web.loadtest.run import run_load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `tingshen loadtest` options."""
    parser.add_argument("--url", default="http://127.0.0.1:8080",
                        help="the server's base URL (default http://127.0.0.1:8080)")
    parser.add_argument("--token", default=os.environ.get("TINGSHEN_ADMIN_TOKEN"),
                        help="the admin (API) token (default: $TINGSHEN_ADMIN_TOKEN)")
    parser.add_argument("--hearings", type=int, required=True, metavar="N")
    parser.add_argument("--participants", type=int, required=True, metavar="K",
                        help="participants per hearing")
    parser.add_argument("--media", action="store_true",
                        help="admit everyone and run aiortc peers sending audio and video "
                             "(default: signaling only, everyone in the lobby)")
    parser.add_argument("--speech", type=Path, default=None,
                        help="16-bit mono WAV looped as every participant's audio "
                             "(default: a tone)")
    parser.add_argument("--in-session", action="store_true",
                        help="with --media: start the hearings, so the server records and "
                             "transcribes (closing them afterwards renders the composites)")
    parser.add_argument("--language", default=None,
                        help="the hearings' language (default: the server's)")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="seconds to hold the clients after the joins (default 10)")
    parser.add_argument("--ramp", type=float, default=0.0, metavar="JOINS_PER_S",
                        help="start joins at this rate (default 0: as fast as --concurrency "
                             "allows)")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="joins in flight at once (default 50)")
    parser.add_argument("--max-clients", type=int, default=10_000, metavar="M",
                        help="refuse plans of more clients (default 10000)")
    parser.add_argument("--ping", type=float, default=30.0, metavar="S",
                        help="each client pings this often (default 30; 0: never)")
    parser.add_argument("--join-timeout", type=float, default=30.0, metavar="S")
    parser.add_argument("--speakers", type=int, default=None, metavar="K",
                        help="with --media, only the first K participants of each hearing "
                             "speak; the others send silence (default: everyone speaks)")
    parser.add_argument("--speaking-share", type=float, default=1.0, metavar="F",
                        help="with --speech, the share of the time each speaker speaks: "
                             "silence follows each pass of the recording (default 1: none)")
    parser.add_argument("--video", type=video_format, default=VideoFormat(),
                        metavar="WxH@FPS",
                        help="with --media, what each camera sends (default 640x360@30, "
                             "as a browser's webcam; encoded once and replayed)")
    parser.add_argument("--baseline", type=int, default=0, metavar="N",
                        help="first time N bare connect+ping round trips (default 0)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the report as JSON")


def video_format(text: str) -> VideoFormat:
    """`640x360@30`: width and height (even, 64 to 1920) and frames a second (1 to 60); the
    bitrate scales with the pixels from 800 kbit/s at 640x360."""
    match = re.fullmatch(r"(\d+)x(\d+)@(\d+)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"--video must look like 640x360@30, not {text!r}")
    width, height, fps = (int(g) for g in match.groups())
    if not (64 <= width <= 1920 and 64 <= height <= 1920 and width % 2 == height % 2 == 0):
        raise argparse.ArgumentTypeError("--video: width and height must be even, 64 to 1920")
    if not 1 <= fps <= 60:
        raise argparse.ArgumentTypeError("--video: frames a second must be 1 to 60")
    bitrate = max(100_000, 800_000 * width * height // (640 * 360))
    return VideoFormat(width, height, fps, bitrate)


def main(args: argparse.Namespace) -> int:
    """Run `tingshen loadtest`; 0 when every client joined and was held, 1 otherwise."""
    if not args.token:
        print("tingshen loadtest: --token (or TINGSHEN_ADMIN_TOKEN) is required",
              file=sys.stderr)
        return 2
    plan = LoadPlan(
        url=args.url, admin_token=args.token, hearings=args.hearings,
        participants=args.participants, media=args.media, speech=args.speech,
        duration_s=args.duration, ramp_per_s=args.ramp, concurrency=args.concurrency,
        max_clients=args.max_clients, in_session=args.in_session, language=args.language,
        ping_s=args.ping, join_timeout_s=args.join_timeout, baseline_probes=args.baseline,
        speakers=args.speakers, speaking_share=args.speaking_share, video=args.video,
    )
    try:
        report = asyncio.run(run_load(plan))
    except LoadTestError as e:
        print(f"tingshen loadtest: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # asyncio.run cancelled the run first: the clients left and the hearings were ended.
        print("tingshen loadtest: interrupted; the clients left and the hearings were ended",
              file=sys.stderr)
        return 130
    print(report.summary())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.held == report.clients else 1

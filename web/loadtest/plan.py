"""What a load run is asked to do (`LoadPlan`) and what it measured (`LoadReport`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from web.errors import LoadTestError
from web.loadtest.encoded import VideoFormat
from web.loadtest.peer import AUDIO_FRAME_MS


@dataclass(frozen=True)
class LoadPlan:
    """What to run: `hearings` hearings of `participants` participants each, against `url`."""

    url: str
    admin_token: str
    hearings: int
    participants: int
    media: bool = False
    speech: Path | None = None
    duration_s: float = 10.0
    ramp_per_s: float = 0.0  # 0: as fast as `concurrency` joins in flight allow
    concurrency: int = 50
    max_clients: int = 10_000
    in_session: bool = False
    language: str | None = None
    ping_s: float = 30.0  # 0: no protocol pings (the server's heartbeats still run)
    join_timeout_s: float = 30.0
    baseline_probes: int = 0
    # How many participants of each hearing speak (the rest send silence); None: everyone.
    # In court one person speaks at a time; everyone talking at once is the worst case.
    speakers: int | None = None
    # What share of the time a speaker speaks: the recording is followed by silence to make
    # it so (a court's normal hearing has one person speaking some 70 % of the time).
    speaking_share: float = 1.0
    # What each media client's camera sends (encoded once, replayed).
    video: VideoFormat = field(default_factory=VideoFormat)

    @property
    def clients(self) -> int:
        return self.hearings * self.participants

    def check(self) -> None:
        """Refuse a plan that cannot run, naming the problem."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LoadTestError(f"--url must be http(s)://host:port, not {self.url!r}")
        if self.hearings < 1 or self.participants < 1:
            raise LoadTestError("--hearings and --participants must be at least 1")
        if self.clients > self.max_clients:
            raise LoadTestError(f"{self.hearings} hearings x {self.participants} participants "
                                f"= {self.clients} clients, over --max-clients {self.max_clients}")
        if self.duration_s < 0 or self.ramp_per_s < 0 or self.ping_s < 0:
            raise LoadTestError("--duration, --ramp and --ping must not be negative")
        if self.concurrency < 1 or self.join_timeout_s <= 0:
            raise LoadTestError("--concurrency and --join-timeout must be positive")
        if self.in_session and not self.media:
            raise LoadTestError("--in-session needs --media: the lobby is not in session")
        if self.speech is not None and not self.media:
            raise LoadTestError("--speech needs --media")
        if self.speakers is not None and not 0 <= self.speakers <= self.participants:
            raise LoadTestError("--speakers must be between 0 and --participants")
        if not 0 < self.speaking_share <= 1:
            raise LoadTestError("--speaking-share must be above 0 and at most 1")


@dataclass(frozen=True)
class Spread:
    """A distribution of times in milliseconds (nearest-rank percentiles)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Spread:
        if not seconds:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        ordered = sorted(seconds)

        def rank(q: float) -> float:
            index = min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1
            return round(ordered[index] * 1000, 2)

        return cls(len(ordered), rank(0.50), rank(0.95), rank(0.99),
                   round(ordered[-1] * 1000, 2))


@dataclass
class LoadReport:
    """What a run measured; `held` is checked against the server's own count, `server_present`."""

    url: str
    hearings: int
    clients: int
    media: bool
    joined: int = 0
    join: Spread = field(default_factory=lambda: Spread.of([]))
    join_seconds: float = 0.0
    joins_per_s: float = 0.0
    baseline: Spread = field(default_factory=lambda: Spread.of([]))
    held: int = 0
    held_seconds: float = 0.0
    server_present: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    disconnections: dict[str, int] = field(default_factory=dict)
    pings: int = 0
    pongs: int = 0
    pong: Spread = field(default_factory=lambda: Spread.of([]))
    offers_answered: int = 0
    peers_connected: int = 0
    # Connections the server said failed (`media_failed`, by reason), each retried.
    media_failures: dict[str, int] = field(default_factory=dict)
    frames_received: dict[str, int] = field(default_factory=dict)
    # While held: frames a second on each received slot that carries someone (sent: audio
    # 1000 / AUDIO_FRAME_MS, video `video_fps`); below that, media was lost or late.
    frame_rates: dict[str, float] = field(default_factory=dict)
    video_fps: int = 0
    # While held, sampled each second: the share of received videos the server's downlink
    # adaptation held back, and the share it sent at a reduced frame rate (its `slots`).
    videos_held: float = 0.0
    videos_reduced: float = 0.0
    client_cpu_percent: float = 0.0  # this process while held, of one core
    captions_received: int = 0  # final trial-record lines, summed over the clients
    max_recognizer_lag_s: float = 0.0  # from the judges' `transcription` messages
    recognizer_lag: Spread = field(default_factory=lambda: Spread.of([]))  # the same, spread
    hearings_cleaned: int = 0
    cleanup_errors: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        def spread(s: Spread) -> str:
            return (f"p50 {s.p50:.1f} ms, p95 {s.p95:.1f} ms, p99 {s.p99:.1f} ms, "
                    f"max {s.max:.1f} ms (n={s.count})")

        def counts(c: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        lines = [
            f"tingshen loadtest against {self.url}",
            f"  hearings {self.hearings}, clients {self.clients}"
            f" ({'media' if self.media else 'signaling only, in the lobby'})",
            f"  joined {self.joined}/{self.clients} in {self.join_seconds:.1f} s: "
            f"{self.joins_per_s:.1f} joins/s",
            f"  join time (connect -> welcome): {spread(self.join)}",
        ]
        if self.baseline.count:
            lines.append(f"  baseline (connect -> pong, no join): {spread(self.baseline)}")
        present = "?" if self.server_present is None else str(self.server_present)
        lines += [
            f"  held {self.held} for {self.held_seconds:.1f} s; the server counts {present}"
            " present",
            f"  pings {self.pings}, pongs {self.pongs}: {spread(self.pong)}",
            f"  errors: {counts(self.errors)}",
            f"  disconnections: {counts(self.disconnections)}",
        ]
        if self.media:
            lines.append(f"  media: {self.offers_answered} offers answered, "
                         f"{self.peers_connected} peers connected, frames received "
                         f"{counts(self.frames_received)}")
            lines.append(f"  media connections failed and retried: "
                         f"{counts(self.media_failures)}")
            rates = ", ".join(f"{k} {v:.1f}/s" for k, v in sorted(self.frame_rates.items()))
            lines.append(f"  frames per received track while held: {rates or 'none'} (sent: "
                         f"audio {1000 // AUDIO_FRAME_MS}/s, video {self.video_fps}/s)")
            lines.append(f"  received videos the server held back {self.videos_held:.0%}, "
                         f"sent reduced {self.videos_reduced:.0%} (of the time held)")
            lines.append(f"  trial record: {self.captions_received} final captions received, "
                         f"recognizer lag p95 {self.recognizer_lag.p95 / 1000:.1f} s, "
                         f"up to {self.max_recognizer_lag_s:.1f} s")
        lines.append(f"  load client CPU while held: {self.client_cpu_percent:.0f}% of a core")
        lines.append(f"  cleanup: {self.hearings_cleaned}/{self.hearings} hearings finished; "
                     f"errors {counts(self.cleanup_errors)}")
        return "\n".join(lines)

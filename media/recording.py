"""Recording: each participant's encoded frames remuxed into Matroska/WebM, never re-encoded.

A file is one participant's audio and video during one session segment (from a start or resume
of the hearing to the next recess or close). Packet timestamps are milliseconds from the file's
`offset` on the hearing timeline (seconds since the hearing's timeline origin, a wall-clock
instant), so that every file of a hearing lines up on one timeline.

Files are written progressively in clusters of at most a second and flushed, so a killed server
leaves everything but the last moments playable; `repair()` makes a complete file of such a
file, beside it (the original is kept as captured). Muxing runs in one writer thread per
file, never on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from config.files import sync_directory, sync_file
from media.counters import MediaCounters
from media.errors import MediaError
from media.forwarding import CLOCK_RATE, EncodedFrame, vp8_size
from media.threads import put_end, start_thread

log = logging.getLogger(__name__)

TIME_BASE = fractions.Fraction(1, 1000)
CLOCK_WINDOW_S = 30.0
# How far from its arrival a frame's sender time may place it. A frame cannot have been
# captured after it arrived (beyond the estimate's error), and one captured long before it
# arrived was not delayed that long: a sender whose timestamps (or reports) jump is not
# believed, and a recording never runs past the session's wall-clock time by more than this.
PLAUSIBLE_AHEAD_S = 2.0
PLAUSIBLE_BEHIND_S = 10.0
# Frames go to the writer thread in batches: one hand-off (a thread wake-up, the GIL taken
# from the event loop) per batch instead of per frame, which is most of recording's cost.
BATCH_S = 0.2
# Two minutes of batches: a writer stalled longer than that is failing.
WRITER_QUEUE_BATCHES = 600
CLUSTER_MS = 1000
# How long audio waits for a first video keyframe (which gives the picture size) before the
# file is opened with a nominal size; VP8 carries its real size in every keyframe anyway.
VIDEO_WAIT_MS = 2000
NOMINAL_SIZE = (640, 360)
ENCODER_FOR = {"VP8": "libvpx", "opus": "libopus"}  # what WebM takes and peers negotiate
AUDIO_FRAME_MS = 20
# Frames captured before the stop are still in flight (audio waits in the jitter buffer, a
# busy loop delays delivery): they are taken until each stream has passed the stop, or for
# at most this long.
STOP_GRACE_S = 2.0


class RecordingError(MediaError):
    """A recording file could not be written or repaired."""


def rtp_delta(timestamp: int, reference: int) -> int:
    """Signed difference of two 32-bit RTP timestamps (wraps are crossed correctly)."""
    return ((timestamp - reference + 2**31) % 2**32) - 2**31


class WindowMin:
    """The minimum of the values seen in the last `window_s` seconds (a monotonic deque)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._items: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, at: float, value: float) -> float:
        while self._items and self._items[-1][1] >= value:
            self._items.pop()
        self._items.append((at, value))
        while self._items[0][0] < at - self.window_s:
            self._items.popleft()
        return self._items[0][1]


class SenderClock:
    """Puts one participant's RTP timestamps on the server's wall clock.

    RTCP sender reports tie each stream's RTP clock to the sender's wall clock, which keeps a
    participant's audio and video in sync with each other. A report pairs an RTP timestamp
    with the moment its packet left, which a busy sender delays: the report with the least
    delay in the last half minute anchors the stream. The sender's wall clock may be off the
    server's by seconds, so the offset between them is the smallest difference seen between
    a frame's arrival and its sender time (the network delay floor) in the same window, which
    also follows slow drift between the two clocks. Until a stream's first report, its first
    frame's arrival anchors it.

    A time implausibly far from the frame's arrival (a sender jumping its RTP timestamps, or
    reporting a wall clock they do not follow) is not believed: the frame is placed at its
    arrival, and the stream is anchored there again until its next report.
    """

    def __init__(self) -> None:
        self._bases: dict[str, WindowMin] = {}
        self._base: dict[str, float] = {}
        self._anchors: dict[str, tuple[int, float]] = {}
        self._offsets = WindowMin(CLOCK_WINDOW_S)
        self._offset: float | None = None
        self.implausible = 0  # frames placed at their arrival instead

    def sender_report(self, kind: str, sender_wall: float, rtp_timestamp: int) -> None:
        # The sender's wall time of RTP timestamp 0 (the receiver's count starts at 0).
        base = sender_wall - rtp_timestamp / CLOCK_RATE[kind]
        window = self._bases.setdefault(kind, WindowMin(CLOCK_WINDOW_S))
        self._base[kind] = window.add(sender_wall, base)

    def wall_time(self, kind: str, rtp_timestamp: int, arrival_wall: float) -> float:
        rate = CLOCK_RATE[kind]
        base = self._base.get(kind)
        if base is None:
            anchor_rtp, anchor_wall = self._anchors.setdefault(
                kind, (rtp_timestamp, arrival_wall)
            )
            wall = anchor_wall + rtp_delta(rtp_timestamp, anchor_rtp) / rate
            if _plausible(wall, arrival_wall):
                return wall
        else:
            sender_wall = base + rtp_timestamp / rate
            sample = arrival_wall - sender_wall
            # A sample far off the offset in use would move the whole timeline, both kinds:
            # it is judged before it joins the window.
            if self._offset is None or _plausible(sender_wall + self._offset, arrival_wall):
                self._offset = self._offsets.add(arrival_wall, sample)
                return sender_wall + self._offset
        self.implausible += 1
        if self.implausible == 1:
            log.warning("a sender's %s timestamps are implausible: placed at their arrival",
                        kind)
        if base is not None:
            # The next report starts over: a sender whose clock stepped is followed again.
            self._base.pop(kind, None)
            self._bases.pop(kind, None)
            self._offsets, self._offset = WindowMin(CLOCK_WINDOW_S), None
        self._anchors[kind] = (rtp_timestamp, arrival_wall)
        return arrival_wall


class ContinuousTime:
    """One consumer's placement of one stream of a sender: the `SenderClock`'s, except while
    the clock has lately judged a frame implausible; then a frame that continues the stream
    follows the frame before it by what their RTP timestamps say, however late it arrives.

    On a busy server frames are read (and their audio decoded and delivered) seconds behind
    the sender: past PLAUSIBLE_BEHIND_S the clock takes that for a sender jumping its
    timestamps, places the frame at its arrival, seconds after the frame before, and the offset
    it learns after that moves frames again until its window forgets it. Mid-speech, such a
    jump is a gap to the transcriber: the utterance ends there, and a piece with too little
    voice in it is discarded (with two CPU hogs beside the full-hearing test: the speech's
    first words discarded, the rest placed 10 s late).

    Lost packets stay gaps (the timestamps count them). A discontinuity is the clock's to
    place even then: a timestamp before the last one (the sender started over) or one that
    would place the frame after its arrival (a frame cannot have been captured after it
    arrived: a sender that jumped forward). Outside a disturbance the clock's placement is
    taken as it is, so that its sender reports correct where the first frames' arrival
    anchored the stream, and follow the sender's clock drift.
    """

    def __init__(self, clock: SenderClock, kind: str) -> None:
        self.clock = clock
        self.kind = kind
        self._last: tuple[int, float] | None = None  # (RTP timestamp, wall time)
        self._implausible = clock.implausible
        self._disturbed_until = float("-inf")

    def wall_time(self, rtp_timestamp: int, arrival_wall: float) -> float:
        wall = self.clock.wall_time(self.kind, rtp_timestamp, arrival_wall)
        if self.clock.implausible != self._implausible:
            # Until the clock's window has forgotten the offsets learnt meanwhile.
            self._implausible = self.clock.implausible
            self._disturbed_until = arrival_wall + CLOCK_WINDOW_S
        if self._last is not None and arrival_wall < self._disturbed_until:
            last_rtp, last_wall = self._last
            delta = rtp_delta(rtp_timestamp, last_rtp)
            follows = last_wall + delta / CLOCK_RATE[self.kind]
            if delta >= 0 and follows <= arrival_wall + PLAUSIBLE_AHEAD_S:
                wall = follows
        self._last = (rtp_timestamp, wall)
        return wall


def _plausible(wall: float, arrival_wall: float) -> bool:
    return arrival_wall - PLAUSIBLE_BEHIND_S <= wall <= arrival_wall + PLAUSIBLE_AHEAD_S


@dataclass(frozen=True)
class RecordingFile:
    """A finished (or interrupted) recording file, as the record keeps it."""

    path: Path
    participant_id: str
    segment: int
    offset: float
    duration: float
    codecs: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Packet:
    kind: str
    codec: str
    data: bytes
    pts_ms: int
    keyframe: bool


FailureCallback = Callable[[str], None]


class ParticipantRecorder:
    """Writes one participant's frames of one session segment to one file.

    `video()` and `audio()` are `Publication` taps, called on the event loop: they only
    compute the timestamp and queue the frame. A write error (a full disk) stops this file,
    keeps what it holds, and is reported once through `on_failure`; the hearing goes on.
    """

    def __init__(
        self,
        path: Path,
        participant_id: str,
        segment: int,
        origin_wall: float,
        clock: SenderClock,
        on_failure: FailureCallback,
        counters: MediaCounters | None = None,
    ) -> None:
        self.path = path
        self.participant_id = participant_id
        self.segment = segment
        self.clock = clock
        self.started_wall = time.time()
        self.offset = self.started_wall - origin_wall
        self.frames_lost = 0
        self.error: str | None = None
        self._on_failure = on_failure
        self._counters = counters if counters is not None else MediaCounters()
        self._wall_minus_monotonic = time.time() - time.monotonic()
        self._queue: queue.Queue[list[_Packet] | None] = queue.Queue(WRITER_QUEUE_BATCHES)
        self._batch: list[_Packet] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._thread: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._result: RecordingFile | None = None
        self._stop_ms: int | None = None
        self._kinds_seen: set[str] = set()
        self._kinds_past_stop: set[str] = set()
        self._caught_up = asyncio.Event()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._thread = start_thread(self._run, f"recorder-{self.participant_id[:8]}")

    def push(self, frame: EncodedFrame) -> None:
        if self.error is not None:
            return
        arrival = frame.received_at + self._wall_minus_monotonic
        wall = self.clock.wall_time(frame.kind, frame.timestamp, arrival)
        pts_ms = round((wall - self.started_wall) * 1000)
        self._kinds_seen.add(frame.kind)
        if self._stop_ms is not None and pts_ms > self._stop_ms:
            self._kinds_past_stop.add(frame.kind)
            if self._kinds_past_stop >= self._kinds_seen:
                self._caught_up.set()
            return
        self._batch.append(_Packet(frame.kind, frame.codec, frame.data, pts_ms, frame.keyframe))
        if self._flush_timer is None and self._loop is not None:
            self._flush_timer = self._loop.call_later(BATCH_S, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.frames_lost += len(batch)
            self._fail("the recording writer fell behind; frames were lost")
            return
        self._counters.bytes_recorded += sum(len(packet.data) for packet in batch)

    async def aclose(self, grace_s: float = STOP_GRACE_S) -> RecordingFile:
        """Stop at this instant, take the frames still in flight, and finish the file (its
        index and duration). Safe to call more than once."""
        if self._stop_ms is None:
            self._stop_ms = round((time.time() - self.started_wall) * 1000)
            if self._kinds_seen and self.error is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._caught_up.wait(), grace_s)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await put_end(self._queue)
            await thread
        if self._result is None:
            self._result = self._describe(None, (), 0)
        return self._result

    # -- the writer thread ------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        if self.error is not None:
            return
        self.error = message
        log.error("recording %s failed: %s", self.path, message)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_failure, message)

    def _run(self) -> None:
        writer = _MatroskaWriter(self.path)
        last_ms = 0
        try:
            while (batch := self._queue.get()) is not None:
                for packet in batch:
                    if self.error is not None:
                        break
                    try:
                        writer.write(packet)
                    except (OSError, av.FFmpegError) as e:
                        self._fail(f"cannot write {self.path.name}: {e}")
                last_ms = max(last_ms, writer.end_ms)
            try:
                writer.close()
            except (OSError, av.FFmpegError) as e:
                self._fail(f"cannot finish {self.path.name}: {e}")
        finally:
            writer.abandon()
            self._result = self._describe(writer, writer.codecs, last_ms)

    def _describe(
        self, writer: _MatroskaWriter | None, codecs: tuple[str, ...], end_ms: int
    ) -> RecordingFile:
        return RecordingFile(
            path=self.path,
            participant_id=self.participant_id,
            segment=self.segment,
            offset=self.offset,
            duration=end_ms / 1000,
            codecs=codecs,
            error=self.error,
        )


class _MatroskaWriter:
    """The PyAV side: opens the file once the picture size is known, keeps timestamps rising."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened = False
        self.end_ms = 0
        self._container: Any = None
        self._file: Any = None
        self._streams: dict[str, Any] = {}
        self.codecs: tuple[str, ...] = ()
        self._pending: list[_Packet] = []
        self._last_pts: dict[str, int] = {}
        self._video_started = False

    def write(self, packet: _Packet) -> None:
        if self._container is not None:
            self._mux(packet)
            return
        self._pending.append(packet)
        size = vp8_size(packet.data) if packet.kind == "video" and packet.keyframe else None
        if size is not None or packet.pts_ms - self._pending[0].pts_ms >= VIDEO_WAIT_MS:
            self._open(size or NOMINAL_SIZE)

    def _open(self, size: tuple[int, int]) -> None:
        """Open the file with both streams (Matroska takes no stream after the header), then
        write what waited for it."""
        codec = {p.kind: p.codec for p in self._pending}
        # An unbuffered Python file: FFmpeg's own I/O keeps a write error to itself until the
        # file is closed, while this one raises it (a full disk) from the `mux` that hit it.
        self._file = self.path.open("wb", buffering=0)
        container = av.open(
            self._file, "w", format="webm",
            options={"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"},
        )
        self._container = container
        self.opened = True
        video: Any = container.add_stream(ENCODER_FOR[codec.get("video", "VP8")], rate=30)
        video.width, video.height = size
        video.time_base = TIME_BASE
        audio = container.add_stream(ENCODER_FOR[codec.get("audio", "opus")], rate=48_000)
        audio.time_base = TIME_BASE
        self._streams = {"video": video, "audio": audio}
        self.codecs = (codec.get("video", "VP8").lower(), codec.get("audio", "opus").lower())
        pending, self._pending = self._pending, []
        for packet in pending:
            self._mux(packet)

    def _mux(self, packet: _Packet) -> None:
        if packet.kind == "video" and not self._video_started:
            if not packet.keyframe:
                return  # nothing before the first keyframe can be decoded
            self._video_started = True
        pts = max(packet.pts_ms, self._last_pts.get(packet.kind, -1) + 1, 0)
        self._last_pts[packet.kind] = pts
        out = av.Packet(packet.data)
        out.stream = self._streams[packet.kind]
        out.pts = out.dts = pts
        out.time_base = TIME_BASE
        out.is_keyframe = packet.keyframe
        self._container.mux(out)
        self.end_ms = max(self.end_ms, pts + (AUDIO_FRAME_MS if packet.kind == "audio" else 0))

    def close(self) -> None:
        """Finish the file and flush it to the disk: it is hashed and marked complete next."""
        if self._container is None and self._pending:
            self._open(NOMINAL_SIZE)
        if self._container is not None:
            container, self._container = self._container, None
            container.close()
            os.fsync(self._file.fileno())
            self._file.close()
            sync_directory(self.path.parent)

    def abandon(self) -> None:
        """After a failure: release the file without writing more (it keeps what it has)."""
        if self._container is not None:
            container, self._container = self._container, None
            with contextlib.suppress(Exception):
                container.close()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()


def repaired_path(path: Path) -> Path:
    """Where `repair` writes the complete file made of a cut-short one."""
    return path.with_name(f"{path.stem}.repaired{path.suffix}")


def repair(path: Path) -> tuple[Path, float, tuple[str, ...]]:
    """Remux a file cut short (a killed server, a full disk) into a complete one beside it.

    The original is kept as captured, byte for byte: the record hashes both, and the
    repaired file, written to the disk before this returns, is the one played. Returns the
    repaired file's path, its duration in seconds and the codecs it holds.
    """
    if not path.is_file():
        raise FileNotFoundError(path)
    repaired = repaired_path(path)
    temporary = path.with_suffix(".repair.webm")
    end_ms = 0
    try:
        with av.open(str(path)) as source, av.open(str(temporary), "w", format="webm") as out:
            streams = {s.index: out.add_stream_from_template(s) for s in source.streams
                       if s.type in ("audio", "video")}
            if not streams:
                raise RecordingError(f"{path.name} holds no audio or video")
            codecs = tuple(s.codec_context.name for s in source.streams if s.index in streams)
            try:
                for packet in source.demux(*[s for s in source.streams if s.index in streams]):
                    if packet.dts is None or packet.pts is None:
                        continue
                    end = packet.pts + (packet.duration or 0)
                    end_ms = max(end_ms, int(end * packet.time_base * 1000))
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
            except (av.FFmpegError, EOFError):
                pass  # the cut-off end: everything before it is kept
        sync_file(temporary)
        os.replace(temporary, repaired)
        sync_directory(repaired.parent)
    except (av.FFmpegError, OSError) as e:
        temporary.unlink(missing_ok=True)
        raise RecordingError(f"cannot repair {path.name}: {e}") from e
    return repaired, end_ms / 1000, codecs

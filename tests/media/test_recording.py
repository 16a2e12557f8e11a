"""The recorder without a network: clocks, files, the stop, repair and write errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import av
import pytest

from media.forwarding import EncodedFrame, vp8_size
from media.recording import (
    ParticipantRecorder,
    RecordingError,
    SenderClock,
    WindowMin,
    repair,
    rtp_delta,
)
from tests.durable import fsynced
from tests.probe import codecs, decoded_frames, duration, playable_seconds


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes, float, bool]]:
    """Four seconds of real VP8 and Opus packets: (kind, data, seconds, keyframe)."""
    path = tmp_path_factory.mktemp("src") / "src.webm"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
         "-c:v", "libvpx", "-g", "60", "-b:v", "300k", "-c:a", "libopus", str(path)],
        check=True,
    )
    with av.open(str(path)) as container:
        return [(p.stream.type, bytes(p), float(p.pts * p.time_base), p.is_keyframe)
                for p in container.demux() if p.size]


def frames(source, start: float, repeat: int = 1):
    """EncodedFrames as the receiver hands them on, arriving in real time from `start`."""
    length = 4.0
    for n in range(repeat):
        for kind, data, t, key in source:
            at = n * length + t
            rate = 90_000 if kind == "video" else 48_000
            yield EncodedFrame(kind, "VP8" if kind == "video" else "opus", data,
                               round(at * rate), key if kind == "video" else True, start + at)


def test_rtp_arithmetic_and_vp8_headers(source):
    assert rtp_delta(5, 2**32 - 5) == 10 and rtp_delta(2**32 - 5, 5) == -10
    key = next(data for kind, data, _t, k in source if kind == "video" and k)
    assert vp8_size(key) == (320, 240)
    assert vp8_size(b"\x01\x02") is None
    window = WindowMin(10.0)
    assert [window.add(t, v) for t, v in ((0, 5), (1, 3), (2, 4), (12, 6), (13, 7))] == [
        5, 3, 3, 4, 6]


def test_sender_reports_align_audio_and_video_of_one_sender():
    clock = SenderClock()
    # The sender's clock runs 100 s ahead of the server's; the network takes 20 ms.
    skew, delay = 100.0, 0.020
    clock.sender_report("video", 1_000.0 + skew, 90_000 * 10)
    clock.sender_report("audio", 1_000.0 + skew, 48_000 * 10)
    # Video captured at server time 1000.5 arrives 20 ms later; audio waits 80 ms more.
    video = clock.wall_time("video", round(90_000 * 10.5), 1_000.5 + delay)
    audio = clock.wall_time("audio", round(48_000 * 10.5), 1_000.5 + delay + 0.080)
    assert video == pytest.approx(1_000.5 + delay, abs=1e-6)
    assert audio == pytest.approx(video, abs=1e-6)  # the same instant, despite the skew
    # A later report sent late (a busy sender) does not move the timeline.
    clock.sender_report("video", 1_002.3 + skew, 90_000 * 12)
    assert clock.wall_time("video", 90_000 * 11, 1_001.0 + delay) == pytest.approx(
        1_001.0 + delay, abs=1e-6)


async def test_a_recording_holds_every_frame_with_its_timing(tmp_path: Path, source):
    failures: list[str] = []
    recorder = ParticipantRecorder(tmp_path / "p.webm", "p1", 0, time.time() - 5.0,
                                   SenderClock(), failures.append)
    recorder.start()
    assert recorder.offset == pytest.approx(5.0, abs=0.05)
    start = time.monotonic()
    for frame in frames(source, start, repeat=2):
        recorder.push(frame)
    await asyncio.sleep(8.2)  # let the real-time clock pass the frames, then stop
    file = await recorder.aclose(grace_s=0)
    assert failures == [] and file.error is None
    assert file.codecs == ("vp8", "opus")
    assert codecs(file.path) == ["opus", "vp8"]
    assert duration(file.path) == pytest.approx(8.0, abs=0.1)
    assert file.duration == pytest.approx(duration(file.path), abs=0.05)
    counts = decoded_frames(file.path)
    assert counts["video"] == 2 * sum(1 for k, *_ in source if k == "video")


async def test_frames_after_the_stop_are_not_recorded(tmp_path: Path, source):
    recorder = ParticipantRecorder(tmp_path / "p.webm", "p1", 0, time.time(), SenderClock(),
                                   lambda _m: None)
    recorder.start()
    start = time.monotonic()
    early = [f for f in frames(source, start) if f.received_at - start < 2.0]
    late = [f for f in frames(source, start) if f.received_at - start >= 2.0]
    for frame in early:
        recorder.push(frame)
    await asyncio.sleep(2.0)
    closing = asyncio.ensure_future(recorder.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()  # waiting for the streams to pass the stop
    for frame in late:
        recorder.push(frame)
    file = await asyncio.wait_for(closing, 1.0)
    assert duration(file.path) == pytest.approx(2.0, abs=0.1)


async def test_a_cut_file_plays_and_is_repaired_beside_it(tmp_path: Path, source,
                                                          monkeypatch: pytest.MonkeyPatch):
    recorder = ParticipantRecorder(tmp_path / "p.webm", "p1", 0, time.time(), SenderClock(),
                                   lambda _m: None)
    recorder.start()
    for frame in frames(source, time.monotonic(), repeat=2):
        recorder.push(frame)
    file = await recorder.aclose(grace_s=0)
    whole = file.path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(whole[: len(whole) * 3 // 4])  # what a killed server leaves
    assert playable_seconds(cut) >= 4.0
    captured = cut.read_bytes()
    synced = fsynced(monkeypatch)
    repaired, seconds, found = repair(cut)
    assert found == ("vp8", "opus") and seconds >= 4.0
    assert repaired == tmp_path / "cut.repaired.webm"
    # Its bytes reached the disk before it was renamed into place, then the rename did.
    assert synced == [tmp_path / "cut.repair.webm", tmp_path]
    assert duration(repaired) == pytest.approx(seconds, abs=0.05)
    assert cut.read_bytes() == captured  # the bytes captured are kept as they are
    garbage = tmp_path / "garbage.webm"
    garbage.write_bytes(b"not a recording")
    with pytest.raises(RecordingError):
        repair(garbage)
    assert garbage.read_bytes() == b"not a recording"
    assert sorted(p.name for p in os.scandir(tmp_path)) == [
        "cut.repaired.webm", "cut.webm", "garbage.webm", "p.webm"]


async def test_a_finished_recording_is_on_the_disk_before_it_is_described(
        tmp_path: Path, source, monkeypatch: pytest.MonkeyPatch):
    synced = fsynced(monkeypatch)
    recorder = ParticipantRecorder(tmp_path / "p.webm", "p1", 0, time.time(), SenderClock(),
                                   lambda _m: None)
    recorder.start()
    for frame in frames(source, time.monotonic()):
        recorder.push(frame)
    file = await recorder.aclose(grace_s=0)
    assert synced[:2] == [file.path, tmp_path]  # the file, then its directory entry


async def test_a_write_error_is_reported_once_and_keeps_what_was_written(tmp_path: Path,
                                                                         source, tmpfs):
    disk = tmpfs(tmp_path / "disk", "64k")
    failures: list[str] = []
    recorder = ParticipantRecorder(disk / "p.webm", "p1", 0, time.time(), SenderClock(),
                                   failures.append)
    recorder.start()
    for frame in frames(source, time.monotonic(), repeat=3):
        recorder.push(frame)
    file = await recorder.aclose(grace_s=0)
    await asyncio.sleep(0.1)  # the failure report comes through the loop
    assert len(failures) == 1 and "No space left" in failures[0]
    assert file.error == failures[0]
    assert playable_seconds(file.path) > 0.5


def jumped(frames_, after: float, start: float, jump: int = 3_600 * 48_000):
    """A hostile publisher: from `after` seconds on, every RTP timestamp jumps by `jump` (an
    hour of the 48 kHz audio clock; half an hour of video's 90 kHz)."""
    for f in frames_:
        if f.received_at - start >= after:
            f = EncodedFrame(f.kind, f.codec, f.data, (f.timestamp + jump) % 2**32,
                             f.keyframe, f.received_at)
        yield f


@pytest.mark.parametrize("reports", [False, True])
async def test_jumped_rtp_timestamps_do_not_stretch_the_recording(tmp_path: Path, source,
                                                                  reports: bool):
    clock = SenderClock()
    if reports:  # honest sender reports at the start, the jump comes later
        now = time.time()
        clock.sender_report("video", now, 0)
        clock.sender_report("audio", now, 0)
    recorder = ParticipantRecorder(tmp_path / "p.webm", "p1", 0, time.time(), clock,
                                   lambda _m: None)
    recorder.start()
    start = time.monotonic()
    for frame in jumped(frames(source, start), after=2.0, start=start):
        recorder.push(frame)
    await asyncio.sleep(4.2)
    file = await recorder.aclose(grace_s=0)
    # Four seconds were captured: the file holds them, not an hour.
    assert file.duration <= 4.0 + 2.5
    assert duration(file.path) <= 4.0 + 2.5
    assert playable_seconds(file.path) >= 3.5
    assert clock.implausible > 0


def test_an_implausible_timestamp_is_placed_at_its_arrival():
    clock = SenderClock()
    assert clock.wall_time("audio", 48_000, 1_000.0) == 1_000.0
    assert clock.wall_time("audio", 96_000, 1_001.0) == pytest.approx(1_001.0)
    # 12.4 hours ahead, then back: both land where they arrived, and the stream goes on
    # from there.
    assert clock.wall_time("audio", 96_000 + 2**31, 1_001.02) == pytest.approx(1_001.02)
    assert clock.wall_time("audio", 96_000 + 2**31 + 960, 1_001.04) == pytest.approx(1_001.04)
    assert clock.wall_time("audio", 97_000, 1_001.06) == pytest.approx(1_001.06)
    # Sender reports claiming a wall clock hours away from the frames' arrival are no
    # better: a frame is never placed more than seconds from its arrival.
    clock.sender_report("video", 1_000.0, 0)
    assert clock.wall_time("video", 0, 1_000.5) == pytest.approx(1_000.5)
    assert abs(clock.wall_time("video", 90_000 * 3600, 1_001.0) - 1_001.0) < 2.0
    assert clock.implausible >= 3


async def test_a_recording_finishes_while_the_default_executor_is_busy(
        tmp_path: Path, source, full_default_executor):
    """A departure finishes its files without the default executor (six long renders once
    filled it and froze departures)."""
    recorder = ParticipantRecorder(tmp_path / "p.webm", "p1", 0, time.time(), SenderClock(),
                                   lambda _m: None)
    recorder.start()
    for frame in frames(source, time.monotonic()):
        recorder.push(frame)
    file = await asyncio.wait_for(recorder.aclose(grace_s=0), 10)
    assert file.error is None and playable_seconds(file.path) > 3.5

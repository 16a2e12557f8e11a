"""The recorder without a network: clocks, files, the stop, repair and write errors."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import av
import pytest

from media.recording import (
    ParticipantRecorder,
    RecordingError,
    SenderClock,
    WindowMin,
    repair,
    rtp_delta,
)
from media.relay import EncodedFrame, vp8_size
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


async def test_a_cut_file_plays_and_is_repaired(tmp_path: Path, source):
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
    seconds, found = repair(cut)
    assert found == ("vp8", "opus") and seconds >= 4.0
    assert duration(cut) == pytest.approx(seconds, abs=0.05)
    garbage = tmp_path / "garbage.webm"
    garbage.write_bytes(b"not a recording")
    with pytest.raises(RecordingError):
        repair(garbage)
    assert garbage.read_bytes() == b"not a recording"


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

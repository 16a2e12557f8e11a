"""The audio tap: every participant's Opus decoded by the hearing's one decoder thread, each
participant's chunks reaching their consumers in order, nothing in flight lost at a close."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time

import av
import numpy as np
import pytest

from media.audio import TAP_RATE, AudioDecoder, AudioTap, PcmChunk, _TapDecoder
from media.forwarding import EncodedFrame

FRAME = 960  # 20 ms at 48 kHz


def opus_frames(frequency: float, count: int) -> list[bytes]:
    """`count` 20 ms Opus packets of a sine at `frequency` (mono, 48 kHz)."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48_000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 32_000
    t = np.arange(FRAME * count) / 48_000
    tone = (np.sin(2 * np.pi * frequency * t) * 8_000).astype(np.int16)
    packets: list[bytes] = []
    for k in range(count):
        frame = av.AudioFrame.from_ndarray(tone[k * FRAME:(k + 1) * FRAME].reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = k * FRAME
        frame.time_base = fractions.Fraction(1, 48_000)
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets[:count]


def frame(data: bytes, k: int) -> EncodedFrame:
    return EncodedFrame("audio", "opus", data, k * FRAME, False, time.monotonic())


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float32)))
    return float(np.argmax(spectrum) * TAP_RATE / samples.size)


@pytest.fixture
async def decoder():
    decoder = AudioDecoder("hearing")
    decoder.start()
    yield decoder
    await decoder.aclose()


async def test_each_participant_gets_their_own_audio_in_order_from_one_thread(
        decoder: AudioDecoder) -> None:
    tones = {"judge": 440.0, "defendant": 1_000.0, "lawyer": 2_000.0}
    packets = {pid: opus_frames(hz, 50) for pid, hz in tones.items()}
    heard: dict[str, list[PcmChunk]] = {pid: [] for pid in tones}
    taps = {pid: AudioTap(pid) for pid in tones}
    for pid, tap in taps.items():
        tap.add_consumer(heard[pid].append)
        tap.start(decoder)
    decoders_before = [t.name for t in threading.enumerate() if "audio-decoder" in t.name]
    for k in range(50):  # interleaved, as frames arrive from several participants
        for pid, tap in taps.items():
            tap.push(frame(packets[pid][k], k))
        await asyncio.sleep(0.002)
    for tap in taps.values():
        await tap.aclose()  # returns once what it took has reached the consumers
    assert decoders_before == ["audio-decoder-hearing"]
    for pid, hz in tones.items():
        chunks = heard[pid]
        assert [c.timestamp for c in chunks] == [k * FRAME for k in range(50)], pid
        samples = np.concatenate([c.samples for c in chunks])
        assert samples.dtype == np.int16 and samples.size >= 49 * TAP_RATE // 50
        assert abs(dominant_hz(samples[TAP_RATE // 10:]) - hz) < 20, pid
        assert taps[pid].frames_decoded == 50 and taps[pid].frames_lost == 0
        assert taps[pid].take_peak() > -30


async def test_a_bad_packet_is_counted_and_the_others_still_decode(
        decoder: AudioDecoder) -> None:
    tap = AudioTap("defendant")
    heard: list[PcmChunk] = []
    tap.add_consumer(heard.append)
    tap.start(decoder)
    good = opus_frames(440.0, 3)
    tap.push(frame(good[0], 0))
    tap.push(frame(b"", 1))  # nothing: would have left the decoder draining, silent for good
    tap.push(frame(b"\xff\xff\xff\xff", 2))  # what no Opus encoder writes
    tap.push(frame(good[1], 3))
    await tap.aclose()
    assert tap.decode_errors == 2
    assert [c.timestamp for c in heard] == [0, 3 * FRAME]


async def test_a_failing_consumer_does_not_starve_the_others(decoder: AudioDecoder) -> None:
    tap = AudioTap("judge")

    def broken(chunk: PcmChunk) -> None:
        raise RuntimeError("a consumer's bug")

    heard: list[PcmChunk] = []
    tap.add_consumer(broken)
    tap.add_consumer(heard.append)
    tap.start(decoder)
    for k, data in enumerate(opus_frames(440.0, 5)):
        tap.push(frame(data, k))
    await tap.aclose()
    assert len(heard) == 5


async def test_a_full_queue_loses_frames_it_counts_and_a_closed_tap_takes_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("media.audio.DECODE_QUEUE_FRAMES", 3)
    decoder = AudioDecoder("stuck")  # not started: nothing takes from its queue
    tap = AudioTap("judge")
    tap.start(decoder)
    data = opus_frames(440.0, 1)[0]
    for k in range(5):
        tap.push(frame(data, k))
    assert tap.frames_lost == 2
    await tap.aclose()
    tap.push(frame(data, 6))
    assert tap.frames_lost == 2 and tap.frames_decoded == 0


async def test_a_frame_whose_decoding_fails_unexpectedly_costs_that_frame_only(
        decoder: AudioDecoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not an Opus error but a bug: before, it ended the thread, and every participant's audio
    stopped reaching the record for the rest of the hearing."""
    decode = _TapDecoder.decode

    def failing_once(self: _TapDecoder, tap: AudioTap, work: EncodedFrame) -> PcmChunk | None:
        if tap.participant_id == "defendant" and work.timestamp == FRAME:
            raise RuntimeError("a bug in decoding")
        return decode(self, tap, work)

    monkeypatch.setattr("media.audio._TapDecoder.decode", failing_once)
    heard: dict[str, list[int]] = {"defendant": [], "judge": []}
    taps = {pid: AudioTap(pid) for pid in heard}
    packets = opus_frames(440.0, 4)
    for pid, tap in taps.items():
        tap.add_consumer(lambda chunk, pid=pid: heard[pid].append(chunk.timestamp))
        tap.start(decoder)
    for k, data in enumerate(packets):
        for tap in taps.values():
            tap.push(frame(data, k))
    for tap in taps.values():
        await tap.aclose()
    assert heard["defendant"] == [0, 2 * FRAME, 3 * FRAME]
    assert taps["defendant"].decode_errors == 1
    assert heard["judge"] == [k * FRAME for k in range(4)] and taps["judge"].decode_errors == 0


def dying_thread(monkeypatch: pytest.MonkeyPatch, times: int) -> None:
    """The decoder thread's first `times` runs end at once by an exception."""
    run = AudioDecoder._run
    left = [times]

    def dying(self: AudioDecoder) -> None:
        if left[0] > 0:
            left[0] -= 1
            raise RuntimeError("the decoder thread ended by a bug")
        run(self)

    monkeypatch.setattr("media.audio.AudioDecoder._run", dying)
    monkeypatch.setattr("threading.excepthook", lambda args: None)  # expected: not a report


async def test_a_decoder_thread_that_died_is_started_again_by_the_next_frame(
        monkeypatch: pytest.MonkeyPatch) -> None:
    dying_thread(monkeypatch, times=1)
    decoder = AudioDecoder("hearing")
    decoder.start()
    thread = decoder._thread
    assert thread is not None
    async with asyncio.timeout(10):
        await asyncio.wait({thread})
    tap = AudioTap("judge")
    heard: list[PcmChunk] = []
    tap.add_consumer(heard.append)
    tap.start(decoder)
    for k, data in enumerate(opus_frames(440.0, 5)):
        tap.push(frame(data, k))
    async with asyncio.timeout(10):
        await tap.aclose()
    assert [c.timestamp for c in heard] == [k * FRAME for k in range(5)]
    assert decoder.restarts == 1
    await decoder.aclose()


async def test_a_close_does_not_wait_for_a_decoder_thread_that_died(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A participant leaving must not hang the hearing's close on a thread nobody answers."""
    dying_thread(monkeypatch, times=1_000)
    decoder = AudioDecoder("broken")
    decoder.start()
    tap = AudioTap("judge")
    tap.start(decoder)
    tap.push(frame(opus_frames(440.0, 1)[0], 0))
    async with asyncio.timeout(10):
        await tap.aclose()
        await decoder.aclose()

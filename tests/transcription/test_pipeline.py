"""A hearing's live transcription with real tiny.en weights, fed as the audio tap feeds it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from tests.transcription.conftest import (
    chunks,
    in_order,
    load_wav,
    references,
    silence,
    word_errors,
)
from transcription.errors import InvalidAudio, UnknownSpeaker
from transcription.options import TranscriptionOptions
from transcription.pipeline import HearingTranscriber, InferenceWorker, Partial, Segment
from transcription.recognizer import Recognition, Recognizer
from transcription.segmenter import Segmenter, Utterance

RATE = 16_000


class Record:
    """What the callbacks received, as a hearing's record and captions would."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.partials: list[Partial] = []
        self.partial_times: list[float] = []

    async def on_segment(self, segment: Segment) -> None:
        self.segments.append(segment)

    async def on_partial(self, partial: Partial) -> None:
        self.partials.append(partial)
        self.partial_times.append(time.monotonic())

    def text(self, participant_id: str) -> str:
        return " ".join(s.text for s in self.segments if s.participant_id == participant_id)


def transcriber(worker: InferenceWorker, record: Record, **options: Any) -> HearingTranscriber:
    return HearingTranscriber(
        worker,
        on_segment=record.on_segment,
        on_partial=record.on_partial,
        language="en",
        case_number="2026-17",
        options=TranscriptionOptions(**options),
    )


async def feed(
    hearing: HearingTranscriber, participant_id: str, audio: np.ndarray, at: float
) -> None:
    for chunk, chunk_at in chunks(audio, at):
        hearing.feed(participant_id, chunk, chunk_at)
    await asyncio.sleep(0)


async def test_speech_becomes_attributed_segments_on_the_hearing_timeline(
    tiny_worker: InferenceWorker,
) -> None:
    record = Record()
    audio = load_wav("en_opening.wav")
    async with transcriber(tiny_worker, record) as hearing:
        hearing.add_speaker("p-judge", "Ann Lee", "judge")
        await feed(hearing, "p-judge", np.concatenate([audio, silence(1.0)]), at=100.0)
        await hearing.drain()
        assert hearing.lag_seconds == 0.0
    assert record.segments
    reference = references()["en_opening.wav"]
    assert in_order(reference, record.text("p-judge")) >= 0.7, record.text("p-judge")
    for segment in record.segments:
        assert (segment.participant_id, segment.name, segment.role) == (
            "p-judge",
            "Ann Lee",
            "judge",
        )
        assert segment.language == "en"
        assert 100.0 <= segment.start < segment.end <= 100.0 + audio.size / RATE + 0.1
        assert segment.words
        for _, start, end, _ in segment.words:
            assert segment.start - 0.01 <= start <= end <= segment.end + 0.01
    assert [s.start for s in record.segments] == sorted(s.start for s in record.segments)


@pytest.mark.parametrize("name", ["silence_5s.wav", "noise_5s.wav"])
async def test_silence_and_noise_leave_the_record_empty(
    tiny_worker: InferenceWorker, name: str
) -> None:
    record = Record()
    async with transcriber(tiny_worker, record) as hearing:
        hearing.add_speaker("p1", "Bo Chen", "defendant")
        await feed(hearing, "p1", load_wav(name), at=0.0)
        await hearing.drain()
    assert record.segments == [] and record.partials == []


async def test_two_speakers_fed_interleaved_keep_their_own_words(
    tiny_worker: InferenceWorker,
) -> None:
    record = Record()
    opening = np.concatenate([load_wav("en_opening.wav"), silence(1.0)])
    witness = np.concatenate([load_wav("en_witness.wav"), silence(1.0)])
    async with transcriber(tiny_worker, record) as hearing:
        hearing.add_speaker("judge", "Ann Lee", "judge")
        hearing.add_speaker("prosecutor", "Cai Wen", "prosecutor")
        # Both talk at once, chunk by chunk, as two audio taps deliver on one loop.
        for (a, a_at), (b, b_at) in zip(chunks(opening, 50.0), chunks(witness, 50.0), strict=False):
            hearing.feed("judge", a, a_at)
            hearing.feed("prosecutor", b, b_at)
        await hearing.drain()
    refs = references()
    assert in_order(refs["en_opening.wav"], record.text("judge")) >= 0.7
    assert in_order(refs["en_witness.wav"], record.text("prosecutor")) >= 0.7
    # Nothing of one speaker's sentence is attributed to the other.
    assert in_order(refs["en_witness.wav"], record.text("judge")) < 0.3
    assert in_order(refs["en_opening.wav"], record.text("prosecutor")) < 0.3
    assert {s.name for s in record.segments if s.participant_id == "prosecutor"} == {"Cai Wen"}


class SlowRecognizer(Recognizer):
    """The real recognizer, slowed down as if the machine were overloaded."""

    delay_s = 0.6

    def transcribe(self, audio: np.ndarray, *args: Any, **kwargs: Any) -> Recognition:
        time.sleep(self.delay_s)
        return super().transcribe(audio, *args, **kwargs)


async def loop_delays(stop: asyncio.Event) -> list[float]:
    """How late a 5 ms timer fires on the loop, sample after sample."""
    delays = []
    while not stop.is_set():
        began = time.perf_counter()
        await asyncio.sleep(0.005)
        delays.append(time.perf_counter() - began - 0.005)
    return delays


async def test_a_slow_recognizer_neither_blocks_feeding_nor_loses_an_utterance(
    tiny_recognizer: Recognizer,
) -> None:
    slow = SlowRecognizer(tiny_recognizer.model, tiny_recognizer.options)
    worker = InferenceWorker(slow)
    record = Record()
    talk = {
        "judge": np.concatenate([load_wav("en_opening.wav"), silence(0.8)] * 2),
        "witness": np.concatenate([load_wav("en_witness.wav"), silence(0.8)] * 2),
    }
    # The utterances the segmenter finds, independently of the pipeline.
    expected = 0
    for audio in talk.values():
        segmenter = Segmenter(TranscriptionOptions(max_queued_utterances=2))
        for chunk, at in chunks(audio, 0.0):
            expected += sum(isinstance(e, Utterance) for e in segmenter.push(chunk, at))
    assert expected >= 6
    stop = asyncio.Event()
    ticker = asyncio.create_task(loop_delays(stop))
    feed_times: list[float] = []
    max_lag = 0.0
    spilled = 0
    try:
        async with transcriber(worker, record, max_queued_utterances=2, partials=False) as hearing:
            hearing.add_speaker("judge", "Ann Lee", "judge")
            hearing.add_speaker("witness", "Dan Wu", "witness")
            pairs = zip(chunks(talk["judge"], 0.0), chunks(talk["witness"], 0.0), strict=False)
            # Four times faster than real time: the recognizer cannot keep up.
            for n, ((a, a_at), (b, b_at)) in enumerate(pairs):
                began = time.perf_counter()
                hearing.feed("judge", a, a_at)
                hearing.feed("witness", b, b_at)
                feed_times.append(time.perf_counter() - began)
                if n % 4 == 0:
                    await asyncio.sleep(0.02)
                stats = hearing.stats()
                max_lag = max(max_lag, hearing.lag_seconds)
                spilled = max(spilled, stats.spilled_utterances)
            assert hearing.stats().queued_utterances > 0
            await hearing.drain()
            stats = hearing.stats()
    finally:
        stop.set()
        delays = await ticker
        await worker.aclose()
    assert spilled > 0, "the in-memory queue never filled"
    assert max_lag > 0.5
    assert stats.finals == expected and stats.failures == 0
    assert stats.queued_utterances == 0 and stats.lag_seconds == 0.0
    assert max(feed_times) < 0.05, f"feed took {max(feed_times):.3f} s"
    # Decoding on the loop would stall it for the recognizer's delay at every utterance; a
    # thread costs the loop only scheduling noise (one outlier allowed on this busy machine).
    worst = sorted(delays)[-2:]
    assert max(worst) < SlowRecognizer.delay_s, f"the loop stalled for {worst} s"
    assert min(worst) < SlowRecognizer.delay_s / 2, f"the loop stalled for {worst} s"
    refs = references()
    assert in_order(refs["en_opening.wav"] * 2, record.text("judge")) >= 0.7
    assert in_order(refs["en_witness.wav"] * 2, record.text("witness")) >= 0.7


async def test_partials_arrive_while_someone_speaks(tiny_worker: InferenceWorker) -> None:
    record = Record()
    audio = np.concatenate([load_wav("en_opening.wav"), silence(1.0)])
    # A long hangover keeps the whole file one utterance, so partials have time to come.
    async with transcriber(tiny_worker, record, hangover_ms=1200, partial_quiet_ms=2000) as hearing:
        hearing.add_speaker("judge", "Ann Lee", "judge")
        began = time.monotonic()
        for chunk, at in chunks(audio, 20.0):
            hearing.feed("judge", chunk, at)
            await asyncio.sleep(max(0.0, began + (at - 20.0) - time.monotonic()))
        final_fed = time.monotonic()
        await hearing.drain()
    assert len(record.partials) >= 2, record.partials
    assert all(t < final_fed for t in record.partial_times[:2])
    first = record.segments[0]
    for partial in record.partials:
        assert (partial.participant_id, partial.name, partial.role) == ("judge", "Ann Lee", "judge")
        assert partial.start <= first.start + 0.5 and partial.end > partial.start
    ends = [p.end for p in record.partials]
    assert ends == sorted(ends)
    assert "court" in record.partials[0].text.lower()
    assert word_errors(references()["en_opening.wav"], record.text("judge")) <= 0.4


async def test_leaving_or_going_quiet_mid_sentence_still_gives_a_final(
    tiny_worker: InferenceWorker,
) -> None:
    record = Record()
    audio = load_wav("en_witness.wav")
    half = audio[: int(2.5 * RATE)]
    async with transcriber(tiny_worker, record, stall_s=0.3) as hearing:
        hearing.add_speaker("left", "Ann Lee", "judge")
        hearing.add_speaker("muted", "Dan Wu", "witness")
        await feed(hearing, "left", half, at=0.0)
        await feed(hearing, "muted", half, at=0.0)
        hearing.remove_speaker("left")
        with pytest.raises(UnknownSpeaker):
            hearing.feed("left", half[:320], 3.0)
        # "muted" simply stops sending audio: the stall check ends the utterance.
        for _ in range(100):
            if record.text("muted") and record.text("left"):
                break
            await asyncio.sleep(0.05)
    assert "prosecution" in record.text("left").lower()
    assert "prosecution" in record.text("muted").lower()
    assert all(s.end <= 2.5 + 0.05 for s in record.segments)


async def test_bad_input_is_refused_and_the_hearing_goes_on(tiny_worker: InferenceWorker) -> None:
    record = Record()
    async with transcriber(tiny_worker, record) as hearing:
        with pytest.raises(UnknownSpeaker):
            hearing.feed("nobody", silence(0.02), 0.0)
        hearing.add_speaker("p", "Ann Lee", "judge")
        with pytest.raises(InvalidAudio):
            hearing.feed("p", np.zeros(320, dtype=np.float64), 0.0)
        await feed(hearing, "p", np.concatenate([load_wav("en_witness.wav"), silence(1.0)]), 0.0)
        await hearing.drain()
    assert "witness" in record.text("p").lower()


async def test_a_failing_callback_does_not_stop_the_record(tiny_worker: InferenceWorker) -> None:
    delivered: list[Segment] = []
    calls = 0

    async def flaky(segment: Segment) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database briefly unavailable")
        delivered.append(segment)

    hearing = HearingTranscriber(tiny_worker, on_segment=flaky, language="en")
    await hearing.start()
    hearing.add_speaker("p", "Ann Lee", "judge")
    audio = np.concatenate([load_wav("en_opening.wav"), silence(1.0)])
    await feed(hearing, "p", audio, 0.0)
    await hearing.aclose()
    assert calls >= 2 and delivered
    assert hearing.stats().callback_errors == 1


async def test_aclose_cancelled_still_stops_the_task(tiny_worker: InferenceWorker) -> None:
    record = Record()
    hearing = transcriber(tiny_worker, record)
    await hearing.start()
    hearing.add_speaker("p", "Ann Lee", "judge")
    await feed(hearing, "p", np.concatenate([load_wav("en_opening.wav"), silence(1.0)]), 0.0)
    task = hearing._task
    assert task is not None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await hearing.aclose()
    assert task.done()


async def test_partials_take_at_most_their_share_of_the_inference_thread(
    tiny_recognizer: Recognizer,
) -> None:
    worker = InferenceWorker(tiny_recognizer)
    try:
        assert worker.partials_allowed()
        await worker.run(time.sleep, 0.2)
        assert worker.partials_allowed(), "a final does not hold partials back"
        await worker.run(time.sleep, 0.2, partial=True)
        # Share 0.5: after 0.2 s of partial decoding, 0.2 s for everything else.
        share = tiny_recognizer.options.max_partial_share
        assert not worker.partials_allowed()
        assert 0.1 < worker.partials_wait() <= 0.2 * (1 - share) / share + 0.01
        await asyncio.sleep(worker.partials_wait() + 0.01)
        assert worker.partials_allowed()
    finally:
        await worker.aclose()

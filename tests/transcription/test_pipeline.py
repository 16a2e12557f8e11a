"""A hearing's live transcription with real tiny.en weights, fed as the audio tap feeds it."""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import itertools
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.machine import MachineLoad
from config.threads import RECOGNITION, cpu_seconds_by_kind, thread_cpu_seconds
from tests.speech import SPEECH
from tests.transcription.conftest import (
    chunks,
    in_order,
    load_wav,
    references,
    share_in_order,
    silence,
    word_errors,
    words,
)
from transcription.errors import InvalidAudio, UnknownSpeaker
from transcription.model import load_model
from transcription.options import TranscriptionOptions
from transcription.pipeline import (
    AUTO_LANGUAGE,
    MIN_PARTIAL_SHARE,
    FinalLine,
    HearingTranscriber,
    InferenceWorker,
    Partial,
    SettledSpan,
    partials_room,
)
from transcription.recognizer import Recognition, Recognizer
from transcription.utterances import Utterance, UtteranceDetector

RATE = 16_000
ZH_SPEECH = "zh_aishell_BAC009S0764W0121.wav"


class Record:
    """What the callbacks received, as a hearing's record and captions would."""

    def __init__(self) -> None:
        self.lines: list[FinalLine] = []
        self.partials: list[Partial] = []
        self.partial_times: list[float] = []

    async def on_final_line(self, line: FinalLine) -> None:
        self.lines.append(line)

    async def on_partial(self, partial: Partial) -> None:
        self.partials.append(partial)
        self.partial_times.append(time.monotonic())

    def text(self, participant_id: str) -> str:
        return " ".join(s.text for s in self.lines if s.participant_id == participant_id)


def transcriber(
    worker: InferenceWorker, record: Record, clock: Callable[[], float] = time.monotonic,
    **options: Any,
) -> HearingTranscriber:
    return HearingTranscriber(
        worker,
        on_final_line=record.on_final_line,
        on_partial=record.on_partial,
        language="en",
        case_number="2026-17",
        options=TranscriptionOptions(**options),
        clock=clock,
    )


def stopped_clock() -> float:
    """A clock that never moves: a busy machine's delay between two feeds is not a stall."""
    return 0.0


async def feed(
    hearing: HearingTranscriber, participant_id: str, audio: np.ndarray, at: float
) -> None:
    for chunk, chunk_at in chunks(audio, at):
        hearing.feed(participant_id, chunk, chunk_at)
    await asyncio.sleep(0)


async def test_speech_becomes_attributed_lines_on_the_hearing_timeline(
    tiny_worker: InferenceWorker,
) -> None:
    record = Record()
    audio = load_wav("en_opening.wav")
    async with transcriber(tiny_worker, record) as hearing:
        hearing.add_speaker("p-judge", "Ann Lee", "judge")
        await feed(hearing, "p-judge", np.concatenate([audio, silence(1.0)]), at=100.0)
        await hearing.drain()
        assert hearing.lag_seconds == 0.0
    assert record.lines
    reference = references()["en_opening.wav"]
    assert in_order(reference, record.text("p-judge")) >= 0.7, record.text("p-judge")
    for line in record.lines:
        assert (line.participant_id, line.name, line.role) == (
            "p-judge",
            "Ann Lee",
            "judge",
        )
        assert line.language == "en"
        assert 100.0 <= line.start < line.end <= 100.0 + audio.size / RATE + 0.1
        assert line.words
        for _, start, end, _ in line.words:
            assert line.start - 0.01 <= start <= end <= line.end + 0.01
    assert [s.start for s in record.lines] == sorted(s.start for s in record.lines)


@pytest.mark.parametrize("name", ["silence_5s.wav", "noise_5s.wav"])
async def test_silence_and_noise_leave_the_record_empty(
    tiny_worker: InferenceWorker, name: str
) -> None:
    record = Record()
    async with transcriber(tiny_worker, record) as hearing:
        hearing.add_speaker("p1", "Bo Chen", "defendant")
        await feed(hearing, "p1", load_wav(name), at=0.0)
        await hearing.drain()
    assert record.lines == [] and record.partials == []


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
    assert {s.name for s in record.lines if s.participant_id == "prosecutor"} == {"Cai Wen"}


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
    # The utterances the detector finds, independently of the pipeline.
    expected = 0
    for audio in talk.values():
        detector = UtteranceDetector(TranscriptionOptions(max_queued_utterances=2))
        for chunk, at in chunks(audio, 0.0):
            expected += sum(isinstance(e, Utterance) for e in detector.push(chunk, at))
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
    # Never the recognizer's delay: a spilled utterance's write is the most feed waits for,
    # and a busy CI disk took 0.1 s for one.
    assert max(feed_times) < SlowRecognizer.delay_s * 0.2, f"feed took {max(feed_times):.3f} s"
    # Decoding on the loop would stall it for the recognizer's delay at every utterance (at
    # least `expected` times); a thread costs the loop only scheduling noise, which on a
    # machine busy with other work may now and then be as long (two such allowed).
    stalls = [d for d in delays if d >= SlowRecognizer.delay_s * 0.9]
    assert len(stalls) <= 2 < expected, f"the loop stalled for {stalls} s"
    refs = references()
    assert in_order(refs["en_opening.wav"] * 2, record.text("judge")) >= 0.7
    assert in_order(refs["en_witness.wav"] * 2, record.text("witness")) >= 0.7


async def test_partials_arrive_while_someone_speaks(tiny_worker: InferenceWorker) -> None:
    tiny_worker.machine = SteadyMachine(0.3)  # a busy test machine would hold captions back
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
    first = record.lines[0]
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
    assert all(s.end <= 2.5 + 0.05 for s in record.lines)


def pauses(audio: np.ndarray, quiet_ms: int) -> list[tuple[int, bool]]:
    """Where a speaker has been quiet for `quiet_ms` in mid-utterance, as (samples fed then,
    in 20 ms chunks; whether the utterance then ended before the next voiced frame)."""
    detector = UtteranceDetector(TranscriptionOptions())
    found: list[tuple[int, bool]] = []
    quiet_before = 0.0
    for chunk, at in chunks(audio, 0.0):
        events = detector.push(chunk, at)
        fed = round(at * RATE) + chunk.size
        if any(isinstance(e, Utterance) for e in events) and found and found[-1][1] is None:
            found[-1] = (found[-1][0], True)
        quiet = detector.quiet_s
        if detector.speaking and quiet < quiet_before and found and found[-1][1] is None:
            found[-1] = (found[-1][0], False)  # voiced again: the speaker went on
        if detector.speaking and quiet * 1000 >= quiet_ms > quiet_before * 1000:
            found.append((fed, None))  # type: ignore[arg-type]
        quiet_before = quiet
    return found


async def early_decoded(hearing: HearingTranscriber, count: int) -> None:
    async with asyncio.timeout(30):
        while hearing.stats().early_decodes < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_final_is_decoded_while_the_speaker_falls_quiet(
    tiny_worker: InferenceWorker,
) -> None:
    """The decode starts once the speaker has been quiet for `early_final_ms`, not after the
    hangover: when the utterance ends without another voiced frame, it is the final's."""
    audio = np.concatenate([load_wav("en_opening.wav"), silence(1.0)])
    ends = [fed for fed, ended in pauses(audio, 150) if ended]
    assert ends, "no utterance ends in the recording"
    record = Record()
    async with transcriber(tiny_worker, record, partials=False, clock=stopped_clock) as hearing:
        hearing.add_speaker("judge", "Ann Lee", "judge")
        fed = 0
        for end in ends:
            await feed(hearing, "judge", audio[fed:end], at=fed / RATE)
            await early_decoded(hearing, hearing.stats().early_decodes + 1)
            fed = end
        await feed(hearing, "judge", audio[fed:], at=fed / RATE)
        await hearing.drain()
        stats = hearing.stats()
    assert stats.early_finals == stats.early_decodes == len(ends) == stats.finals
    assert in_order(references()["en_opening.wav"], record.text("judge")) >= 0.7
    assert all(line.end <= ends[-1] / RATE + 0.05 for line in record.lines)


async def test_an_early_decode_goes_unused_when_the_speaker_goes_on(
    tiny_worker: InferenceWorker,
) -> None:
    """A pause the speaker talks on after: the final holds all of the utterance."""
    first, second = load_wav("en_opening.wav"), load_wav("en_witness.wav")
    # The first sentence's end, then the second sentence as if after a short breath.
    head = first[: [fed for fed, ended in pauses(first, 150)][-1]]
    audio = np.concatenate([head, second, silence(1.0)])
    at_pause = [fed for fed, ended in pauses(audio, 150) if fed <= head.size + 320]
    assert at_pause and not [e for f, e in pauses(audio, 150) if f == at_pause[-1] and e]
    record = Record()
    # A stall as short as this would end the utterance at the pause on any wall clock; the
    # stopped one shows that only the audio decides (a busy machine once took 1 s to feed on).
    async with transcriber(tiny_worker, record, partials=False, stall_s=0.05,
                           clock=stopped_clock) as hearing:
        hearing.add_speaker("judge", "Ann Lee", "judge")
        await feed(hearing, "judge", audio[: at_pause[-1]], at=0.0)
        await early_decoded(hearing, 1)
        await feed(hearing, "judge", audio[at_pause[-1]:], at=at_pause[-1] / RATE)
        await hearing.drain()
        stats = hearing.stats()
    assert stats.early_decodes == 1 and stats.early_finals == 0
    said = record.text("judge").lower()
    assert "prosecution" in said and "session" in said, said


class FirstDecodeFails(Recognizer):
    """The real recognizer, whose first decode fails; it counts every decode."""

    calls = 0

    def transcribe(self, audio: np.ndarray, *args: Any, **kwargs: Any) -> Recognition:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("the recognizer broke once")
        return super().transcribe(audio, *args, **kwargs)


async def test_a_failed_early_decode_costs_time_only_and_is_not_tried_again_at_that_pause(
    tiny_recognizer: Recognizer,
) -> None:
    audio = np.concatenate([load_wav("en_opening.wav"), silence(1.0)])
    end = next(fed for fed, ended in pauses(audio, 150) if ended)
    recognizer = FirstDecodeFails(tiny_recognizer.model, tiny_recognizer.options)
    worker = InferenceWorker(recognizer)
    record = Record()
    try:
        async with transcriber(worker, record, partials=False) as hearing:
            hearing.add_speaker("judge", "Ann Lee", "judge")
            await feed(hearing, "judge", audio[:end], at=0.0)
            async with asyncio.timeout(30):
                while hearing.stats().failures < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            await feed(hearing, "judge", audio[end:], at=end / RATE)
            await hearing.drain()
            stats = hearing.stats()
    finally:
        await worker.aclose()
    # The early decode that failed, then the final's own: none again at the same pause.
    assert stats.early_decodes == 0 and stats.early_finals == 0
    assert recognizer.calls == 1 + stats.finals
    assert "court" in record.text("judge").lower()


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
    delivered: list[FinalLine] = []
    calls = 0

    async def flaky(line: FinalLine) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database briefly unavailable")
        delivered.append(line)

    hearing = HearingTranscriber(tiny_worker, on_final_line=flaky, language="en")
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
    worker.machine = SteadyMachine(0.3)  # whatever else this machine runs meanwhile
    try:
        assert worker.partials_allowed()
        await worker.run(time.sleep, 0.2)
        assert worker.partials_allowed(), "a final does not hold partials back"
        began = time.monotonic()
        await worker.run(time.sleep, 0.2, kind="partial")
        took = time.monotonic() - began  # 0.2 s, more on a busy machine
        # Share 0.5: after 0.2 s of partial decoding, 0.2 s for everything else.
        share = tiny_recognizer.options.max_partial_share
        assert not worker.partials_allowed()
        assert 0.1 < worker.partials_wait() <= took * (1 - share) / share
        await asyncio.sleep(worker.partials_wait() + 0.01)
        assert worker.partials_allowed()
    finally:
        await worker.aclose()


class SteadyMachine(MachineLoad):
    def __init__(self, busy: float) -> None:
        super().__init__()
        self.busy = busy

    def read(self, now: float | None = None) -> float:
        return self.busy


async def test_partials_give_way_when_the_machine_is_nearly_full(
    tiny_recognizer: Recognizer,
) -> None:
    """Four hearings on two cores lost video frames while captions took a sixth of the
    machine: with the machine's CPU nearly full, a partial waits far longer for the next."""
    worker = InferenceWorker(tiny_recognizer)
    share = tiny_recognizer.options.max_partial_share
    try:
        waits = {}
        for busy in (0.5, 0.8, 0.95):
            worker.machine = SteadyMachine(busy)
            began = time.monotonic()
            await worker.run(time.sleep, 0.1, kind="partial")
            took = time.monotonic() - began
            waits[busy] = worker.partials_wait() / took
        assert waits[0.5] == pytest.approx((1 - share) / share, rel=0.2)
        half = share * partials_room(0.8)
        assert partials_room(0.8) == pytest.approx(0.5)
        assert waits[0.8] == pytest.approx((1 - half) / half, rel=0.2)
        assert waits[0.95] == pytest.approx((1 - MIN_PARTIAL_SHARE) / MIN_PARTIAL_SHARE, rel=0.2)
    finally:
        await worker.aclose()


def _burn(seconds: float) -> str:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
async def test_the_recognizer_is_built_in_an_inference_thread_and_its_cpu_split_by_kind(
    tiny_recognizer: Recognizer,
) -> None:
    built_in: list[str] = []

    def build() -> Recognizer:
        built_in.append(_burn(0.2))
        return tiny_recognizer

    worker = await InferenceWorker.load(build, decodes=2)
    try:
        # The model loads in a named thread: CTranslate2's compute threads, which it starts
        # then, inherit the name and count as recognition.
        assert built_in == ["whisper"]
        loaded = thread_cpu_seconds("recognition")
        assert worker.cpu.loading_s == pytest.approx(loaded, abs=0.02) and loaded >= 0.15
        # Two decodes at once: each in its own inference thread.
        names = await asyncio.gather(worker.run(_burn, 0.4), worker.run(_burn, 0.2, kind="partial"))
        assert names == ["whisper", "whisper"]
        finals, partials, settling, loading = worker.cpu.split(
            thread_cpu_seconds("recognition"))
        # 0.6 s of decoding, shared by busy time (0.4 : 0.2 on an idle machine); the
        # thread clocks tick every 10 ms, and other recognizers of this process may still
        # spin for a moment after their last decode.
        assert 0.55 <= finals + partials <= 0.75
        assert finals > partials > 0.1 and settling == 0.0
        assert loading == pytest.approx(loaded, abs=0.02)
    finally:
        await worker.aclose()


async def test_utterances_spill_to_a_hearing_directory_made_on_first_use(
    tiny_recognizer: Recognizer, tmp_path: Any
) -> None:
    worker = InferenceWorker(SlowRecognizer(tiny_recognizer.model, tiny_recognizer.options))
    record = Record()
    spill = tmp_path / "spill" / "hearing-1"  # as DATA_DIR/spill/<hearing>: not there yet
    talk = np.concatenate([load_wav("en_opening.wav"), silence(0.8),
                           load_wav("en_witness.wav"), silence(0.8)] * 2)
    spilled = 0
    try:
        hearing = HearingTranscriber(
            worker, on_final_line=record.on_final_line, language="en", spill_dir=spill,
            options=TranscriptionOptions(max_queued_utterances=1, partials=False))
        async with hearing:
            hearing.add_speaker("judge", "Ann Lee", "judge")
            for chunk, at in chunks(talk, 0.0):  # faster than real time: the queue fills
                hearing.feed("judge", chunk, at)
                spilled = max(spilled, hearing.stats().spilled_utterances)
            assert spill.is_dir()
            await hearing.drain()
            stats = hearing.stats()
    finally:
        await worker.aclose()
    assert spilled >= 2
    assert stats.failures == 0 and stats.queued_utterances == 0
    refs = references()
    assert in_order((refs["en_opening.wav"] + " " + refs["en_witness.wav"]) * 2,
                    record.text("judge")) >= 0.7


class BrokenRecognizer(Recognizer):
    """Fails on every final (partials are only drafts)."""

    def transcribe(self, audio: np.ndarray, *args: Any, **kwargs: Any) -> Recognition:
        if not kwargs.get("draft"):
            raise RuntimeError("the recognizer broke")
        return super().transcribe(audio, *args, **kwargs)


async def test_a_failed_decode_stops_the_transcriber_and_says_what_is_missing(
    tiny_recognizer: Recognizer,
) -> None:
    worker = InferenceWorker(BrokenRecognizer(tiny_recognizer.model, tiny_recognizer.options))
    failed = asyncio.Event()
    errors: list[BaseException] = []

    def on_failure(error: BaseException) -> None:
        errors.append(error)
        failed.set()

    record = Record()
    hearing = HearingTranscriber(worker, on_final_line=record.on_final_line,
                                 on_failure=on_failure, language="en")
    try:
        await hearing.start()
        hearing.add_speaker("p", "Ann Lee", "judge")
        assert hearing.untranscribed_from() == {}
        await feed(hearing, "p", np.concatenate([silence(1.0), load_wav("en_opening.wav"),
                                                 silence(1.0)]), 20.0)
        async with asyncio.timeout(30):
            await failed.wait()
        # The final was not dropped silently: the owner learns where the record lacks audio.
        [error] = errors
        assert isinstance(error, RuntimeError) and hearing.stats().failures == 1
        missing_from = hearing.untranscribed_from().get("p")
        assert missing_from is not None and 20.5 <= missing_from <= 21.2, missing_from
        assert not record.lines
    finally:
        await hearing.abort()
        await worker.aclose()


STATEMENT = (
    "Members of the court, my name is Daniel Harper and I am represented by my lawyer. "
    "On the evening of the fourteenth of March I was driving home from work along the river "
    "road. The weather was cold and the street lights near the bridge were not working. A blue "
    "truck came around the corner very fast and crossed into my lane. I turned the wheel to the "
    "right and stopped next to the fence. The driver of the truck did not stop. He drove on "
    "toward the market and turned left at the gas station. A woman walking her dog saw "
    "everything and wrote down the number of the truck. She called the police and waited with "
    "me until they arrived. The officers took photographs of the road and measured the marks "
    "left by the tires. Two days later they found the truck in a garage outside the city. The "
    "front of the truck was damaged and the paint matched the marks on my car. I have brought "
    "the repair bill, the police report and a letter from my doctor. I ask the court to "
    "consider these documents together with the statement of the witness."
)


@pytest.fixture(scope="module")
def statement() -> np.ndarray:
    """A witness's statement of 69 s, 196 words in 14 sentences (espeak-ng, like the files
    in tests/speech), with the pauses espeak makes between sentences."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "140", "--stdout", STATEMENT],
        capture_output=True,
        check=True,
    ).stdout
    raw = ["-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed", "-"]
    # -R: the same dither every run, so that every run hears the same samples.
    pcm = subprocess.run(
        ["sox", "-R", "-t", "wav", "-", *raw], input=wav, capture_output=True, check=True
    )
    return np.frombuffer(pcm.stdout, dtype=np.int16)


@pytest.fixture(scope="module")
def base_recognizer(model_dir: Path) -> Recognizer:
    """The multilingual model a court runs (settings' default), greedy only: a sampled
    fallback would make live and offline recognition differ from run to run."""
    return Recognizer(load_model("base", model_dir), TranscriptionOptions(temperatures=(0.0,)))


def without_pauses(samples: np.ndarray, longest_s: float = 0.08) -> np.ndarray:
    """The speech with every quiet stretch shortened to `longest_s`: continuous speech, with no
    pause long enough for the voice-activity detector to end an utterance at."""
    frames = samples[: samples.size // 160 * 160].reshape(-1, 160)
    loud = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) >= 100
    keep, quiet = [], 0
    for is_loud in loud:
        quiet = 0 if is_loud else quiet + 1
        keep.append(quiet <= round(longest_s * 100))
    return frames[np.array(keep)].ravel()


def offline(recognizer: Recognizer, audio: np.ndarray, language: str = "en") -> str:
    """faster-whisper on the whole recording at once, as after the hearing, with the options
    of the live decodes."""
    segments, _ = recognizer.model.transcribe(
        audio.astype(np.float32) / 32768,
        **recognizer.decode_options(language, prompt=None, word_timestamps=True),
    )
    return " ".join(s.text for s in segments)


def heard(reference: str, hypothesis: str) -> set[int]:
    """Which words of `reference` (by position) the hypothesis has, aligned in order."""
    ref, hyp = words(reference), words(hypothesis)
    table = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    for i in range(len(ref) - 1, -1, -1):
        for j in range(len(hyp) - 1, -1, -1):
            table[i][j] = (
                table[i + 1][j + 1] + 1
                if ref[i] == hyp[j]
                else max(table[i + 1][j], table[i][j + 1])
            )
    found, i, j = set(), 0, 0
    while i < len(ref) and j < len(hyp):
        if ref[i] == hyp[j]:
            found.add(i)
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return found


async def live_record(
    recognizer: Recognizer, audio: np.ndarray, options: TranscriptionOptions
) -> Record:
    """The live record of one speaker's audio, fed as the audio tap feeds it."""
    worker = InferenceWorker(recognizer)
    record = Record()
    try:
        # No case number and no name: no prompt, as offline (a prompt would steer each side).
        hearing = HearingTranscriber(
            worker, on_final_line=record.on_final_line, language="en", options=options
        )
        async with hearing:
            hearing.add_speaker("p", "", "witness")
            await feed(hearing, "p", np.concatenate([audio, silence(1.0)]), at=0.0)
            await hearing.drain()
    finally:
        await worker.aclose()
    return record


@pytest.mark.parametrize("speech", ["turns", "continuous"])
async def test_the_live_record_has_the_words_offline_recognition_finds(
    base_recognizer: Recognizer, statement: np.ndarray, speech: str
) -> None:
    """The live record of a 69 s statement, in sentences with the pauses between them, and
    without any pause (63 s, cut every 15 s), against faster-whisper on the whole recording
    with the same model and options."""
    # A moment of silence first, as a participant's track has before they speak.
    spoken = without_pauses(statement) if speech == "continuous" else statement
    audio = np.concatenate([silence(1.0), spoken])
    assert audio.size / RATE > 60
    options = dataclasses.replace(base_recognizer.options, partials=False)
    record = await live_record(base_recognizer, audio, options)
    live, whole = record.text("p"), offline(base_recognizer, audio)
    count = len(words(STATEMENT))
    # Of the words said, those offline recognition heard and the live record did not: a word
    # lost at a cut would be one. (Ambiguous words, which the audio around them tips one way
    # or the other, utterances here and 30 s windows offline, are the rest.)
    lost = heard(STATEMENT, whole) - heard(STATEMENT, live)
    assert len(lost) <= count * 0.04, (sorted(lost), live, whole)
    # Against what was said, the live record is as right as offline recognition.
    assert word_errors(STATEMENT, live) <= word_errors(STATEMENT, whole) + 0.02, (live, whole)
    assert "represented by my lawyer" in " ".join(words(live))
    # Every sentence's last word that offline recognition heard is in the live record: an
    # utterance keeps its trailing word (where a pause ended it, or a cut fell).
    ends, position = set(), -1
    for sentence in STATEMENT.split(". "):
        position += len(words(sentence))
        ends.add(position)
    assert len(ends) == 14
    assert not (ends & lost), [words(STATEMENT)[i] for i in sorted(ends & lost)]
    starts = [line.start for line in record.lines]
    assert starts == sorted(starts) and record.lines[-1].end > 60
    for line in record.lines:
        assert line.text and line.end - line.start <= 30.0
        assert all(line.start <= s <= e <= line.end for _, s, e, _ in line.words)


def characters_in_order(reference: str, hypothesis: str) -> float:
    """Share of the reference's characters (letters and digits) found in the hypothesis in
    the same order: Mandarin is measured by characters."""
    return share_in_order([c for c in reference if c.isalnum()],
                          [c for c in hypothesis if c.isalnum()])


async def test_each_participant_is_recognized_in_their_own_language(
    base_recognizer: Recognizer,
) -> None:
    """An English hearing with a defendant who speaks Mandarin and an interpreter who speaks
    both: each line is recognized, and marked, in the language it was said in."""
    english = np.concatenate([silence(0.5), load_wav("en_witness.wav"), silence(1.0)])
    mandarin = np.concatenate([silence(0.5), load_wav(ZH_SPEECH), silence(1.0)])
    said = (SPEECH / "zh_transcripts.tsv").read_text(encoding="utf-8").splitlines()[0]
    said = said.split("\t")[1]
    worker = InferenceWorker(base_recognizer)
    record = Record()
    try:
        hearing = HearingTranscriber(
            worker,
            on_final_line=record.on_final_line,
            language="en",
            case_number="2026-17",
            options=dataclasses.replace(base_recognizer.options, partials=False),
        )
        async with hearing:
            hearing.add_speaker("judge", "Ann Lee", "judge")
            hearing.add_speaker("defendant", "Wang Wei", "defendant", "zh")
            hearing.add_speaker("interpreter", "Li Na", "interpreter", AUTO_LANGUAGE)
            await feed(hearing, "judge", english, at=0.0)
            await feed(hearing, "defendant", mandarin, at=10.0)
            await feed(hearing, "interpreter", np.concatenate([mandarin, english]), at=20.0)
            await hearing.drain()
    finally:
        await worker.aclose()

    def lines(participant_id: str) -> list[FinalLine]:
        return [line for line in record.lines if line.participant_id == participant_id]

    assert {line.language for line in lines("judge")} == {"en"}
    assert in_order(references()["en_witness.wav"], record.text("judge")) >= 0.8
    assert {line.language for line in lines("defendant")} == {"zh"}
    assert characters_in_order(said, record.text("defendant")) >= 0.8, record.text("defendant")
    # The interpreter's Mandarin, then their English, each detected.
    interpreted = lines("interpreter")
    assert (interpreted[0].language, interpreted[-1].language) == ("zh", "en")
    chinese = "".join(line.text for line in interpreted if line.language == "zh")
    english_text = " ".join(line.text for line in interpreted if line.language == "en")
    assert characters_in_order(said, chinese) >= 0.8, chinese
    assert in_order(references()["en_witness.wav"], english_text) >= 0.8, english_text


def _spin(seconds: float) -> float:
    """Work the CPU for `seconds` of this thread's CPU time."""
    began = time.thread_time()
    while time.thread_time() - began < seconds:
        pass
    return time.thread_time() - began


async def test_closing_the_inference_threads_keeps_their_cpu_in_the_totals(
    tiny_recognizer: Recognizer,
) -> None:
    """/metrics' recognition CPU only grows: threads that end leave /proc, so each retires its
    time first (a process that closed and reopened its recognizer lost it before)."""
    worker = InferenceWorker(tiny_recognizer, decodes=2)
    spent = await asyncio.gather(worker.run(_spin, 0.3), worker.run(_spin, 0.3))
    before = cpu_seconds_by_kind()[RECOGNITION]
    assert before >= sum(spent) * 0.9, (before, spent)
    threads = set(worker._executor._threads)
    await worker.aclose()
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()
    assert cpu_seconds_by_kind()[RECOGNITION] >= before - 0.05


def differing(reference: str, hypothesis: str) -> list[tuple[str, str]]:
    """The words that differ, for an assertion's message."""
    ref, hyp = words(reference), words(hypothesis)
    return [(" ".join(ref[a:b]), " ".join(hyp[c:d])) for op, a, b, c, d in
            difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_opcodes() if op != "equal"]


class SettledRecord(Record):
    """The record as a court keeps it: each settled span's lines in place of the live lines
    that start in it."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[SettledSpan] = []

    async def on_settled(self, span: SettledSpan) -> None:
        self.spans.append(span)

    def settled_text(self, participant_id: str) -> str:
        spans = [s for s in self.spans if s.participant_id == participant_id]
        kept = [line for line in self.lines if line.participant_id == participant_id
                and not any(s.start <= line.start < s.end for s in spans)]
        lines = kept + [line for s in spans for line in s.lines]
        return " ".join(line.text for line in sorted(lines, key=lambda line: line.start))


# Two minutes of base with a beam on both cores each: beside the browser tests it starved
# Chromium in CI, so `make test` runs it alone.
@pytest.mark.alone
@pytest.mark.parametrize("speech", ["turns", "continuous"])
async def test_the_settled_record_is_offline_recognition_word_for_word(
    base_recognizer: Recognizer, statement: np.ndarray, speech: str
) -> None:
    """Settling decodes the speaker's audio as offline faster-whisper decodes the recording:
    its settled spans, in place of the live lines, read as offline reads the whole."""
    spoken = without_pauses(statement) if speech == "continuous" else statement
    audio = np.concatenate([silence(1.0), spoken])
    options = dataclasses.replace(base_recognizer.options, partials=False,
                                  settle_temperatures=(0.0,))
    # Two threads, as a server on two cores: one stays free for the live lines.
    worker = InferenceWorker(base_recognizer, decodes=2)
    record = SettledRecord()
    try:
        hearing = HearingTranscriber(worker, on_final_line=record.on_final_line,
                                     on_settled=record.on_settled, language="en",
                                     options=options)
        async with hearing:
            hearing.add_speaker("p", "", "witness")
            # A second of audio every quarter of a second: the speaker talks on while the
            # windows behind are settled.
            fed = np.concatenate([audio, silence(1.0)])
            for start in range(0, fed.size, RATE):
                await feed(hearing, "p", fed[start : start + RATE], at=7.0 + start / RATE)
                await asyncio.sleep(0.25)
            await hearing.drain()
            stats = hearing.stats()
    finally:
        await worker.aclose()
    segments, _ = base_recognizer.model.transcribe(
        audio.astype(np.float32) / 32768, language="en", word_timestamps=True,
        condition_on_previous_text=True, temperature=[0.0])
    whole = " ".join(s.text for s in segments)
    settled = record.settled_text("p")
    # The spans follow each other from the start of the track to its end.
    spans = record.spans
    assert spans[0].start == 7.0 and spans[-1].end >= 7.0 + audio.size / RATE
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert stats.settled_s >= audio.size / RATE and stats.settle_behind_s == 0.0
    # The windows are offline's; what can still differ is Whisper's floor under quiet frames,
    # which follows the loudest frame heard so far where offline takes the whole recording's.
    # On this speech's digital silence that moved two words of 196 (1 in 100).
    assert word_errors(whole, settled) <= 0.011, differing(whole, settled)
    assert settled != record.text("p") or word_errors(whole, record.text("p")) <= 0.01


async def test_with_one_inference_thread_a_speaker_is_settled_once_their_audio_stops(
    tiny_recognizer: Recognizer,
) -> None:
    """A settling decode takes seconds: with one thread it would hold up the live lines, so
    it waits until the speaker's audio stops (here the close's drain)."""
    record = SettledRecord()
    worker = InferenceWorker(tiny_recognizer)
    audio = np.concatenate([load_wav("en_opening.wav"), load_wav("en_witness.wav")] * 3)
    try:
        hearing = HearingTranscriber(
            worker, on_final_line=record.on_final_line, on_settled=record.on_settled,
            language="en", options=dataclasses.replace(tiny_recognizer.options,
                                                       partials=False, settle_stall_s=600.0))
        async with hearing:
            hearing.add_speaker("p", "Ann Lee", "judge")
            await feed(hearing, "p", np.concatenate([audio, silence(1.0)]), at=0.0)
            assert audio.size / RATE > 31  # more than a window is heard
            async with asyncio.timeout(120):
                while hearing.stats().lag_seconds or hearing.stats().queued_utterances:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the settling task looks every 0.25 s
            assert record.spans == []
            await hearing.drain()
        assert record.spans and record.spans[-1].end >= audio.size / RATE
    finally:
        await worker.aclose()


async def test_a_stall_of_a_second_or_two_does_not_settle_the_speaker_in_pieces(
    tiny_recognizer: Recognizer,
) -> None:
    """The speaker's audio stops coming for 2 s after a sentence (a busy machine, a network
    hiccup), then comes on, late but in its place: settling waits for it and decodes both
    sentences in one window, as offline does. (Settled at the stall, the first sentence was
    decoded alone, as if the recording ended there.)"""
    record = SettledRecord()
    worker = InferenceWorker(tiny_recognizer)
    now = [0.0]
    first, second = load_wav("en_opening.wav"), load_wav("en_witness.wav")
    first = np.concatenate([first, silence(0.6)])
    try:
        hearing = HearingTranscriber(
            worker, on_final_line=record.on_final_line, on_settled=record.on_settled,
            language="en", clock=lambda: now[0],
            options=dataclasses.replace(tiny_recognizer.options, partials=False))
        async with hearing:
            hearing.add_speaker("p", "Ann Lee", "judge")
            await feed(hearing, "p", first, at=0.0)
            async with asyncio.timeout(60):
                while (in_order(references()["en_opening.wav"], record.text("p")) < 0.7  # noqa: ASYNC110
                       or not worker.free):
                    await asyncio.sleep(0.05)
            now[0] += 2.0  # nothing comes for 2 s
            await asyncio.sleep(0.6)  # the settling task looks every 0.25 s
            async with asyncio.timeout(60):
                while not worker.free:  # what it started (if it did) has finished  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
            assert record.spans == []
            await feed(hearing, "p", np.concatenate([second, silence(1.0)]),
                       at=first.size / RATE)
            now[0] += 6.0  # past settle_stall_s: the speaker has stopped for now
            async with asyncio.timeout(120):
                while not record.spans:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        # One decode heard both sentences (the silence after them may be a span of its own).
        [span] = [s for s in record.spans if s.lines]
        text = " ".join(line.text for line in span.lines)
        assert span.start == 0.0
        assert in_order(references()["en_opening.wav"], text) >= 0.7, text
        assert in_order(references()["en_witness.wav"], text) >= 0.7, text
    finally:
        await worker.aclose()

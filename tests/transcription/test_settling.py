"""A participant's track as settling keeps it, and its frames as offline computes them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.transcription.conftest import chunks, load_wav, silence
from transcription.model import load_model
from transcription.pipeline import FinalLine, HearingTranscriber, InferenceWorker, SettledSpan
from transcription.recognizer import Recognizer
from transcription.settling import (
    HOP,
    LiveLine,
    NotYetHeard,
    SettleState,
    TrackAudio,
    TrackFeatures,
    apportion,
)
from transcription.stitching import TimedLine

RATE = 16_000


def test_a_track_keeps_audio_by_timeline_position_with_gaps_as_silence() -> None:
    track = TrackAudio()
    track.put(np.full(320, 1000, dtype=np.int16), at=5.0)
    # Stamped a sample late (rounding): contiguous, not a gap.
    track.put(np.full(320, 2000, dtype=np.int16), at=5.0 + 321 / RATE)
    # Then half a second of nothing (a lost stretch of packets): silence.
    track.put(np.full(320, 3000, dtype=np.int16), at=5.0 + (640 + 8000) / RATE)
    assert track.heard == 640 + 8000 + 320
    audio = track.read(0, track.heard) * 32768
    assert (audio[:320] == 1000).all() and (audio[320:640] == 2000).all()
    assert (audio[640:8640] == 0).all() and (audio[8640:] == 3000).all()
    # Audio heard twice (overlapping chunks) is kept once.
    track.put(np.full(640, 4000, dtype=np.int16), at=5.0 + 8640 / RATE)
    assert track.heard == 8640 + 640
    assert (track.read(8640, 8960) * 32768 == 3000).all()
    assert (track.read(8960, 9280) * 32768 == 4000).all()
    assert track.seconds(100) == pytest.approx(6.0)


def test_a_track_forgets_what_is_settled_and_a_long_gap_costs_nothing() -> None:
    track = TrackAudio()
    track.put(np.full(RATE, 7, dtype=np.int16), at=0.0)
    track.forget_before(RATE // 2)
    assert (track.read(0, RATE // 2) == 0).all()  # forgotten reads as silence
    assert (track.read(RATE // 2, RATE) * 32768 == 7).all()
    # An hour later (a recess): nothing is kept in between, settled or not.
    track.put(np.full(320, 9, dtype=np.int16), at=3600.0)
    assert track.heard == 3600 * RATE + 320
    assert sum(piece.data.size for piece in track._pieces) < 2 * RATE
    assert (track.read(3600 * RATE, 3600 * RATE + 320) * 32768 == 9).all()
    assert (track.read(RATE // 2, 3600 * RATE)[RATE // 2 :] == 0).all()
    assert track.kept_from == RATE // 2
    track.forget_before(RATE)
    assert track.kept_from == 3600 * RATE  # what is left begins after the gap


@pytest.fixture(scope="module")
def extractor(model_dir: Path) -> object:
    return load_model("tiny.en", model_dir).feature_extractor.extractor


def test_frames_are_offline_frames_and_audio_not_heard_yet_is_refused(extractor: object) -> None:
    speech = load_wav("en_witness.wav")
    samples = np.concatenate([np.zeros(RATE, dtype=np.int16), speech, speech])
    whole = extractor(samples.astype(np.float32) / 32768)  # type: ignore[operator]
    track = TrackAudio()
    track.put(samples, at=3.0)
    # The loudest frame was heard already (as it is, in a track a window behind).
    state = SettleState(level=float(whole.max()))
    frames = TrackFeatures(extractor, track, state, origin=50, complete=False)
    assert frames.shape[1] > 10**9  # the track goes on
    got = frames[:, 100:400]
    np.testing.assert_allclose(got, whole[:, 150:450], atol=1e-4)
    with pytest.raises(NotYetHeard) as refused:
        frames[:, 300 : samples.size // HOP]
    assert refused.value.frame == 350
    ended = TrackFeatures(extractor, track, state, origin=0, complete=True)
    assert ended.shape[1] - 1 == whole.shape[1] - 1
    end = whole.shape[1] - 1
    np.testing.assert_allclose(ended[:, end - 300 : end], whole[:, end - 300 : end], atol=1e-4)


def settled_line(text: str, words: list[tuple[str, float, float]]) -> TimedLine:
    timed = tuple((w, s, e, 0.9) for w, s, e in words)
    return TimedLine(timed[0][1], timed[-1][2], text, timed, "en")


def test_settled_words_go_to_the_live_line_they_were_said_in() -> None:
    live = [LiveLine("a", 1.0, 3.0), LiveLine("b", 4.0, 6.0), LiveLine("c", 20.0, 22.0)]
    settled = [
        # Within one live line: its text whole.
        settled_line("Good morning, Your Honour.", [("Good", 1.1, 1.4), ("morning,", 1.4, 1.9),
                                                    ("Your", 2.0, 2.3), ("Honour.", 2.3, 3.1)]),
        # Across a pause the live lines were cut at: split by the words' times.
        settled_line("I am here. With my lawyer.", [
            ("I", 2.9, 3.0), ("am", 3.0, 3.1), ("here.", 3.1, 3.4),
            ("With", 4.2, 4.4), ("my", 4.4, 4.6), ("lawyer.", 4.6, 5.2)]),
        # Ten seconds from any live line: speech the live lines missed.
        settled_line("Thank you.", [("Thank", 12.0, 12.3), ("you.", 12.3, 12.6)]),
    ]
    texts, missed = apportion(settled, live, "en")
    assert texts == {"a": "Good morning, Your Honour. I am here.", "b": "With my lawyer."}
    assert "c" not in texts  # nothing settled there: the live text stays
    assert [(m.text, m.start, m.end) for m in missed] == [("Thank you.", 12.0, 12.6)]


def test_split_chinese_is_written_as_the_court_writes_it() -> None:
    live = [LiveLine(1, 0.0, 2.0), LiveLine(2, 2.5, 4.0)]
    # Whisper's words, before the record's Simplified characters and punctuation.
    settled = [settled_line("一共30万元，我不认可。", [
        ("一共", 0.2, 0.6), ("30", 0.6, 0.9), ("万元,", 0.9, 1.5),
        ("我", 2.6, 2.8), ("不認可.", 2.8, 3.5)])]
    texts, missed = apportion(settled, live, "zh")
    assert texts == {1: "一共30万元，", 2: "我不认可。"} and missed == []


async def test_a_recess_is_not_decoded_and_each_part_is_settled(
    tiny_recognizer: Recognizer,
) -> None:
    """Speech, an hour's recess (no audio at all), speech: settling decodes the two parts'
    windows only, and puts each part's words where they were said."""
    spans: list[SettledSpan] = []
    lines: list[FinalLine] = []

    async def on_settled(span: SettledSpan) -> None:
        spans.append(span)

    async def on_final_line(line: FinalLine) -> None:
        lines.append(line)

    worker = InferenceWorker(tiny_recognizer)
    options = dataclasses.replace(tiny_recognizer.options, partials=False)
    try:
        hearing = HearingTranscriber(worker, on_final_line=on_final_line,
                                     on_settled=on_settled, language="en", options=options)
        async with hearing:
            hearing.add_speaker("p", "Ann Lee", "judge")
            for at, name in ((0.0, "en_opening.wav"), (3600.0, "en_witness.wav")):
                audio = np.concatenate([silence(1.0), load_wav(name), silence(1.0)])
                for chunk, chunk_at in chunks(audio, at):
                    hearing.feed("p", chunk, chunk_at)
                await hearing.drain()  # the recess: what was heard is settled
            stats = hearing.stats()
    finally:
        await worker.aclose()
    assert stats.settled_windows <= 2, stats
    assert spans[0].start == 0.0 and spans[-1].end >= 3600.0
    early = " ".join(line.text for s in spans for line in s.lines if line.start < 100)
    late = " ".join(line.text for s in spans for line in s.lines if line.start >= 3600)
    assert "session" in early.lower() and "witness" in late.lower(), (early, late)

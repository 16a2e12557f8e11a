"""Utterances found by webrtcvad in real speech, silence and noise, fed in chunks of any size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.transcription.conftest import chunks, load_wav, silence
from transcription.errors import InvalidAudio
from transcription.options import TranscriptionOptions
from transcription.utterances import (
    SpeechDiscarded,
    SpeechEvent,
    SpeechStarted,
    Utterance,
    UtteranceDetector,
)

RATE = 16_000


def run(samples: np.ndarray, at: float, size: int = 320, **options: object) -> list[SpeechEvent]:
    detector = UtteranceDetector(TranscriptionOptions(**options))  # type: ignore[arg-type]
    events: list[SpeechEvent] = []
    for chunk, chunk_at in chunks(np.concatenate([samples, silence(1.0)]), at, size):
        events += detector.push(chunk, chunk_at)
    return events


def utterances(events: list[SpeechEvent]) -> list[Utterance]:
    return [e for e in events if isinstance(e, Utterance)]


def voiced_span(samples: np.ndarray) -> tuple[float, float]:
    """First and last sample louder than -40 dBFS, in seconds."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 328)
    return loud[0] / RATE, loud[-1] / RATE


def test_speech_becomes_utterances_placed_on_the_timeline() -> None:
    audio = load_wav("en_opening.wav")
    events = run(audio, at=100.0)
    found = utterances(events)
    assert found
    first, last = voiced_span(audio)
    assert 100.0 <= found[0].start <= 100.0 + first
    assert 100.0 + last <= found[-1].end <= 100.0 + last + 0.6
    for utterance in found:
        assert utterance.samples.size == round(utterance.duration * RATE)
        # The audio is the fed audio at that place on the timeline, untouched.
        offset = round((utterance.start - 100.0) * RATE)
        expected = np.concatenate([audio, silence(1.0)])[offset : offset + utterance.samples.size]
        assert np.array_equal(utterance.samples, expected)
    starts = [e.start for e in events if isinstance(e, SpeechStarted)]
    assert starts == [u.start for u in found]


@pytest.mark.parametrize("size", [1, 7, 160, 480, 4_000, 100_000])
def test_chunk_size_does_not_change_the_result(size: int) -> None:
    audio = load_wav("en_witness.wav")
    reference = [(u.start, u.end) for u in utterances(run(audio, at=3.0))]
    assert [(u.start, u.end) for u in utterances(run(audio, at=3.0, size=size))] == reference


@pytest.mark.parametrize("name", ["silence_5s.wav", "noise_5s.wav"])
def test_silence_and_noise_make_no_utterance(name: str) -> None:
    events = run(load_wav(name), at=0.0)
    assert utterances(events) == []
    assert all(isinstance(e, SpeechStarted | SpeechDiscarded) for e in events)


def test_pre_roll_and_hangover_pad_the_speech() -> None:
    audio = np.concatenate([silence(1.0), load_wav("en_witness.wav")])
    first, last = voiced_span(audio)
    found = utterances(run(audio, at=0.0, pre_roll_ms=300, hangover_ms=600))
    assert first - 0.3 - 0.2 <= found[0].start <= first - 0.1
    assert found[-1].end >= last + 0.3


@pytest.mark.parametrize("overlap", [0.6, 0.0])
def test_a_long_utterance_is_cut_at_the_maximum_and_the_next_piece_overlaps_the_cut(
    overlap: float,
) -> None:
    audio = np.concatenate([load_wav("en_opening.wav"), load_wav("en_witness.wav")])
    fed = np.concatenate([audio, silence(1.0)])
    found = utterances(
        run(audio, at=0.0, max_utterance_s=2.0, hangover_ms=900, cut_overlap_s=overlap)
    )
    assert len(found) >= 5
    assert all(u.duration <= 2.0 + 1e-9 for u in found)
    assert any(u.cut for u in found)
    for before, after in itertools.pairwise(found):
        if before.cut:
            # The next piece starts `overlap` before the cut: the words across the cut are
            # heard whole in one of them.
            assert after.overlap == pytest.approx(overlap)
            assert after.start == pytest.approx(before.end - overlap)
        else:
            assert after.overlap == 0.0 and after.start >= before.end
    for utterance in found:
        offset = round(utterance.start * RATE)
        assert np.array_equal(utterance.samples, fed[offset : offset + utterance.samples.size])


def test_an_utterance_says_how_long_it_ends_quiet_and_the_growing_one_where_it_stands() -> None:
    """What the transcriber needs to take a decode begun at a pause as the final's: where
    the utterance in progress stands, and how much of an ended one is quiet at its end."""
    audio = np.concatenate([load_wav("en_opening.wav"), silence(1.0)])
    detector = UtteranceDetector(TranscriptionOptions())
    ended: list[Utterance] = []
    seen_growing = 0
    for chunk, at in chunks(audio, 5.0):
        ended += utterances(detector.push(chunk, at))
        growing = detector.growing()
        if growing is None:
            assert detector.growing_start is None and detector.growing_size == 0
            continue
        seen_growing += 1
        assert detector.growing_start == growing.start
        assert detector.growing_size == growing.samples.size
        assert growing.quiet == detector.quiet_s and growing.overlap == 0.0
    assert ended and seen_growing
    hangover = TranscriptionOptions().hangover_ms / 1000
    for utterance in ended:
        # It ends when 9 of the hangover's 10 frames are quiet, the last ones among them.
        assert 0.0 < utterance.quiet <= hangover + 1e-9
        tail = utterance.samples[-round(utterance.quiet * RATE):]
        assert np.abs(tail.astype(np.int32)).max() < np.abs(utterance.samples).max()


def test_an_overlap_is_at_most_half_the_maximum_and_is_never_discarded() -> None:
    # Speech, cut at 1 s, then a click too short to count as speech on its own.
    speech = load_wav("en_opening.wav")[: RATE * 1]
    detector = UtteranceDetector(
        TranscriptionOptions(max_utterance_s=1.0, cut_overlap_s=5.0, cut_search_ms=0)
    )
    events: list[SpeechEvent] = []
    for chunk, at in chunks(speech, 0.0):
        events += detector.push(chunk, at)
    events += detector.flush()
    found = utterances(events)
    assert found[0].cut and found[1].overlap == pytest.approx(0.48)
    assert not [e for e in events if isinstance(e, SpeechDiscarded)]


def test_a_gap_between_chunks_is_silence_on_the_timeline() -> None:
    speech = load_wav("en_witness.wav")
    detector = UtteranceDetector()
    events: list[SpeechEvent] = []
    for chunk, at in chunks(speech, 10.0):
        events += detector.push(chunk, at)
    # Nothing for 50 s (the participant's network dropped out), then speech again.
    for chunk, at in chunks(np.concatenate([speech, silence(1.0)]), 60.0 + speech.size / RATE):
        events += detector.push(chunk, at)
    found = utterances(events)
    before = [u for u in found if u.start < 30]
    after = [u for u in found if u.start >= 30]
    assert before and after
    assert all(u.end <= 10.0 + speech.size / RATE + 0.5 for u in before)
    assert after[0].start >= 60.0 + speech.size / RATE
    # A short gap (a lost packet) keeps the timeline exact: zeros stand in for it.
    short = UtteranceDetector()
    short.push(speech[:4800], 0.0)
    short.push(speech[4800:], 0.3 + 0.04)
    assert short.position == pytest.approx(0.34 + (speech.size - 4800) / RATE)


def test_flush_ends_an_utterance_in_progress() -> None:
    detector = UtteranceDetector()
    speech = load_wav("en_opening.wav")[: RATE * 1]
    for chunk, at in chunks(speech, 5.0):
        detector.push(chunk, at)
    assert detector.speaking
    growing = detector.growing()
    assert growing is not None and growing.start >= 5.0
    events = detector.flush()
    assert len(events) == 1 and isinstance(events[0], Utterance)
    assert events[0].start == growing.start
    assert events[0].end == pytest.approx(6.0)
    assert not detector.speaking and detector.growing() is None
    assert detector.flush() == []


def test_bad_audio_is_refused() -> None:
    detector = UtteranceDetector()
    with pytest.raises(InvalidAudio, match="int16"):
        detector.push(np.zeros(320, dtype=np.float32), 0.0)
    with pytest.raises(InvalidAudio, match="1-D"):
        detector.push(np.zeros((2, 320), dtype=np.int16), 0.0)
    with pytest.raises(InvalidAudio, match="finite"):
        detector.push(np.zeros(320, dtype=np.int16), float("nan"))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="frame_ms"):
        TranscriptionOptions(frame_ms=25)
    with pytest.raises(ValueError, match="max_utterance_s"):
        TranscriptionOptions(max_utterance_s=45)
    with pytest.raises(ValueError, match="early_final_ms"):
        TranscriptionOptions(early_final_ms=300, hangover_ms=300)

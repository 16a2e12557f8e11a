"""A participant's track as settling keeps it, and its frames as offline computes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.transcription.conftest import load_wav
from transcription.model import load_model
from transcription.settling import HOP, NotYetHeard, SettleState, TrackAudio, TrackFeatures

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


def test_a_track_forgets_what_is_settled_and_a_gap_after_it_costs_nothing() -> None:
    track = TrackAudio()
    track.put(np.full(RATE, 7, dtype=np.int16), at=0.0)
    track.forget_before(RATE // 2)
    assert (track.read(0, RATE // 2) == 0).all()  # forgotten reads as silence
    assert (track.read(RATE // 2, RATE) * 32768 == 7).all()
    track.forget_before(RATE)
    # An hour later: nothing kept in between.
    track.put(np.full(320, 9, dtype=np.int16), at=3600.0)
    assert track.heard == 3600 * RATE + 320
    assert track._buffer.size < 2 * RATE  # the gap is not held in memory
    assert (track.read(3600 * RATE, 3600 * RATE + 320) * 32768 == 9).all()


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

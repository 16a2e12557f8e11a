"""Finding the utterances in one participant's audio with webrtcvad.

Pure and synchronous: `push` takes 16 kHz mono int16 PCM in chunks of any length, each with
its place on the hearing timeline, and returns what happened (speech started, an utterance
ended). Cheap enough to run on the event loop (a few microseconds per 30 ms frame).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

from transcription.errors import InvalidAudio
from transcription.options import SAMPLE_RATE, TranscriptionOptions

# Timestamps closer than this to the expected position are the same position (1 ms).
TOLERANCE_SAMPLES = 16
# Gaps up to this long are filled with silence; longer ones end speech and restart the clock.
MAX_FILL_S = 1.0


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at `start` (timeline seconds, pre-roll included)."""

    start: float


@dataclass(frozen=True, slots=True)
class Utterance:
    """Audio of one utterance and its place on the timeline (`end` = start + duration).

    `cut` is true when it was cut at the maximum length while the speaker went on; the
    utterance after a cut repeats the last `overlap` seconds before the cut at its start.
    `quiet` is how long it ends without a voiced frame.
    """

    start: float
    end: float
    samples: np.ndarray
    cut: bool = False
    overlap: float = 0.0
    quiet: float = 0.0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class SpeechDiscarded:
    """Sound that started like speech but held too little of it to transcribe."""

    start: float
    end: float


SpeechEvent = SpeechStarted | Utterance | SpeechDiscarded


class UtteranceDetector:
    """Finds utterances in one participant's audio (frames voiced by webrtcvad, with
    pre-roll before the onset, a hangover after the last speech and a maximum length)."""

    def __init__(self, options: TranscriptionOptions | None = None) -> None:
        opts = options or TranscriptionOptions()
        self._vad = webrtcvad.Vad(opts.vad_aggressiveness)
        self._frame = SAMPLE_RATE * opts.frame_ms // 1000
        self._onset = max(1, opts.onset_ms // opts.frame_ms)
        self._onset_voiced = math.ceil(opts.onset_ratio * self._onset)
        self._hangover = max(1, opts.hangover_ms // opts.frame_ms)
        self._hangover_unvoiced = math.ceil(opts.hangover_ratio * self._hangover)
        self._min_speech = math.ceil(opts.min_speech_ms / opts.frame_ms)
        self._max_frames = max(1, int(opts.max_utterance_s * 1000) // opts.frame_ms)
        self._cut_search = max(0, opts.cut_search_ms // opts.frame_ms)
        overlap_ms = round(min(opts.cut_overlap_s, opts.max_utterance_s / 2) * 1000)
        self._cut_overlap = overlap_ms // opts.frame_ms
        self._max_fill = max(int(MAX_FILL_S * SAMPLE_RATE), (self._hangover + 2) * self._frame)
        # Timeline position of the first not-yet-framed sample: anchor + counted samples.
        self._anchor_at: float | None = None
        self._anchor_samples = 0
        self._residual = np.empty(0, dtype=np.int16)
        # Idle: recent frames (pre-roll plus the onset window), contiguous in time.
        self._ring: deque[tuple[np.ndarray, bool]] = deque(
            maxlen=opts.pre_roll_ms // opts.frame_ms + self._onset
        )
        # Speaking: the utterance so far.
        self._speaking = False
        self._start = 0.0
        self._overlap = 0  # frames at the start repeating the piece before a cut
        self._frames: list[np.ndarray] = []
        self._voiced: list[bool] = []
        self._tail: deque[bool] = deque(maxlen=self._hangover)

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def position(self) -> float | None:
        """Timeline seconds just after the last sample pushed (None before the first push)."""
        if self._anchor_at is None:
            return None
        return self._at(self._anchor_samples + self._residual.size)

    @property
    def growing_start(self) -> float | None:
        """Where the utterance in progress started (None when idle)."""
        return self._start if self._speaking else None

    @property
    def growing_size(self) -> int:
        """Samples in the utterance in progress so far (0 when idle)."""
        return sum(frame.size for frame in self._frames) if self._speaking else 0

    @property
    def quiet_s(self) -> float:
        """How long the current utterance has been without a voiced frame (0 when idle)."""
        if not self._speaking:
            return 0.0
        return _quiet_frames(self._voiced) * self._frame / SAMPLE_RATE

    def push(self, samples: np.ndarray, at: float) -> list[SpeechEvent]:
        """Add audio whose first sample is at `at` on the hearing timeline.

        Gaps since the previous chunk count as silence (so speech ends across a long gap);
        a chunk that overlaps audio already pushed is taken as following it directly.
        """
        if not isinstance(samples, np.ndarray) or samples.ndim != 1:
            raise InvalidAudio("audio must be a 1-D numpy array of 16 kHz mono samples")
        if samples.dtype != np.int16:
            raise InvalidAudio(f"audio must be int16 PCM, got {samples.dtype}")
        if not math.isfinite(at):
            raise InvalidAudio(f"audio position must be a finite number of seconds, got {at}")
        events: list[SpeechEvent] = []
        if self._anchor_at is None:
            self._anchor_at, self._anchor_samples = at, 0
        expected = self._at(self._anchor_samples + self._residual.size)
        gap = round((at - expected) * SAMPLE_RATE)
        buffer = self._residual
        if gap > TOLERANCE_SAMPLES:
            if gap <= self._max_fill:
                buffer = np.concatenate([buffer, np.zeros(gap, dtype=np.int16)])
            else:
                self._skip_gap(at, events)
                buffer = self._residual
        self._residual = self._frames_of(np.concatenate([buffer, samples]), events)
        return events

    def flush(self) -> list[SpeechEvent]:
        """End the current utterance now (the speaker muted or left); idle otherwise."""
        events: list[SpeechEvent] = []
        if self._speaking:
            if self._residual.size:
                self._frames.append(self._residual)
                self._voiced.append(False)
                self._anchor_samples += self._residual.size
                self._residual = np.empty(0, dtype=np.int16)
            events.append(self._finish(len(self._frames), cut=False))
        self._ring.clear()
        return events

    def growing(self) -> Utterance | None:
        """A copy of the utterance in progress so far (for partial results), or None."""
        if not self._speaking or not self._frames:
            return None
        samples = np.concatenate(self._frames)
        return Utterance(self._start, self._start + samples.size / SAMPLE_RATE, samples,
                         overlap=self._overlap * self._frame / SAMPLE_RATE, quiet=self.quiet_s)

    def _at(self, samples: int) -> float:
        assert self._anchor_at is not None
        return self._anchor_at + samples / SAMPLE_RATE

    def _skip_gap(self, at: float, events: list[SpeechEvent]) -> None:
        """A long gap: silence long enough to end any speech, then restart the clock at `at`."""
        pad = -self._residual.size % self._frame
        if self._speaking:
            pad += (self._hangover + 1) * self._frame
        filled = np.concatenate([self._residual, np.zeros(pad, dtype=np.int16)])
        self._residual = self._frames_of(filled, events)
        events.extend(self.flush())
        self._anchor_at, self._anchor_samples = at, 0

    def _frames_of(self, buffer: np.ndarray, events: list[SpeechEvent]) -> np.ndarray:
        """Classify every whole frame of `buffer`; return the leftover samples."""
        whole = buffer.size - buffer.size % self._frame
        for offset in range(0, whole, self._frame):
            frame = buffer[offset : offset + self._frame]
            voiced = self._vad.is_speech(frame.tobytes(), SAMPLE_RATE)
            self._anchor_samples += self._frame
            self._frame_in(frame, voiced, events)
        return buffer[whole:].copy()

    def _frame_in(self, frame: np.ndarray, voiced: bool, events: list[SpeechEvent]) -> None:
        if not self._speaking:
            self._ring.append((frame, voiced))
            recent = list(self._ring)[-self._onset :]
            if len(recent) == self._onset and sum(v for _, v in recent) >= self._onset_voiced:
                self._begin(
                    self._at(self._anchor_samples - len(self._ring) * self._frame),
                    [f for f, _ in self._ring],
                    [v for _, v in self._ring],
                    overlap=0,
                )
                self._ring.clear()
                events.append(SpeechStarted(self._start))
            return
        self._frames.append(frame)
        self._voiced.append(voiced)
        self._tail.append(voiced)
        if len(self._tail) == self._hangover and (
            self._tail.count(False) >= self._hangover_unvoiced
        ):
            events.append(self._finish(len(self._frames), cut=False))
        elif len(self._frames) >= self._max_frames:
            events.append(self._finish(self._cut_point(), cut=True))
            if self._speaking:
                events.append(SpeechStarted(self._start))

    def _begin(
        self, start: float, frames: list[np.ndarray], voiced: list[bool], *, overlap: int
    ) -> None:
        self._speaking = True
        self._start = start
        self._overlap = overlap
        self._frames = frames
        self._voiced = voiced
        self._tail.clear()
        self._tail.extend(voiced[-self._hangover :])

    def _cut_point(self) -> int:
        """Where to cut an over-long utterance: after the last unvoiced frame near its end,
        but past at least half of what is new in it (not inside the overlap with the piece
        before)."""
        earliest = self._overlap + (len(self._frames) - self._overlap) // 2
        for index in range(len(self._voiced) - 1, len(self._voiced) - 1 - self._cut_search, -1):
            if index >= earliest and not self._voiced[index]:
                return index + 1
        return len(self._frames)

    def _finish(self, count: int, *, cut: bool) -> Utterance | SpeechDiscarded:
        """End the utterance after its first `count` frames; the rest continues as speech."""
        frames, rest = self._frames[:count], self._frames[count:]
        voiced, rest_voiced = self._voiced[:count], self._voiced[count:]
        samples = np.concatenate(frames) if frames else np.empty(0, dtype=np.int16)
        start, end = self._start, self._start + samples.size / SAMPLE_RATE
        overlap = self._overlap * self._frame / SAMPLE_RATE
        self._speaking = False
        self._frames, self._voiced = [], []
        self._tail.clear()
        if cut:
            # The next piece starts before the cut, with the audio of the overlap again.
            again = max(0, min(self._cut_overlap, count - 1))
            self._begin(
                end - again * self._frame / SAMPLE_RATE,
                frames[count - again :] + rest,
                voiced[count - again :] + rest_voiced,
                overlap=again,
            )
        if overlap == 0 and sum(voiced) < self._min_speech:
            # (A piece after a cut is always transcribed: the words of its overlap are
            # waiting for it to be stitched.)
            return SpeechDiscarded(start, end)
        return Utterance(start, end, samples, cut=cut, overlap=overlap,
                         quiet=_quiet_frames(voiced) * self._frame / SAMPLE_RATE)


def _quiet_frames(voiced: list[bool]) -> int:
    """How many frames at the end are not voiced."""
    quiet = 0
    for was_voiced in reversed(voiced):
        if was_voiced:
            break
        quiet += 1
    return quiet

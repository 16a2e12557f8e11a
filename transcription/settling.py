"""Settling: each participant's record decoded again behind the live lines, the way offline
faster-whisper decodes their recording.

Whisper's words depend on the audio around them. A live line decodes one utterance alone (in
an encoder window fitted to it, greedily) so that it is on screen within a second; offline
faster-whisper decodes a recording in 30 s windows, each with a beam and conditioned on the
text before it, and on spontaneous Mandarin base writes 7-10 characters in 100 differently
from the live lines (docs/benchmarks.md). Neither is wrong more often; but a court's record
must be the one that does not depend on where a pause fell.

Settling runs faster-whisper's own loop over a participant's audio as it arrives. The loop
slices its log-Mel frames from a `TrackFeatures`, which computes them from the audio heard so
far and raises `NotYetHeard` (with the frame the window starts at) when the loop reaches audio
not heard yet. The loop is started again from that frame, with the text it was conditioned
on (`SettleState`), once the next 30 s are in: the windows, and so the words, are offline's.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from transcription.chinese import written_chinese
from transcription.guards import Word
from transcription.options import SAMPLE_RATE
from transcription.stitching import TimedLine

HOP = 160  # samples per log-Mel frame
WINDOW_FRAMES = 3_000  # Whisper's 30 s window
# Frames computed either side of a slice, so that its edge frames see the audio around them
# (the STFT's window reaches 200 samples each way) as they do in the whole recording's.
EDGE_FRAMES = 3
# Whisper conditions a window on at most this many tokens of the text before it.
PROMPT_TOKENS = 223
# A window decoded at a temperature above this no longer conditions the next (faster-whisper's
# `prompt_reset_on_temperature`).
PROMPT_RESET_TEMPERATURE = 0.5
# Audio positions that differ by at most this many samples are taken as contiguous (the
# timeline stamps of consecutive chunks are rounded).
JITTER_SAMPLES = 2
# A gap in what was heard up to this long is kept as silence; a longer one (a recess, a long
# loss) starts a new piece, and costs nothing.
FILLED_GAP_SAMPLES = SAMPLE_RATE


class NotYetHeard(Exception):
    """The decode reached audio that has not arrived: its next window starts at `frame`."""

    def __init__(self, frame: int) -> None:
        super().__init__(f"frame {frame} not heard yet")
        self.frame = frame


class TrackAudio:
    """A participant's 16 kHz mono audio as heard, by position on the hearing timeline, kept
    from the first sample settling still needs. A gap (packets lost, a recess) is silence
    and costs no memory: the audio is kept in pieces, one per stretch heard without a gap
    longer than `FILLED_GAP_SAMPLES`."""

    def __init__(self) -> None:
        # Written on the event loop, read by an inference thread.
        self._lock = threading.Lock()
        self.start: float | None = None  # timeline seconds of sample 0
        self._pieces: list[_Piece] = []
        self._end = 0  # track samples heard
        self.ended = False  # no more audio is coming (the participant left, the hearing ends)

    @property
    def heard(self) -> int:
        """Samples heard from the start of the track."""
        return self._end

    @property
    def kept_from(self) -> int:
        """The first track sample kept: before it, what was settled, or a gap (a recess)."""
        with self._lock:
            return self._pieces[0].start if self._pieces else self._end

    def put(self, samples: np.ndarray, at: float) -> None:
        """Audio whose first sample is at `at` seconds on the hearing timeline."""
        with self._lock:
            self._put(samples, at)

    def _put(self, samples: np.ndarray, at: float) -> None:
        if self.start is None:
            self.start = at
        index = round((at - self.start) * SAMPLE_RATE)
        if abs(index - self._end) <= JITTER_SAMPLES:
            index = self._end
        if index < self._end:  # heard already
            samples = samples[self._end - index:]
            index = self._end
        if samples.size == 0:
            return
        self.ended = False
        last = self._pieces[-1] if self._pieces else None
        if last is None or index - last.end > FILLED_GAP_SAMPLES:
            last = _Piece(index)
            self._pieces.append(last)
        last.append(samples, index)
        self._end = index + samples.size

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Track samples [lo, hi) as float32; silence where nothing is kept or heard."""
        out = np.zeros(max(0, hi - lo), dtype=np.float32)
        with self._lock:
            for piece in self._pieces:
                a, b = max(lo, piece.start), min(hi, piece.end)
                if a < b:
                    out[a - lo : b - lo] = piece.data[a - piece.start : b - piece.start] / 32768.0
        return out

    def forget_before(self, index: int) -> None:
        """Settling will not read before track sample `index` again."""
        with self._lock:
            while self._pieces and self._pieces[0].end <= index:
                self._pieces.pop(0)
            if self._pieces:
                self._pieces[0].drop_before(index)

    def seconds(self, frame: int) -> float:
        """A track frame's position on the hearing timeline."""
        return (self.start or 0.0) + frame * HOP / SAMPLE_RATE


class _Piece:
    """Audio heard without a long gap, from track sample `start` (short gaps as silence)."""

    def __init__(self, start: int) -> None:
        self.start = start
        self._data = np.zeros(0, dtype=np.int16)
        self.size = 0

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def data(self) -> np.ndarray:
        return self._data[: self.size]

    def append(self, samples: np.ndarray, index: int) -> None:
        needed = index - self.start + samples.size
        if needed > self._data.size:
            grown = np.zeros(max(needed, 2 * self._data.size), dtype=np.int16)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : index - self.start] = 0
        self._data[index - self.start : needed] = samples
        self.size = needed

    def drop_before(self, index: int) -> None:
        if index <= self.start:
            return
        cut = index - self.start
        kept = self._data[cut : self.size]
        # Copied only when most of it is gone, so that forgetting stays cheap.
        self._data = kept.copy() if cut > kept.size else kept
        self.start, self.size = index, kept.size


@dataclass(slots=True)
class SettleState:
    """Where a participant's offline-style decode stands: the frame its next window starts
    at, and the text (tokens) that window is conditioned on."""

    frame: int = 0
    tokens: list[int] | None = None  # None: not started (the hearing's prompt comes first)
    level: float = -np.inf  # the loudest normalized log-Mel value heard (the floor's reference)

    def conditioned(self, prompt_tokens: list[int]) -> list[int]:
        return prompt_tokens if self.tokens is None else self.tokens

    def decoded(self, prompt_tokens: list[int], window_tokens: list[int],
                temperature: float) -> None:
        """A window was decoded: the next is conditioned on its text too (as faster-whisper's
        loop conditions it), unless it needed a high temperature."""
        tokens = [*self.conditioned(prompt_tokens), *window_tokens]
        if temperature > PROMPT_RESET_TEMPERATURE:
            tokens = []
        self.tokens = tokens[-PROMPT_TOKENS:]


@dataclass(eq=False)
class TrackFeatures:
    """The log-Mel frames of a track from frame `origin` on, sliced `[:, a:b]` (frames from
    `origin`) by faster-whisper's loop.

    `complete`: the audio heard is all there is for now (the participant left or fell silent),
    so the recording ends where it does; otherwise it reaches on and slicing past what was
    heard raises `NotYetHeard`. Each slice is computed from the samples around it; the floor
    Whisper puts under quiet frames (8 below the loudest, in log10 units) follows the
    loudest frame heard so far, where offline takes the whole recording's.
    """

    extractor: Any  # faster-whisper's FeatureExtractor
    audio: TrackAudio
    state: SettleState
    origin: int
    complete: bool
    reach: int = 0  # the end (from `origin`) of the frames sliced so far
    windows: list[int] = field(default_factory=list)  # where each slice began (from `origin`)
    ndim: int = 2

    @property
    def shape(self) -> tuple[int, int]:
        # faster-whisper reads the content as shape[-1] - 1 frames.
        if self.complete:
            frames = max(0, self.audio.heard // HOP - self.origin)
        else:
            frames = 1 << 40
        return int(self.extractor.mel_filters.shape[0]), frames + 1

    def heard_frames(self) -> int:
        return self.audio.heard // HOP - self.origin

    def __getitem__(self, key: Any) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], slice)):
            raise TypeError(f"TrackFeatures takes [:, a:b], not {key!r}")
        lo, hi = key[1].start or 0, key[1].stop
        if hi is None:
            raise TypeError("TrackFeatures takes a bounded slice")
        first, last = self.origin + lo, self.origin + hi
        if not self.complete and self.audio.heard < (last + EDGE_FRAMES) * HOP:
            raise NotYetHeard(first)
        begin = max(0, first - EDGE_FRAMES)
        wave = self.audio.read(begin * HOP, (last + EDGE_FRAMES) * HOP)
        # Frame j of this wave is centred on track sample (begin + j) * HOP, as in the whole.
        frames = self.extractor(wave, padding=0)
        self.state.level = max(self.state.level, float(frames.max()))
        out = np.maximum(frames[:, first - begin : last - begin], self.state.level - 2.0)
        self.windows.append(lo)
        self.reach = max(self.reach, hi)
        return np.ascontiguousarray(out, dtype=np.float32)


# A settled word is put in the live line whose time it falls in, give or take this much (live
# and settled decodes time a word's edges a little differently); past that, in the nearest
# line within `NEAREST_S`, and further away it is speech the live lines missed.
MARGIN_S = 0.3
NEAREST_S = 1.0

@dataclass(frozen=True, slots=True)
class LiveLine:
    """A live line of the record, as settling sees it: which, and when."""

    key: Any
    start: float
    end: float


class Said(Protocol):
    """A line with timed words (a `FinalLine`)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...
    @property
    def words(self) -> tuple[Word, ...]: ...


def apportion(
    settled: Sequence[Said], live: Sequence[LiveLine], language: str
) -> tuple[dict[Any, str], list[TimedLine]]:
    """The settled text of each live line (by key; a line no settled word falls in is not
    there: the settled decode heard nothing of it, and the live text stays), and the settled
    text that falls in no live line (speech the live lines missed), in spoken order.

    A settled line within one live line keeps its text whole; one that spans several is split
    between them by its words' times."""
    parts: dict[Any, list[str]] = {}
    extra: list[TimedLine] = []
    for line in settled:
        units = line.words or ((line.text, line.start, line.end, 1.0),)
        owners = [_owner(live, (start + end) / 2) for _, start, end, _ in units]
        if len(set(owners)) == 1:
            groups = [(owners[0], line.text, units)]
        else:
            groups = []
            for owner, run in itertools.groupby(zip(owners, units, strict=True),
                                                key=lambda pair: pair[0]):
                words = tuple(word for _, word in run)
                groups.append((owner, _joined([w for w, *_ in words], language), words))
        for owner, text, words in groups:
            if owner is None:
                extra.append(TimedLine(words[0][1], words[-1][2], text, tuple(words), language))
            else:
                parts.setdefault(owner, []).append(text)
    separator = "" if language == "zh" else " "
    return {key: separator.join(texts) for key, texts in parts.items()}, extra


def _owner(live: Sequence[LiveLine], at: float) -> Any:
    within = [line for line in live if line.start - MARGIN_S <= at <= line.end + MARGIN_S]
    candidates = within or [line for line in live
                            if min(abs(at - line.start), abs(at - line.end)) <= NEAREST_S]
    if not candidates:
        return None
    return min(candidates, key=lambda line: abs(at - (line.start + line.end) / 2)).key


def _joined(words: list[str], language: str) -> str:
    if language == "zh":
        return written_chinese("".join(words))
    return " ".join(words)

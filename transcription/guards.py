"""Guards that keep text the audio does not hold out of the trial record.

Whisper writes text where nobody spoke: the initial prompt copied out (the case number, the
names, the legal vocabulary it carries), repetition loops, credit lines, and characters cut in
half. These are pure functions over a decoded segment (its text, words, scores and timing) and
the speech Silero VAD found in the audio. Cheap next to a decode (about 1 s with base): the text
checks take under a millisecond, the tone check 13 ms for 15 s of audio. The recognizer
(`transcription/recognizer.py`) applies them in order and records why it dropped what it dropped.

Measured (tests/speech/nonspeech.py, through the recognizer's decode with its gate turned off):
Whisper base with a Chinese hearing's prompt turns pink noise, Chromium's fake-microphone beeps,
music, keyboard clicks and coughs into the prompt's names ("审判员王力、被告人钱某某。"), often
looped ("…钱某某某某某…", "刑刑刑…") and cut mid-character ("审判�"), with `no_speech_prob`
0.79–0.92 but `avg_logprob` as good as real speech (-0.05 to -0.46): the log-probability check
cannot see an echo. Silero VAD finds no speech at all in any of these kinds, at any level, raw or
through Opus, which is why every line must lie on speech Silero found. Chromium's real fake
microphone, captured through getUserMedia with its audio processing on, is the exception: Silero
took 0.16 s of its beeps for speech, so spans that are a steady tone are not speech (`tonal`).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from transcription.options import SAMPLE_RATE

Word = tuple[str, float, float, float]  # (word, start, end, probability)
Span = tuple[float, float]  # seconds

REPLACEMENT = "\ufffd"

# A unit of text for loops and rates: one CJK character, or a run of letters, or one digit
# (digits are read out one syllable each in case numbers).
_UNIT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|\d|[^\W\d_]+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Loops: a unit of 1 to MAX_LOOP_UNITS units repeated back to back this many times. A single
# unit needs more: people do say "对对对" or "no, no, no".
MAX_LOOP_UNITS = 20
LOOP_REPEATS = 3
LOOP_REPEATS_SINGLE = 5

# Prompt echo: the share of a line's characters found in the prompt (in runs of at least this
# many characters: 3 with a Chinese character in the run, else 6) that makes it a suspect.
# Above half, so that "下面进行法庭辩论" (the prompt carries 法庭辩论) is not one.
ECHO_COVERAGE = 0.6
ECHO_MIN_RUN_CJK = 3
ECHO_MIN_RUN = 6
# A suspect whose window Whisper itself rated this likely to hold no speech is an echo, and so
# is one whose words it aligned to the audio with less than this mean probability. Measured on
# copies of the prompt from noise, beeps and coughs: no_speech_prob 0.56-0.89, mean word
# probability 0.00-0.14; the prompt's names said aloud: 0.01 and 0.43 (then a decode without
# the prompt decides).
ECHO_NO_SPEECH = 0.4
ECHO_WORD_PROBABILITY = 0.25
# Whatever the text: a segment the model itself doubts is speech (no_speech_prob at least
# DOUBT_NO_SPEECH) whose words it aligned with less than DOUBT_WORD_PROBABILITY on average is
# not kept. Seen: "好。" (no_speech_prob 0.50, probability 0.11) after AISHELL's
# "…停滞的情况" framed by 0.3 s of silence; a sentence said had 0.01-0.04 and 0.6-0.99.
DOUBT_NO_SPEECH = 0.4
DOUBT_WORD_PROBABILITY = 0.25
# A suspect confirmed by a decode without the prompt shares this much of its text with it.
ECHO_AGREEMENT = 0.6

# Speech under a line: a word counts as heard when Silero found speech within this margin of
# it (Whisper's word times are approximate); a line needs this share of its words heard.
SPEECH_MARGIN_S = 0.3
HEARD_SHARE = 0.5
# The fastest speech a line may claim for the speech under it: units per second of speech.
# Mandarin runs about 4-5 characters a second, English 2-3 words; these leave room.
MAX_UNITS_PER_S = 9.0


# Tones: frames of TONE_FRAME samples; a span is a tone when the median frame holds this share
# of its energy at its strongest frequency and that frequency stays put in this share of frames.
TONE_FRAME = 512
TONE_MIN_BIN = 250 * TONE_FRAME // SAMPLE_RATE
TONE_PEAK_SHARE = 0.65
TONE_STEADY = 0.5


def valid_words(words: Iterable[Word]) -> tuple[Word, ...]:
    """Words as faster-whisper grouped its tokens, without broken characters.

    faster-whisper groups byte-level tokens into words until they decode to whole characters,
    so a word holding U+FFFD is one whose character was cut off (the decode stopped between
    the tokens of a multibyte character): it is dropped, not patched. Control characters go too.
    """
    out = []
    for word, start, end, probability in words:
        if REPLACEMENT in word:
            continue
        text = _printable(word)
        if text.strip():
            out.append((text, start, end, probability))
    return tuple(out)


def valid_text(text: str) -> str:
    """Text without U+FFFD and control characters (for decodes without words)."""
    return _printable(text.replace(REPLACEMENT, ""))


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch in " \u3000" or unicodedata.category(ch)[0] != "C")


def units(text: str) -> list[tuple[str, int]]:
    """The text's units (lowercased) with the offset where each ends."""
    return [(m.group().lower(), m.end()) for m in _UNIT.finditer(text)]


def loop_end(text: str) -> int | None:
    """Where a repetition loop in `text` starts repeating (the end of its first occurrence,
    an offset into `text`), or None when there is no loop."""
    found = units(text)
    seq = [u for u, _ in found]
    n = len(seq)
    for i in range(n):
        for size in range(1, min(MAX_LOOP_UNITS, (n - i) // 2) + 1):
            needed = LOOP_REPEATS_SINGLE if size == 1 else LOOP_REPEATS
            if i + needed * size > n:
                break
            first = seq[i : i + size]
            if all(seq[i + k * size : i + (k + 1) * size] == first for k in range(1, needed)):
                return found[i + size - 1][1]
    return None


def _normalized(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())


def _prompt_mask(line: str, source: str) -> list[bool]:
    """Which characters of a normalized line belong to runs of the normalized prompt."""
    mask = [False] * len(line)
    i = 0
    while i < len(line):
        size = 0
        while i + size < len(line) and line[i : i + size + 1] in source:
            size += 1
        least = ECHO_MIN_RUN_CJK if _CJK.search(line[i : i + size]) else ECHO_MIN_RUN
        if size >= least or size == len(line) >= 2:
            mask[i : i + size] = [True] * size
            i += size
        else:
            i += 1
    return mask


def prompt_coverage(text: str, prompt: str | None) -> float:
    """The share of `text` (letters and digits) that repeats runs of the prompt: 1.0 for a
    line copied from it, near 0 for speech that merely names someone in it."""
    line, source = _normalized(text), _normalized(prompt or "")
    if not line or not source:
        return 0.0
    return sum(_prompt_mask(line, source)) / len(line)


def echo_edges(words: Sequence[Word], prompt: str | None, spans: Sequence[Span]) -> tuple[int, int]:
    """How many words at the start and at the end of a line are copied from the prompt and
    not in the audio: words that repeat the prompt (as a run of at least ECHO_MIN_RUN_CJK /
    ECHO_MIN_RUN characters), that Whisper aligned with little confidence and that have no
    speech under them. Whisper appends the prompt's names to a short answer this way."""
    source = _normalized(prompt or "")
    pieces = [_normalized(w[0]) for w in words]
    line = "".join(pieces)
    if not source or not line:
        return 0, 0
    mask = _prompt_mask(line, source)
    copied, at = [], 0
    for piece in pieces:
        copied.append(bool(piece) and all(mask[at : at + len(piece)]))
        at += len(piece)

    def run(indices: Iterable[int]) -> int:
        taken: list[Word] = []
        for i in indices:
            if not copied[i] and pieces[i]:
                break
            taken.append(words[i])
        while taken and not _normalized(taken[-1][0]):
            taken.pop()  # punctuation at the run's inner edge stays with the speech
        unsupported = (
            mean_probability(taken) < ECHO_WORD_PROBABILITY
            and heard_share(taken, spans) < HEARD_SHARE
        )
        return len(taken) if taken and unsupported else 0

    lead = run(range(len(words)))
    trail = run(reversed(range(lead, len(words))))
    return lead, trail


def agreement(text: str, other: str) -> float:
    """The share of `text`'s characters found, in order, in `other` (longest common
    subsequence over letters and digits)."""
    a, b = _normalized(text), _normalized(other)
    if not a:
        return 1.0
    row = [0] * (len(b) + 1)
    for ch in a:
        prev = 0
        for j, other_ch in enumerate(b, start=1):
            prev, row[j] = row[j], prev + 1 if ch == other_ch else max(row[j], row[j - 1])
    return row[-1] / len(a)


def mean_probability(words: Sequence[Word]) -> float:
    """The mean of the words' probabilities (1.0 without words: nothing to judge by)."""
    return sum(w[3] for w in words) / len(words) if words else 1.0


def speech_near(spans: Sequence[Span], start: float, end: float, margin: float) -> float:
    """Seconds of speech within [start - margin, end + margin]."""
    lo, hi = start - margin, end + margin
    return sum(max(0.0, min(hi, b) - max(lo, a)) for a, b in spans)


def heard_share(words: Sequence[Word], spans: Sequence[Span]) -> float:
    """The share of the words with speech found near them."""
    if not words:
        return 0.0
    heard = sum(speech_near(spans, s, e, SPEECH_MARGIN_S) > 0 for _, s, e, _ in words)
    return heard / len(words)


def too_fast(text: str, speech_s: float) -> bool:
    """More text than the speech under it could hold."""
    return len(units(text)) > MAX_UNITS_PER_S * speech_s + 1


def tonal(samples: np.ndarray, span: Span) -> bool:
    """Whether float32 audio over `span` is a steady tone (a beep) rather than speech.

    Per 32 ms frame with energy, the strongest frequency bin and the share of the frame's
    energy within two bins of it. Measured medians: speech 0.35-0.55 of the energy at the
    strongest bin, which moves (the same bin in 20-40% of frames); Chromium's fake-device beep
    as captured through getUserMedia 0.76 and 67% (Silero took 0.16 s of it for speech), a
    1 kHz tone 1.0 and 100%. Bins under 250 Hz are left out of the comparison, so that mains
    hum under speech does not make it steady.
    """
    lo, hi = int(span[0] * SAMPLE_RATE), int(span[1] * SAMPLE_RATE)
    clip = samples[lo:hi]
    if clip.size < TONE_FRAME:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(clip, TONE_FRAME)[:: TONE_FRAME // 2]
    frames = windows * np.hanning(TONE_FRAME)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(axis=1)
    power = power[energy > energy.max() * 0.01]
    peaks = power.argmax(axis=1)
    if peaks.size == 0 or np.median(peaks) < TONE_MIN_BIN:
        return False
    near = np.clip(peaks[:, None] + np.arange(-2, 3), 0, power.shape[1] - 1)
    share = np.median(np.take_along_axis(power, near, axis=1).sum(axis=1) / power.sum(axis=1))
    steady = np.mean(np.abs(peaks - np.bincount(peaks).argmax()) <= 1)
    return bool(share >= TONE_PEAK_SHARE and steady >= TONE_STEADY)


def compression_ratio(text: str) -> float:
    """As Whisper computes it: UTF-8 bytes over their zlib-compressed size."""
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0

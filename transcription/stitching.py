"""Joining the pieces of one speaker's continuous speech into whole lines.

Speech that goes on past `max_utterance_s` is cut into pieces, and a word spoken across a cut
would be heard by neither piece whole: Whisper drops or garbles it. So the next piece starts
`cut_overlap_s` before the cut (`UtteranceDetector`), the overlap is recognized twice, and
`Stitcher` keeps each word once: where the two readings of the overlap agree on a word (same
text, about the same time), the first piece's words end with it and the second's begin after
it; where they agree on none, the overlap is split at its middle by word timestamps, far from
both cut edges. Lines of a piece that may reach into the next overlap wait for the next piece.

Pure and synchronous; times are seconds on the hearing timeline.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

Word = tuple[str, float, float, float]  # (word, start, end, probability)

# Two readings of a word are the same word when their middles are this close (word timestamps
# from separate decodes of the same audio differ by a few tens of milliseconds, rarely more).
SAME_WORD_S = 0.5
# A word may start or end this far outside the overlap and still belong to it.
EDGE_SLACK_S = 0.3
# Languages written without spaces between words.
UNSPACED = frozenset({"zh", "ja", "yue", "th", "lo", "my", "km", "bo"})
SENTENCE_ENDS = (".", "?", "!", "。", "？", "！", "…")
# Characters that join a word to the one before, or to the one after, without a space.
ATTACHED_AFTER = frozenset("-'’,.;:!?%)]}")
ATTACHED_BEFORE = frozenset("-([{")
# A sentence cut in two is one line again, unless that line would be longer than this.
MAX_LINE_S = 30.0


@dataclass(frozen=True, slots=True)
class TimedLine:
    """A recognized line of one piece: its words and its place on the timeline."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    language: str


@dataclass(frozen=True, slots=True)
class Piece:
    """One utterance's recognized lines. `overlap_s`: how much of its start repeats the end of
    the piece before (0: none); `cut`: the speaker went on after its end."""

    start: float
    end: float
    lines: tuple[TimedLine, ...]
    overlap_s: float = 0.0
    cut: bool = False


class Stitcher:
    """One speaker's pieces in, in order; whole lines out, each word once.

    `add` returns the lines that are final; after a cut piece it keeps back the lines that reach
    into the overlap until the next piece comes (`flush` gives them up as they are).
    """

    def __init__(self, overlap_s: float) -> None:
        self._overlap_s = overlap_s
        self._held: list[TimedLine] = []
        self._held_end: float | None = None  # where the held piece was cut

    @property
    def held_from(self) -> float | None:
        """Timeline start of the lines kept back (None when none are)."""
        return self._held[0].start if self._held else None

    def add(self, piece: Piece) -> list[TimedLine]:
        lines: list[TimedLine]
        if (
            self._held_end is not None
            and piece.overlap_s > 0
            and _near(piece.start + piece.overlap_s, self._held_end)
        ):
            lines = stitch(self._held, list(piece.lines), piece.start, self._held_end)
        else:
            lines = self.flush() + list(piece.lines)
        self._held, self._held_end = [], None
        if not piece.cut:
            return lines
        # Lines that may reach into the next piece's overlap wait for it.
        hold_from = piece.end - self._overlap_s - EDGE_SLACK_S
        ready = 0
        while ready < len(lines) and lines[ready].end <= hold_from:
            ready += 1
        self._held, self._held_end = lines[ready:], piece.end
        return lines[:ready]

    def flush(self) -> list[TimedLine]:
        """The held lines as they are (the next piece will not come, or failed)."""
        held, self._held, self._held_end = self._held, [], None
        return held


def stitch(
    before: Sequence[TimedLine], after: Sequence[TimedLine], lo: float, hi: float
) -> list[TimedLine]:
    """The lines of two pieces whose audio overlaps from `lo` to `hi`, each word once."""
    b_words = [w for line in before for w in line.words]
    a_words = [w for line in after for w in line.words]
    keep, skip = split_point(b_words, a_words, lo, hi)
    middle = (lo + hi) / 2
    head = _truncate(before, keep, from_start=True, middle=middle)
    tail = _truncate(after, skip, from_start=False, middle=middle)
    if (
        head
        and tail
        and not head[-1].text.rstrip().endswith(SENTENCE_ENDS)
        and tail[0].end - head[-1].start <= MAX_LINE_S
    ):
        # The cut fell inside a sentence: one line, as if it had not been cut.
        return [*head[:-1], _merge(head[-1], tail[0]), *tail[1:]]
    return head + tail


def split_point(
    before: Sequence[Word], after: Sequence[Word], lo: float, hi: float
) -> tuple[int, int]:
    """(how many words of `before` to keep, how many of `after` to skip)."""
    middle = (lo + hi) / 2
    b_idx = [i for i, w in enumerate(before) if w[2] > lo - EDGE_SLACK_S]
    a_idx = [j for j, w in enumerate(after) if w[1] < hi + EDGE_SLACK_S]
    pairs = _aligned(before, b_idx, after, a_idx)
    if pairs:
        # Join where both readings agree, as far from either cut edge as possible.
        i, j = min(pairs, key=lambda p: abs(_mid(before[p[0]]) + _mid(after[p[1]]) - 2 * middle))
        return i + 1, j + 1
    # No word heard in both: split at the middle, unless one piece heard nothing there
    # (Whisper sometimes skips the first words of audio that starts mid-sentence, or the
    # last before a cut); then the other piece's words stand until the first one's begin.
    split = middle
    if not after or not before:
        split = math.inf if not after else -math.inf
    elif after[0][1] > middle:
        split = after[0][1]
    elif before[-1][2] < middle:
        split = before[-1][2]
    keep = sum(1 for w in before if _mid(w) < split)
    skip = sum(1 for w in after if _mid(w) < split)
    return keep, skip


def _aligned(
    before: Sequence[Word], b_idx: list[int], after: Sequence[Word], a_idx: list[int]
) -> list[tuple[int, int]]:
    """The longest common subsequence of the two readings of the overlap: words equal after
    normalizing and close in time, as (index in before, index in after)."""

    def same(i: int, j: int) -> bool:
        text = _normalize(before[i][0])
        return (
            bool(text)
            and text == _normalize(after[j][0])
            and abs(_mid(before[i]) - _mid(after[j])) <= SAME_WORD_S
        )

    n, m = len(b_idx), len(a_idx)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for x in range(n - 1, -1, -1):
        for y in range(m - 1, -1, -1):
            if same(b_idx[x], a_idx[y]):
                table[x][y] = table[x + 1][y + 1] + 1
            else:
                table[x][y] = max(table[x + 1][y], table[x][y + 1])
    pairs: list[tuple[int, int]] = []
    x = y = 0
    while x < n and y < m:
        if same(b_idx[x], a_idx[y]):
            pairs.append((b_idx[x], a_idx[y]))
            x, y = x + 1, y + 1
        elif table[x + 1][y] >= table[x][y + 1]:
            x += 1
        else:
            y += 1
    return pairs


def _truncate(
    lines: Sequence[TimedLine], count: int, *, from_start: bool, middle: float
) -> list[TimedLine]:
    """The first `count` words of `lines` (from_start) or all but the first `count`, as
    lines; a line without words goes by which side of `middle` it lies on."""
    out: list[TimedLine] = []
    seen = 0
    for line in lines:
        if not line.words:
            if (line.end <= middle) == from_start:
                out.append(line)
            continue
        first, seen = seen, seen + len(line.words)
        if from_start:
            kept = line.words[: max(0, count - first)]
        else:
            kept = line.words[max(0, count - first) :]
        if len(kept) == len(line.words):
            out.append(line)
        elif kept:
            out.append(_line_of(kept, line.language))
    return out


def _merge(first: TimedLine, second: TimedLine) -> TimedLine:
    words = first.words + second.words
    if not words:
        text = joined_text([first.text, second.text], first.language)
        return TimedLine(first.start, second.end, text, (), first.language)
    return _line_of(words, first.language)


def _line_of(words: tuple[Word, ...], language: str) -> TimedLine:
    text = joined_text([w[0] for w in words], language)
    return TimedLine(words[0][1], words[-1][2], text, words, language)


def joined_text(parts: Sequence[str], language: str) -> str:
    """Words (or texts) put together as the language writes them: with spaces between, except
    in languages written without, before a word that goes on the one before ("ill" "-disposed")
    and after an opening bracket or hyphen."""
    out = ""
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if (
            out
            and language not in UNSPACED
            and not (part[0] in ATTACHED_AFTER or out[-1] in ATTACHED_BEFORE)
        ):
            out += " "
        out += part
    return out


def _normalize(word: str) -> str:
    return "".join(
        ch for ch in word.lower() if not unicodedata.category(ch).startswith(("P", "S", "Z"))
    )


def _mid(word: Word) -> float:
    return (word[1] + word[2]) / 2


def _near(a: float, b: float) -> bool:
    return abs(a - b) < 1e-3

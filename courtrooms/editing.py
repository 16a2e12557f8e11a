"""The clerk's edits of the trial record's structure (issue 18 part 7): delete a line, insert a
missing one, change a line's speaker, merge two lines, split one. Pure: an edit turns the
lines of the record's newest version into the lines of the next version; `Transcripts.edit`
stores them as that version (every earlier version stays as it was, so any two can be
compared and every seal still verifies against the version it sealed).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from courtrooms.errors import InvalidInput

ACTIONS = ("delete", "insert", "speaker", "merge", "split")


@dataclass(frozen=True)
class DraftLine:
    """A line of the version being made."""

    participant_id: uuid.UUID
    start: float
    end: float
    text: str
    language: str
    words: tuple[tuple[Any, ...], ...] = ()
    recovered: bool = False
    source: uuid.UUID | None = None  # the line of the previous version it comes from


@dataclass(frozen=True)
class RecordEdit:
    action: str
    line_ids: tuple[uuid.UUID, ...] = ()
    participant_id: uuid.UUID | None = None
    text: str | None = None
    start: float | None = None
    end: float | None = None
    at: int | None = None  # where a split cuts the text (characters)
    reason: str | None = None


def apply(lines: Sequence[DraftLine], edit: RecordEdit, language: str) -> list[DraftLine]:
    """The next version's lines (ordered by start) after `edit`; InvalidInput names what is
    wrong with it."""
    ordered = sorted(lines, key=lambda li: li.start)
    index = {li.source: i for i, li in enumerate(ordered)}

    def position(line_id: uuid.UUID) -> int:
        if line_id not in index:
            raise InvalidInput(f"line {line_id} is not in the record's newest version",
                               field="line_ids")
        return index[line_id]

    def one() -> int:
        if len(edit.line_ids) != 1:
            raise InvalidInput(f"{edit.action} takes one line", field="line_ids")
        return position(edit.line_ids[0])

    out = list(ordered)
    if edit.action == "delete":
        del out[one()]
    elif edit.action == "speaker":
        i = one()
        if edit.participant_id is None:
            raise InvalidInput("name the line's speaker", field="participant_id")
        out[i] = replace(out[i], participant_id=edit.participant_id)
    elif edit.action == "insert":
        out.append(_inserted(edit, language))
    elif edit.action == "merge":
        if len(edit.line_ids) != 2:
            raise InvalidInput("merge takes two lines", field="line_ids")
        i, j = sorted(position(x) for x in edit.line_ids)
        if j != i + 1:
            raise InvalidInput("only lines next to each other are merged", field="line_ids")
        a, b = out[i], out[j]
        if a.participant_id != b.participant_id:
            raise InvalidInput("merged lines must have the same speaker: change one's speaker "
                               "first", field="line_ids")
        out[i:j + 1] = [replace(a, end=max(a.end, b.end), text=_join(a.text, b.text, language),
                                words=a.words + b.words, recovered=a.recovered or b.recovered)]
    elif edit.action == "split":
        i = one()
        out[i:i + 1] = _split(out[i], edit.at)
    else:
        raise InvalidInput(f"an edit is one of {', '.join(ACTIONS)}", field="action")
    return sorted(out, key=lambda li: li.start)


def _inserted(edit: RecordEdit, language: str) -> DraftLine:
    if edit.participant_id is None:
        raise InvalidInput("name the speaker of the inserted line", field="participant_id")
    text = (edit.text or "").strip()
    if not text:
        raise InvalidInput("an inserted line needs its words", field="text")
    if edit.start is None or edit.start < 0:
        raise InvalidInput("an inserted line needs where it starts on the timeline",
                           field="start")
    end = edit.start if edit.end is None else edit.end
    if end < edit.start:
        raise InvalidInput("an inserted line cannot end before it starts", field="end")
    return DraftLine(edit.participant_id, edit.start, end, text, language)


def _join(a: str, b: str, language: str) -> str:
    # Chinese runs on without a space; other languages get one.
    return f"{a}{b}" if language.startswith("zh") else f"{a} {b}"


def _split(line: DraftLine, at: int | None) -> list[DraftLine]:
    text = line.text
    if at is None or not 0 < at < len(text):
        raise InvalidInput(f"a split cuts inside the line's text (1 to {len(text) - 1} "
                           "characters)", field="at")
    first, second = text[:at].rstrip(), text[at:].lstrip()
    if not first or not second:
        raise InvalidInput("a split leaves words on both sides", field="at")
    # Where on the timeline: at the recognizer's word boundary when it gave word times,
    # else in proportion to the characters.
    cut = line.start + (line.end - line.start) * at / len(text)
    words_a: tuple[tuple[Any, ...], ...] = line.words
    words_b: tuple[tuple[Any, ...], ...] = ()
    if line.words:
        seen = 0
        for k, word in enumerate(line.words):
            seen += len(str(word[0]).strip())
            if seen >= len(first.replace(" ", "")):
                words_a, words_b = line.words[:k + 1], line.words[k + 1:]
                if words_b:
                    cut = float(words_b[0][1])
                break
    cut = min(max(cut, line.start), line.end)
    return [replace(line, end=cut, text=first, words=tuple(words_a)),
            replace(line, start=cut, text=second, words=tuple(words_b), source=None)]

"""Word and character errors (jiwer), text normalization, and offline recognition.

English is scored by words, lower-cased, punctuation removed, a few spellings unified (Whisper
writes "Mr." where LibriVox transcripts say "mister"). Mandarin is scored by characters after
Traditional-to-Simplified conversion (OpenCC) with punctuation and spaces removed.
"""

from __future__ import annotations

import functools
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

import jiwer
import numpy as np

from tests.bench.transcription.corpus import Clip

SPELLINGS = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


@functools.cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def _letters(text: str) -> str:
    return "".join(
        ch if not unicodedata.category(ch).startswith(("P", "S", "Z")) else " " for ch in text
    )


def normalize(text: str, language: str) -> str:
    if language == "zh":
        return "".join(_letters(str(_t2s().convert(text))).split())
    words = _letters(text.lower().replace("'", "")).split()
    return " ".join(SPELLINGS.get(w, w) for w in words)


@dataclass(frozen=True, slots=True)
class Errors:
    """Edit operations between references and hypotheses, in words (English) or characters."""

    units: int  # words or characters in the references
    substitutions: int
    deletions: int
    insertions: int

    @property
    def rate(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / max(1, self.units)


def errors(references: list[str], hypotheses: list[str], language: str) -> Errors:
    refs = [normalize(r, language) for r in references]
    hyps = [normalize(h, language) for h in hypotheses]
    # jiwer refuses empty references; an empty pair has no errors, an empty reference
    # against text is all insertions.
    inserted = sum(_units(h, language) for r, h in zip(refs, hyps, strict=True) if not r)
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    if not pairs:
        return Errors(0, 0, 0, inserted)
    process = jiwer.process_characters if language == "zh" else jiwer.process_words
    out = process([r for r, _ in pairs], [h for _, h in pairs])
    return Errors(
        units=sum(_units(r, language) for r, _ in pairs),
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions + inserted,
    )


def _units(text: str, language: str) -> int:
    return len(text) if language == "zh" else len(text.split())


def join(texts: list[str], language: str) -> str:
    return ("" if language == "zh" else " ").join(t.strip() for t in texts if t.strip())


@dataclass(frozen=True, slots=True)
class Offline:
    """faster-whisper on each whole clip, its defaults (beam 5, padded 30 s windows,
    conditioning on previous text), the same model as live."""

    texts: list[str]
    lines: list[int]  # segments per clip
    wall_s: float
    audio_s: float


def offline(model: Any, clips: list[Clip], language: str, **options: Any) -> Offline:
    """`options`: faster-whisper's, instead of its defaults (to measure what each changes)."""
    texts, lines, wall, audio = [], [], 0.0, 0.0
    for clip in clips:
        began = time.perf_counter()
        samples = clip.samples.astype(np.float32) / 32768.0
        segments, _ = model.transcribe(samples, language=language, **options)
        found = [s.text for s in segments]
        wall += time.perf_counter() - began
        audio += clip.seconds
        texts.append(join(found, language))
        lines.append(len([t for t in found if t.strip()]))
    return Offline(texts, lines, wall, audio)


def offline_track(model: Any, samples: np.ndarray, language: str,
                  **options: Any) -> list[Any]:
    """Offline faster-whisper on a participant's whole track (as on their recording): its
    segments, times in seconds from the track's start."""
    segments, _ = model.transcribe(samples.astype(np.float32) / 32768.0, language=language,
                                   **options)
    return list(segments)

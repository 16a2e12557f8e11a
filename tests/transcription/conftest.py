"""Real Whisper weights and the speech files (tests/speech) for the transcription tests."""

from __future__ import annotations

import re
import wave
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.speech import SPEECH
from transcription.model import load_model
from transcription.pipeline import InferenceWorker
from transcription.recognizer import Recognizer


def references() -> dict[str, str]:
    """File name → reference text (empty: no speech expected), from transcripts.tsv."""
    out = {}
    for line in (SPEECH / "transcripts.tsv").read_text().splitlines():
        if line.strip():
            name, _, text = line.partition("\t")
            out[name] = text.strip()
    return out


def load_wav(name: str) -> np.ndarray:
    with wave.open(str(SPEECH / name)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_errors(reference: str, hypothesis: str) -> float:
    """Word error rate (Levenshtein distance over words / reference words)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def in_order(reference: str, hypothesis: str) -> float:
    """Share of the reference words found in the hypothesis in the same order (LCS)."""
    return share_in_order(words(reference), words(hypothesis))


def share_in_order(ref: Sequence[str], hyp: Sequence[str]) -> float:
    """Share of the tokens of `ref` found in `hyp` in the same order (the longest common
    subsequence over the length of `ref`)."""
    return sum(matched_in_order(ref, hyp)) / max(1, len(ref))


def matched_in_order(ref: Sequence[str], hyp: Sequence[str]) -> list[bool]:
    """For each token of `ref`, whether it is in a longest common subsequence with `hyp`
    (which of the words said the record holds, in order)."""
    n, m = len(ref), len(hyp)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = (table[i + 1][j + 1] + 1 if ref[i] == hyp[j]
                           else max(table[i + 1][j], table[i][j + 1]))
    matched, i, j = [False] * n, 0, 0
    while i < n and j < m:
        if ref[i] == hyp[j]:
            matched[i], i, j = True, i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return matched


def chunks(samples: np.ndarray, at: float, size: int = 320) -> list[tuple[np.ndarray, float]]:
    """The audio as the audio tap delivers it: 20 ms chunks with their timeline position."""
    return [(samples[i : i + size], at + i / 16_000) for i in range(0, samples.size, size)]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16_000), dtype=np.int16)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir for models (the base model is assembled into it once per session)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def tiny_recognizer(model_dir: Path) -> Recognizer:
    return Recognizer(load_model("tiny.en", model_dir))


@pytest.fixture
async def tiny_worker(tiny_recognizer: Recognizer) -> AsyncIterator[InferenceWorker]:
    worker = InferenceWorker(tiny_recognizer)
    yield worker
    await worker.aclose()

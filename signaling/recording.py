"""A live hearing's record: recording segments and their files, the live trial record, and
the close (finish the files and the record, then seal both)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from courtrooms.models import LIVE_STATES, HearingState
from courtrooms.recordings import FileOutcome
from media.recording import ParticipantRecorder, RecordingFile
from signaling.transcript import LiveTranscript

if TYPE_CHECKING:
    from signaling.hearing import LiveHearing

log = logging.getLogger(__name__)

LAG_REPORT_S = 2.0
# The court is alerted when the record falls this far behind what is said, and again when it
# has caught up (under half of it).
BEHIND_ALERT_S = 10.0


class HearingRecording:
    """Records a live hearing while it is in session, and takes its trial record."""

    def __init__(self, hearing: LiveHearing) -> None:
        self.hearing = hearing
        services = hearing.services
        self.recordings = services.recordings
        self.directory = Path("recordings") / hearing.id
        if services.worker is None:
            raise RuntimeError("start_transcription() must run before hearings go live")
        self.transcript = LiveTranscript(
            hearing.hearing_uuid, str(hearing.info["language"]),
            str(hearing.info["case_number"]), services.worker, services.transcripts,
            hearing.broadcast, services.data_dir / "spill" / hearing.id,
            recordings=services.recordings, tell_court=hearing.tell_court,
            tell_record=functools.partial(hearing.broadcast, witnesses=False),
            audit=self._audit,
            who=self._who, counters=services.transcription_counters,
        )
        self._segment: tuple[float, int] | None = None  # (timeline origin, index) while on
        self._lock = asyncio.Lock()
        self._transcript_started = False
        self._lag_reporter: asyncio.Task[None] | None = None

    async def follow(self, state: str) -> None:
        """Record in session, stop at a recess (and fill the record's gaps from the files
        just finished)."""
        if state == HearingState.IN_SESSION.value:
            await self.start()
        elif state == HearingState.RECESS.value:
            await self.stop()
            await self.transcript.recover()

    async def start(self) -> None:
        async with self._lock:
            hearing = self.hearing
            if self._segment is not None or hearing.state != HearingState.IN_SESSION.value:
                return
            self._segment = await self.recordings.begin_segment(hearing.hearing_uuid,
                                                                time.time())
            origin, index = self._segment
            await hearing.media.start_recording(
                self.recordings.data_dir / self.directory, origin, index, self)
            if not self._transcript_started:
                await self.transcript.start()
                self._transcript_started = True
            self.transcript.origin = origin
            self.transcript.feeding = True
            if self._lag_reporter is None:
                self._lag_reporter = hearing.tasks.spawn(
                    self._report_lag(), name=f"lag-{hearing.id[:8]}", context=hearing.context)

    async def stop(self) -> None:
        async with self._lock:
            if self._segment is None:
                return
            origin, index = self._segment
            self._segment = None
            self.transcript.feeding = False
            stopped = time.time()
            await self.hearing.media.stop_recording()
            await self.recordings.end_segment(self.hearing.hearing_uuid, index, stopped - origin)

    async def _audit(self, action: str, **data: object) -> None:
        await self.hearing.registry.record(self.hearing.hearing_uuid, "system", action, **data)

    def _who(self, participant_id: str) -> tuple[str, str, str | None] | None:
        seat = self.hearing.seats.get(participant_id)
        return (seat.name, seat.role, seat.language) if seat is not None else None

    async def _report_lag(self) -> None:
        """The recognizer's lag, for the judge and clerk, while the record is being taken;
        an alert when it falls far behind (nothing is dropped: its lines come late) and when
        it has caught up."""
        behind = False
        while True:
            await asyncio.sleep(LAG_REPORT_S)
            if not self.transcript.feeding:
                continue
            stats = self.transcript.stats()
            lag = stats["lag_seconds"]
            if self.transcript.stopped:
                state = "stopped"
            elif lag >= BEHIND_ALERT_S or (behind and lag >= BEHIND_ALERT_S / 2):
                state = "behind"
            else:
                state = "ok"
            self.hearing.tell_court({"type": "transcription", "state": state, **stats})
            if state == "behind" and not behind:
                self.hearing.tell_court({
                    "type": "alert", "code": "record_behind", "lag_seconds": lag,
                    "message": f"the record is {lag:.0f} s behind what is said; nothing is "
                               "lost, its lines come late",
                })
            elif state == "ok" and behind:
                self.hearing.tell_court({
                    "type": "alert", "code": "record_caught_up", "lag_seconds": lag,
                    "message": "the record has caught up with what is said",
                })
            if state != "stopped":
                behind = state == "behind"

    async def finish_files(self) -> None:
        """The hearing ended: its segment and every file are finished (quick: before anyone
        is sent away). Each step runs whatever became of the one before."""
        await self._each(self.stop, self.hearing.media.aclose)

    async def finish(self, closed: bool) -> None:
        """Then the record: drain the recognizer and fill its gaps from the files (minutes on
        a busy machine), and seal the files and the record if the hearing closed."""
        await self._each(self.stop, self.hearing.media.aclose, self._close_transcript,
                         self._recover_gaps)
        if closed:
            await self.hearing.services.seal(self.hearing.hearing_uuid)

    async def _each(self, *steps: Callable[[], Awaitable[None]]) -> None:
        for step in steps:
            try:
                await step()
            except Exception:
                log.exception("hearing %s: closing step %s failed", self.hearing.id,
                              step.__name__)

    async def _close_transcript(self) -> None:
        if self._lag_reporter is not None:
            self._lag_reporter.cancel()
            await asyncio.gather(self._lag_reporter, return_exceptions=True)
            self._lag_reporter = None
        if self._transcript_started:
            self._transcript_started = False
            await self.transcript.aclose()

    async def take_up(self) -> None:
        """The hearing goes live here after a process that held it died: what it had not
        transcribed is taken from its repaired files, in the background."""
        if self.hearing.state not in {s.value for s in LIVE_STATES}:
            return  # a finished hearing's record was completed (or audited) at its close
        await self.transcript.find_lost()
        if self.transcript.gaps:
            self.hearing.kept.spawn(self.transcript.recover(),
                                    name=f"recover-{self.hearing.id[:8]}",
                                    context=self.hearing.context)

    async def _recover_gaps(self) -> None:
        """The files are finished: what the live transcriber missed is taken from them (what
        cannot be is audited), before the record is sealed or the hearing leaves here."""
        await self.transcript.recover(final=True)

    async def aclose(self) -> None:
        await self.stop()
        await self._close_transcript()
        try:
            await self._recover_gaps()
        except Exception:
            log.exception("hearing %s: the record's gaps were not recovered", self.hearing.id)

    # -- the media room's recording events ------------------------------------------------

    def _relative(self, path: Path) -> str:
        return (self.directory / path.name).as_posix()

    async def recording_started(self, recorder: ParticipantRecorder) -> None:
        await self.recordings.file_started(
            self.hearing.hearing_uuid, uuid.UUID(recorder.participant_id), recorder.segment,
            self._relative(recorder.path), recorder.offset,
        )

    async def recording_finished(self, file: RecordingFile) -> None:
        await self.recordings.file_finished(
            self._relative(file.path),
            FileOutcome(duration=file.duration, codecs=",".join(file.codecs), error=file.error),
        )

    def recording_failed(self, participant_id: str, message: str) -> None:
        """A file could not be written (a full disk): the court must know; the hearing goes on.
        Named: the court's console shows the message, and a file name says nothing of whose."""
        seat = self.hearing.seats.get(participant_id)
        whose = seat.name if seat is not None else participant_id
        self.hearing.tell_court({
            "type": "alert", "code": "recording_failed", "participant_id": participant_id,
            "message": f"recording failed for {whose}: {message}",
        })

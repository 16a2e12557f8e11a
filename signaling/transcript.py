"""Live transcription of a hearing: participants' audio in, trial record lines and captions out.

The recognizer (`transcription`) knows nothing of the registry or of sockets; this module
commits each final line to the record the moment it is produced, then pushes it to everyone
as a caption, and shows partial results while someone speaks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from courtrooms.transcripts import SpokenLine, Transcripts
from media.audio import PcmChunk
from media.peer import ParticipantPeer
from transcription.pipeline import HearingTranscriber, InferenceWorker, Partial, Segment

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5
COMMIT_RETRY_S = 0.5
DRAIN_TIMEOUT_S = 60.0

Broadcast = Callable[[dict[str, Any]], Awaitable[None]]


def caption(line: Segment | Partial, final: bool, segment_id: str | None = None
            ) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "caption", "final": final, "participant_id": line.participant_id,
        "name": line.name, "role": line.role, "start": round(line.start, 3),
        "end": round(line.end, 3), "text": line.text,
    }
    if segment_id is not None:
        message["segment_id"] = segment_id
    return message


class LiveTranscript:
    """One hearing's transcriber, fed while the hearing is in session."""

    def __init__(
        self,
        hearing_id: uuid.UUID,
        language: str,
        case_number: str,
        worker: InferenceWorker,
        transcripts: Transcripts,
        broadcast: Broadcast,
        spill_dir: Path,
    ) -> None:
        self.hearing_id = hearing_id
        self.transcripts = transcripts
        self._broadcast = broadcast
        self.origin: float | None = None  # the timeline origin, known once in session
        self.feeding = False
        self.lines_committed = 0
        self.commit_failures = 0
        self._transcriber = HearingTranscriber(
            worker, on_segment=self._commit, on_partial=self._partial, language=language,
            case_number=case_number, spill_dir=spill_dir,
        )

    @property
    def lag_seconds(self) -> float:
        return self._transcriber.lag_seconds

    def stats(self) -> dict[str, Any]:
        stats = self._transcriber.stats()
        return {"lag_seconds": round(stats.lag_seconds, 2), "queued": stats.queued_utterances,
                "spilled": stats.spilled_utterances, "lines": self.lines_committed}

    async def start(self) -> None:
        await self._transcriber.start()

    def listen(self, peer: ParticipantPeer, name: str, role: str) -> None:
        """Transcribe `peer`'s audio (its audio tap, decoded once for all uses)."""
        pid = peer.participant_id
        self._transcriber.add_speaker(pid, name, role)
        audio = peer.publications["audio"]

        def on_chunk(chunk: PcmChunk) -> None:
            if not self.feeding or self.origin is None or audio.muted:
                return  # only what the court hears in session goes into the record
            at = peer.clock.wall_time("audio", chunk.timestamp, time.time()) - self.origin
            self._transcriber.feed(pid, chunk.samples, at)

        peer.audio_tap.add_consumer(on_chunk)

    def pause(self, participant_id: str) -> None:
        """The participant stops being heard (a private consultation): close their utterance."""
        self._transcriber.end_speech(participant_id)

    def leave(self, participant_id: str) -> None:
        self._transcriber.remove_speaker(participant_id)

    async def _commit(self, segment: Segment) -> None:
        line = SpokenLine(
            participant_id=uuid.UUID(segment.participant_id), start=segment.start,
            end=segment.end, text=segment.text, language=segment.language,
            words=segment.words,
        )
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                row = await self.transcripts.add(self.hearing_id, line)
                break
            except Exception:
                log.exception("committing a trial record line failed (attempt %d)", attempt + 1)
                await asyncio.sleep(COMMIT_RETRY_S * (attempt + 1))
        else:
            self.commit_failures += 1
            return
        self.lines_committed += 1
        await self._broadcast(caption(segment, True, str(row.id)))

    async def _partial(self, partial: Partial) -> None:
        await self._broadcast(caption(partial, False))

    async def aclose(self) -> None:
        """Transcribe what was already heard (bounded), then stop."""
        self.feeding = False
        try:
            await asyncio.wait_for(self._transcriber.aclose(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.error("hearing %s: transcription did not drain in %.0f s",
                      self.hearing_id, DRAIN_TIMEOUT_S)

"""What a live hearing uses of the process: one object, built by the hub."""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCIceServer

from courtrooms.exhibits import Exhibits
from courtrooms.identity import IdentityChecks
from courtrooms.recordings import Recordings
from courtrooms.registry import Registry
from courtrooms.signing import Signing
from courtrooms.transcripts import Transcripts
from media.counters import MediaCounters
from signaling.bus import LiveBus
from signaling.counters import TranscriptionCounters
from signaling.review import CompositeJobs
from transcription.pipeline import InferenceWorker

log = logging.getLogger(__name__)


@dataclass
class HearingServices:
    registry: Registry
    recordings: Recordings
    transcripts: Transcripts
    exhibits: Exhibits
    identity: IdentityChecks
    signing: Signing
    composites: CompositeJobs
    bus: LiveBus
    data_dir: Path
    ice_servers: list[RTCIceServer] = field(default_factory=list)
    client_ice_servers: list[dict[str, Any]] = field(default_factory=list)
    # Fit what each subscriber receives to its link (off only to measure what it changes).
    adapt_downlinks: bool = True
    media_counters: MediaCounters = field(default_factory=MediaCounters)
    transcription_counters: TranscriptionCounters = field(
        default_factory=TranscriptionCounters)
    # The process's recognizer, once loaded (`Hub.start_transcription`).
    worker: InferenceWorker | None = None
    # How long sealing waits for files still being written before sealing without them.
    files_wait_s: float = 30.0

    async def seal(self, hearing_id: uuid.UUID) -> None:
        """A closed hearing's files and record are final: seal both and render its review
        composite. Each step is attempted whatever became of the others (a failed transcript
        must not leave the recordings unsealed); failures are logged and raised at the end."""
        failures: list[Exception] = []
        failed: list[str] = []
        unfinished: list[str] = []
        sealed_by = "system"
        try:
            # A departure's file may still be finishing after the media room closed: the seal
            # covers every file, finished (or, after the wait, audited as unfinished).
            unfinished = await self.recordings.wait_finished(hearing_id, self.files_wait_s)
            if unfinished:
                log.warning("hearing %s: sealed with %d files still being written",
                            hearing_id, len(unfinished))
            sealed_by = await self.recordings.closed_by(hearing_id)
        except Exception:
            log.exception("hearing %s: waiting for its files before sealing failed", hearing_id)
        for what, step in (
            ("recordings", functools.partial(self.recordings.seal, unfinished=unfinished)),
            ("trial record", self.transcripts.seal),
        ):
            try:
                await step(hearing_id, sealed_by)
            except Exception as e:
                log.exception("hearing %s: sealing the %s failed", hearing_id, what)
                failures.append(e)
                failed.append(what)
        try:
            files, _ = await self.recordings.of_hearing(hearing_id)
            if any(f.kind == "participant" for f in files):
                self.composites.start(hearing_id)
        except Exception as e:
            log.exception("hearing %s: the review composite could not start", hearing_id)
            failures.append(e)
            failed.append("composite")
        if failures:
            # In the audit, so that the court (and verify-audit) sees what was not sealed.
            try:
                await self.registry.record(hearing_id, "system", "hearing.sealing_failed",
                                           failed=failed,
                                           errors=[str(e)[:500] for e in failures])
            except Exception:
                log.exception("hearing %s: the sealing failure could not be audited",
                              hearing_id)
            raise ExceptionGroup(f"sealing hearing {hearing_id} was incomplete", failures)

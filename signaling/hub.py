"""The process's live hearings: where signaling sessions find their hearing."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any

from aiortc import RTCIceServer

from config import Settings
from courtrooms.exhibits import Exhibits
from courtrooms.models import HearingState, Participant, Recording, RecordingStatus
from courtrooms.recordings import FileOutcome, Recordings
from courtrooms.service import Registry
from courtrooms.transcripts import Transcripts
from media.aiortc_adapter import UdpPortRange, restrict_host_addresses
from media.counters import MediaCounters
from media.recording import RecordingError, repair
from signaling.bus import LiveBus, Seat
from signaling.cluster import CLOSE_HOLDER_LOST, Cluster
from signaling.counters import SignalingCounters
from signaling.errors import SignalingError
from signaling.hearing import FINISHED, Connection, LiveHearing
from signaling.review import CompositeJobs
from signaling.transcript import LiveTranscript
from transcription.model import load_model
from transcription.pipeline import InferenceWorker
from transcription.recognizer import Recognizer

log = logging.getLogger(__name__)


class Hub:
    """Owns every `LiveHearing` of this process and the media network settings."""

    def __init__(
        self,
        registry: Registry,
        recordings: Recordings,
        bus: LiveBus,
        settings: Settings,
        *,
        heartbeat_s: float = 15.0,
        join_timeout_s: float = 15.0,
        cluster: Cluster | None = None,
    ) -> None:
        self.registry = registry
        self.recordings = recordings
        self.composites = CompositeJobs(registry, recordings)
        self.transcripts = Transcripts(registry.db, registry.clock)
        self.exhibits = Exhibits(registry.db, registry.clock, settings.data_dir)
        self._worker: InferenceWorker | None = None
        self.bus = bus
        self.cluster = cluster
        if cluster is not None:
            cluster.on_lease_lost = self._lease_lost
        self.settings = settings
        self.draining = False
        # Read by /metrics: frames and bytes forwarded and recorded by all of this process's
        # hearings, WebSockets open and errors sent.
        self.media_counters = MediaCounters()
        self.signaling_counters = SignalingCounters()
        self.heartbeat_s = heartbeat_s
        self.join_timeout_s = join_timeout_s
        self.hearings: dict[str, LiveHearing] = {}
        self.connections: set[Connection] = set()
        self.client_ice_servers: list[dict[str, Any]] = [
            s.model_dump(exclude_none=True) for s in settings.ice_servers
        ]
        self._server_ice = [
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in settings.ice_servers
        ]
        self._ports: UdpPortRange | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Apply the ICE network settings to this process and its event loop."""
        restrict_host_addresses(self.settings.ice_host_addresses or None)
        if self.settings.udp_port_range is not None:
            self._ports = UdpPortRange(*self.settings.udp_port_range)
            self._ports.install(asyncio.get_running_loop())

    async def start_transcription(self) -> None:
        """Load the Whisper model once for the process (a missing model stops start-up)."""
        model = await asyncio.to_thread(
            load_model, self.settings.whisper_model, self.settings.data_dir,
            device=self.settings.whisper_device,
        )
        self._worker = InferenceWorker(await asyncio.to_thread(Recognizer, model))

    def _transcript_for(self, live: LiveHearing) -> LiveTranscript:
        if self._worker is None:
            raise RuntimeError("start_transcription() must run before hearings go live")
        return LiveTranscript(
            live.hearing_uuid, str(live.info["language"]), str(live.info["case_number"]),
            self._worker, self.transcripts, live.broadcast,
            self.settings.data_dir / "spill" / live.id,
        )

    async def recover_recordings(self) -> None:
        """Finish the files a killed server left behind: everything readable is kept. Files
        of hearings another living process holds are that process's, still being written."""
        for hearing_id in {r.hearing_id for r in await self.recordings.unfinished()}:
            key = str(hearing_id)
            # Hold the hearing's lease while repairing, so that a process taking the hearing
            # up meanwhile waits (its joins are relayed here) instead of repairing the same
            # files, or ending the segment it has just opened.
            if self.cluster is not None and await self.cluster.claim(key) != self.cluster.id:
                continue  # held by a living process: its files are still being written
            async with self._lock:  # an arrival's `_take_up` waits: one repair of a file
                try:
                    await self._recover(hearing_id)
                finally:
                    if self.cluster is not None and key not in self.hearings:
                        await self.cluster.release(key)

    async def _recover(self, hearing_id: uuid.UUID) -> None:
        """Repair the hearing's unfinished files and end its open segments."""
        await self._repair(await self.recordings.unfinished(hearing_id))
        await self.recordings.end_open_segments(hearing_id)

    async def _repair(self, rows: list[Recording]) -> None:
        for row in rows:
            path = self.recordings.path_of(row)
            try:
                duration, codecs = await asyncio.to_thread(repair, path)
                outcome = FileOutcome(duration=duration, codecs=",".join(codecs))
                status = RecordingStatus.RECOVERED
            except FileNotFoundError:
                # Never created (nothing arrived before the stop): the row leaves the record.
                await self.recordings.file_finished(row.path, FileOutcome(duration=0.0))
                continue
            except RecordingError as e:
                outcome = FileOutcome(duration=0.0, error=f"unrecoverable: {e}")
                status = RecordingStatus.INTERRUPTED
            await self.recordings.file_finished(row.path, outcome, status)
            log.warning("recording %s recovered after an unclean stop: %s, %.1f s",
                        row.path, status.value, outcome.duration)

    async def placement(self, hearing_id: uuid.UUID) -> str | None:
        """Where a participant of the hearing is served: None for this process, else the id
        of the process holding the hearing's media (the session is relayed there)."""
        if self.draining:
            raise SignalingError("draining", "this server is shutting down; reconnect")
        if self.cluster is None:
            return None
        holder = await self.cluster.claim(str(hearing_id))
        return None if holder == self.cluster.id else holder

    async def _take_up(self, hearing_id: uuid.UUID) -> None:
        """Before a hearing goes live here: whoever held it before (a process that died, or
        this one before a restart) may have left files unfinished and people marked present."""
        key = str(hearing_id)
        await self.bus.hold(key)
        await self._recover(hearing_id)
        for seat in await self.bus.seats(key):
            if seat.present:
                await self.bus.update_seat(key, seat.participant_id, present=False,
                                           connection="closed")

    async def arrive(self, connection: Connection, participant: Participant) -> LiveHearing:
        hearing_id = str(participant.hearing_id)
        async with self._lock:
            live = self.hearings.get(hearing_id)
            if live is None:
                await self._take_up(participant.hearing_id)
                hearing = await self.registry.get_hearing(participant.hearing_id)
                live = LiveHearing(hearing, self.registry, self.recordings, self.bus,
                                   self._server_ice, self.client_ice_servers, self._on_empty,
                                   self.hearing_closed, self._transcript_for, self.exhibits,
                                   self._own, media_counters=self.media_counters)
                self.hearings[hearing_id] = live
            self.connections.add(connection)
        await live.arrive(connection, participant)
        return live

    async def depart(self, live: LiveHearing, connection: Connection) -> None:
        """Leave the hearing. aiohttp cancels a handler whose client went away, so the
        departure runs as a task of the hub's and completes even then."""
        self.connections.discard(connection)
        await asyncio.shield(self._own(live.depart(connection)))

    def _own(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run closing work (a departure, a retirement, a hearing's close) as the hub's task:
        no handler or hearing cancels it, and `aclose()` waits for it."""
        task = asyncio.create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing_done)
        return task

    def _closing_done(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("closing work failed", exc_info=task.exception())

    def _on_empty(self, live: LiveHearing) -> None:
        self._own(self._retire(live))

    async def _retire(self, live: LiveHearing) -> None:
        async with self._lock:
            if live.connections or self.hearings.get(live.id) is not live:
                return
            del self.hearings[live.id]
        await live.aclose()
        async with self._lock:
            if live.id not in self.hearings and not live.evicted:
                await self.bus.release(live.id)
                if self.cluster is not None:
                    await self.cluster.release(live.id)

    def _lease_lost(self, hearing_id: str) -> None:
        """Another process took the hearing (after a Redis restart both thought it theirs):
        this one lets go, and its participants reconnect to the new holder."""
        live = self.hearings.get(hearing_id)
        if live is None:
            return
        live.evicted = True
        self._own(self.bus.release(hearing_id))
        for connection in list(live.connections.values()):
            self._own(connection.close(CLOSE_HOLDER_LOST,
                                       "the hearing moved to another server; reconnect"))

    async def seats(self, hearing_id: uuid.UUID) -> list[Seat]:
        """Who is in a hearing right now (every process's participants): empty when not live."""
        return await self.bus.seats(str(hearing_id))

    async def hearing_changed(self, hearing_id: uuid.UUID, state: str) -> None:
        """A hearing changed state outside signaling (the REST API): tell its participants."""
        live = self.hearings.get(str(hearing_id))
        if live is not None:
            await live.announce_state(state)
            return
        key = str(hearing_id)
        await self.bus.publish(key, {"kind": "client", "to": None,
                                     "message": {"type": "hearing", "state": state}})
        await self.bus.publish(key, {"kind": "state", "state": state})
        if self.cluster is not None and await self.cluster.holder(key) is not None:
            return  # live in another process: it heard this and does the rest (files, seals)
        if state in FINISHED:
            await self.bus.forget(key)
        if state == HearingState.CLOSED.value:
            await self.hearing_closed(hearing_id)

    async def hearing_closed(self, hearing_id: uuid.UUID) -> None:
        """Seal the recordings and the trial record of a closed hearing; render its review
        composite."""
        await self.recordings.seal(hearing_id, "system")
        await self.transcripts.seal(hearing_id, "system")
        files, _ = await self.recordings.of_hearing(hearing_id)
        if any(f.kind == "participant" for f in files):
            self.composites.start(hearing_id)

    async def drain(self) -> None:
        """Refuse new joins and send everyone away: their pages reconnect, to another process
        when there is one. Their departures finish the hearings' files."""
        self.draining = True
        for connection in list(self.connections):
            await connection.close(1012, "server restarting; reconnect")

    async def aclose(self) -> None:
        """Drain, finish every hearing's files and record, then stop."""
        await self.drain()
        # Departures, retirements and hearings' closes finish (files, seals) before the rest
        # stops; a close may start a composite, stopped with the others below.
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for live in list(self.hearings.values()):
            await live.aclose()
        self.hearings.clear()
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.composites.aclose()
        if self._worker is not None:
            await self._worker.aclose()
        if self._ports is not None:
            self._ports.uninstall()
        restrict_host_addresses(None)

    # -- operations: read by /readyz and /metrics

    @property
    def transcription_ready(self) -> bool:
        """The Whisper model is loaded and its inference thread takes work."""
        return self._worker is not None

"""The process's live hearings: where signaling sessions find their hearing."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from dataclasses import replace

from aiortc import RTCIceServer

from config import Settings
from courtrooms.exhibits import Exhibits
from courtrooms.identity import IdentityChecks
from courtrooms.models import HearingState, Participant, Recording, RecordingStatus
from courtrooms.recordings import FileOutcome, Recordings
from courtrooms.registry import Registry
from courtrooms.signing import Signing
from courtrooms.transcripts import Transcripts
from media.aiortc_adapter import UdpPortRange, restrict_host_addresses
from media.counters import MediaCounters
from media.recording import RecordingError, repair
from signaling.bus import LiveBus
from signaling.cluster import CLOSE_HOLDER_LOST, Cluster
from signaling.counters import SignalingCounters, TranscriptionCounters
from signaling.errors import SignalingError
from signaling.hearing import FINISHED, Connection, LiveHearing
from signaling.loopwatch import LoopWatch
from signaling.review import PARTIAL_STALE_S, CompositeJobs
from signaling.seats import Seat
from signaling.services import HearingServices
from signaling.tasks import TaskSet
from transcription.model import decode_layout, load_model, machine_threads
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
        self.composites = CompositeJobs(registry, recordings, zone=settings.court_zone)
        self.transcripts = Transcripts(registry.db, registry.clock)
        self.exhibits = Exhibits(registry.db, registry.clock, settings.data_dir)
        self.identity = IdentityChecks(registry.db, registry.clock, settings.data_dir)
        self.signing = Signing(registry.db, registry.clock, settings.data_dir, self.transcripts)
        self.bus = bus
        self.cluster = cluster
        if cluster is not None:
            cluster.on_lease_lost = self._lease_lost
            cluster.on_reconnected = self._restore_seats
        self.settings = settings
        self.draining = False
        # Read by /metrics: frames and bytes forwarded and recorded by all of this process's
        # hearings, WebSockets open and errors sent.
        self.media_counters = MediaCounters()
        self.signaling_counters = SignalingCounters()
        self.heartbeat_s = heartbeat_s
        self.join_timeout_s = join_timeout_s
        self.hearings: dict[str, LiveHearing] = {}
        # Arrivals under way per hearing: a hearing someone is joining is not retired, or
        # they would land in a hearing nobody else reaches.
        self._arriving: collections.Counter[str] = collections.Counter()
        # Hearings being retired here, set when they are.
        self._retiring: dict[str, asyncio.Event] = {}
        self.connections: set[Connection] = set()
        self.services = HearingServices(
            registry=registry, recordings=recordings, transcripts=self.transcripts,
            exhibits=self.exhibits, identity=self.identity, signing=self.signing,
            composites=self.composites, bus=bus,
            data_dir=settings.data_dir,
            ice_servers=[
                RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                for s in settings.ice_servers
            ],
            client_ice_servers=[s.model_dump(exclude_none=True) for s in settings.ice_servers],
            adapt_downlinks=settings.adapt_downlinks,
            media_counters=self.media_counters,
        )
        self._ports: UdpPortRange | None = None
        self._lock = asyncio.Lock()
        # Closing work (departures, retirements): no handler cancels it; `aclose()` waits.
        self._closing = TaskSet("hub closing")
        self.loop_watch = LoopWatch()

    def start(self) -> None:
        """Apply the ICE network settings to this process and its event loop, and watch
        the loop for stalls."""
        self.loop_watch.start()
        restrict_host_addresses(self.settings.ice_host_addresses or None)
        if self.settings.udp_port_range is not None:
            self._ports = UdpPortRange(*self.settings.udp_port_range)
            self._ports.install(asyncio.get_running_loop())

    async def start_transcription(self) -> None:
        """Load the Whisper model once for the process (a missing model stops start-up)."""
        settings = self.settings
        decodes, threads = decode_layout(machine_threads())
        decodes = settings.whisper_decodes or decodes
        threads = settings.whisper_threads or threads

        def build() -> Recognizer:
            return Recognizer(load_model(
                settings.whisper_model, settings.data_dir, device=settings.whisper_device,
                cpu_threads=threads, decodes=decodes))

        self.services.worker = await InferenceWorker.load(build, decodes)

    async def recover_recordings(self) -> None:
        """Finish the files a killed server left behind: everything readable is kept. Files
        of hearings another living process holds are that process's, still being written.

        A hearing whose server died in session (its segment left open) is not left in
        session: it is interrupted (in recess, flagged and audited) until the court resumes
        or closes it. Renders the dead server left half-written are deleted."""
        self.composites.clean_partials(
            older_than_s=0.0 if self.cluster is None else PARTIAL_STALE_S)
        dropped = set(await self.recordings.with_open_segments())
        unfinished = {r.hearing_id for r in await self.recordings.unfinished()}
        for hearing_id in unfinished | dropped:
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

    async def _interrupt(self, hearing_id: uuid.UUID) -> None:
        if await self.registry.interrupt(hearing_id) is not None:
            log.warning("hearing %s was in session when its server stopped: interrupted, in "
                        "recess until the court resumes or closes it", hearing_id)
            await self.bus.publish(str(hearing_id), {"kind": "state",
                                                     "state": HearingState.RECESS.value})

    async def _recover(self, hearing_id: uuid.UUID) -> None:
        """Repair the hearing's unfinished files and end its open segments. A segment left
        open means the process recording it died: a hearing in session is interrupted,
        whichever process finds it (one restarting, or one taking it up after a failover),
        so the court always decides how it goes on."""
        await self._repair(await self.recordings.unfinished(hearing_id))
        if await self.recordings.end_open_segments(hearing_id):
            await self._interrupt(hearing_id)

    async def _repair(self, rows: list[Recording]) -> None:
        for row in rows:
            path = self.recordings.path_of(row)
            repaired: str | None = None
            try:
                written, duration, codecs = await asyncio.to_thread(repair, path)
                outcome = FileOutcome(duration=duration, codecs=",".join(codecs))
                status = RecordingStatus.RECOVERED
                # Beside the file as captured, which the record keeps and hashes too.
                repaired = written.relative_to(self.recordings.data_dir).as_posix()
            except FileNotFoundError:
                # Never created (nothing arrived before the stop): the row leaves the record.
                await self.recordings.file_finished(row.path, FileOutcome(duration=0.0))
                continue
            except RecordingError as e:
                outcome = FileOutcome(duration=0.0, error=f"unrecoverable: {e}")
                status = RecordingStatus.INTERRUPTED
            await self.recordings.file_finished(row.path, outcome, status, repaired=repaired)
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

    async def _take_up(self, hearing_id: uuid.UUID) -> LiveHearing:
        """A hearing goes live here: whoever held it before (a process that died, this one
        before a restart, or this one before everyone left) may have left files unfinished
        and people marked present. Its seats, consultations included, carry on as stored."""
        key = str(hearing_id)
        if self.cluster is not None and await self.cluster.claim(key) != self.cluster.id:
            # The lease passed meanwhile (a restarting process released it after repairing
            # while this arrival waited): the participant reconnects to the holder.
            raise SignalingError("hearing_moved", "the hearing moved to another server; "
                                 "reconnect")
        await self._recover(hearing_id)
        stored = await self.bus.load_seats(key)
        seats = [replace(s, present=False, connection="closed") if s.present else s
                 for s in stored]
        await self.bus.store_seats(key, seats, {s.participant_id: n for n, s in enumerate(seats)})
        # Whoever held it stopped with these people there: their departures were never
        # logged (after the seats are stored away, so that a retried take-up logs none twice).
        for seat in stored:
            if seat.present:
                try:
                    await self.registry.record(
                        hearing_id, "system", "attendance.left",
                        participant_id=seat.participant_id, wall=time.time(),
                        cause="server_restart")
                except Exception:
                    log.exception("hearing %s: %s's departure at the restart could not be "
                                  "audited", key, seat.participant_id)
        hearing = await self.registry.get_hearing(hearing_id)
        live = LiveHearing(hearing, seats, self.services)
        try:
            await live.recording.take_up()
        except Exception:
            log.exception("hearing %s: looking for audio a dead process left untranscribed",
                          key)
        return live

    async def arrive(self, connection: Connection, participant: Participant) -> LiveHearing:
        hearing_id = str(participant.hearing_id)
        while True:
            # A hearing being retired here finishes first (its files, its record): taking it
            # up meanwhile would repair files that are still being finished.
            retiring = self._retiring.get(hearing_id)
            if retiring is not None:
                await retiring.wait()
                continue
            async with self._lock:
                if hearing_id in self._retiring:
                    continue
                live = self.hearings.get(hearing_id)
                if live is None:
                    live = self.hearings[hearing_id] = await self._take_up(
                        participant.hearing_id)
                self.connections.add(connection)
                self._arriving[hearing_id] += 1
            break
        try:
            await live.arrive(connection, participant)
        except BaseException:
            self.connections.discard(connection)
            raise
        finally:
            self._arriving[hearing_id] -= 1
            if not self._arriving[hearing_id]:
                del self._arriving[hearing_id]
                if not live.connections:  # the arrival failed and nobody else is here
                    self._closing.spawn(self._retire(live))
        return live

    async def depart(self, live: LiveHearing, connection: Connection) -> None:
        """Leave the hearing. aiohttp cancels a handler whose client went away, so the
        departure runs as a task of the hub's and completes even then."""
        self.connections.discard(connection)
        await asyncio.shield(self._closing.spawn(self._depart(live, connection)))

    async def _depart(self, live: LiveHearing, connection: Connection) -> None:
        if await live.depart(connection):
            await self._retire(live)

    async def _retire(self, live: LiveHearing) -> None:
        """Nobody is connected: the hearing stops being live here (its seats stay stored)."""
        async with self._lock:
            if (live.connections or self._arriving[live.id]
                    or self.hearings.get(live.id) is not live):
                return
            del self.hearings[live.id]
            retired = self._retiring[live.id] = asyncio.Event()
        try:
            await live.aclose()
            async with self._lock:
                if (live.id not in self.hearings and not live.evicted
                        and self.cluster is not None):
                    await self.cluster.release(live.id)
        finally:
            del self._retiring[live.id]
            retired.set()

    def _lease_lost(self, hearing_id: str) -> None:
        """Another process took the hearing (after a Redis restart both thought it theirs):
        this one lets go, and its participants reconnect to the new holder."""
        live = self.hearings.get(hearing_id)
        if live is None:
            return
        live.evicted = True
        for connection in list(live.connections.values()):
            self._closing.spawn(connection.close(
                CLOSE_HOLDER_LOST, "the hearing moved to another server; reconnect"))

    async def _restore_seats(self) -> None:
        """Redis came back (perhaps empty): write back the seats of the hearings held here."""
        for live in list(self.hearings.values()):
            await live.store(list(live.seats))

    async def seats(self, hearing_id: uuid.UUID) -> list[Seat]:
        """Who is in a hearing right now (every process's participants): empty when not live."""
        live = self.hearings.get(str(hearing_id))
        if live is not None:
            return list(live.seats.values())
        return await self.bus.load_seats(str(hearing_id))

    async def hearing_changed(self, hearing_id: uuid.UUID, state: str) -> None:
        """A hearing changed state through the REST API: the process holding it (this one or
        another) follows as it does the judge's command. A hearing live nowhere that closed
        is sealed here."""
        key = str(hearing_id)
        await self.bus.publish(key, {"kind": "state", "state": state})
        if key in self.hearings:
            return
        if self.cluster is not None and await self.cluster.holder(key) is not None:
            return  # live in another process: it heard this and does the rest (files, seals)
        if state in FINISHED:
            await self.bus.forget(key)
        if state == HearingState.CLOSED.value:
            try:
                await self.services.seal(hearing_id)
            except ExceptionGroup:
                pass  # logged and audited by `seal`; the hearing is closed all the same

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
        await self._closing.finish()
        for live in list(self.hearings.values()):
            await live.aclose()
        self.hearings.clear()
        await self._closing.finish()
        await self.composites.aclose()
        if self.services.worker is not None:
            await self.services.worker.aclose()
        if self._ports is not None:
            self._ports.uninstall()
        restrict_host_addresses(None)
        await self.loop_watch.aclose()

    # -- operations: read by /readyz and /metrics

    @property
    def transcription_ready(self) -> bool:
        """The Whisper model is loaded and its inference thread takes work."""
        return self.services.worker is not None

    @property
    def transcription_counters(self) -> TranscriptionCounters:
        return self.services.transcription_counters

    @property
    def records_stopped(self) -> int:
        """Hearings here whose transcriber failed and is not running again yet."""
        return sum(h.recording.transcript.stopped for h in self.hearings.values())

    @property
    def records_with_gaps(self) -> int:
        """Hearings here whose live record has a gap not yet taken from the recording."""
        return sum(h.recording.transcript.degraded for h in self.hearings.values())

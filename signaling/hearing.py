"""A live hearing in this process: its connected sessions, seats on the bus, and media room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from aiortc import RTCIceServer

from config.logs import PARTICIPANT_ID, hearing_context
from courtrooms.errors import CourtroomsError, InvalidTransition
from courtrooms.exhibits import Exhibits
from courtrooms.lifecycle import HearingAction
from courtrooms.models import Hearing, HearingState, Participant, Role
from courtrooms.recordings import FileOutcome, Recordings
from courtrooms.service import Registry
from media.counters import MediaCounters
from media.peer import ParticipantPeer, PeerEvents
from media.quality import QualityMeter
from media.recording import ParticipantRecorder, RecordingFile
from media.room import MediaRoom
from media.speakers import ActiveSpeaker
from signaling.bus import LiveBus, Seat
from signaling.errors import Forbidden, SignalingError
from signaling.messages import CONSULTATION_COMMANDS
from signaling.transcript import LiveTranscript

log = logging.getLogger(__name__)

CONTROL_ROLES = frozenset({Role.JUDGE.value, Role.CLERK.value})
AUDITED_ACTIONS = {
    "admit": "participant.admitted",
    "remove": "participant.removed",
    "mute": "participant.muted",
    "unmute": "participant.unmuted",
}
REVIEW_COMMANDS = ("permit_review", "revoke_review")
CONSULTING_ROLES = frozenset({Role.DEFENDANT.value, Role.PARTY.value})
COUNSEL_ROLES = frozenset({Role.LAWYER.value})
OBSERVER = Role.OBSERVER.value
LAG_REPORT_S = 2.0
SPEAKERS_WINDOW_S = 0.25
RECORD_LINES = 200
FINISHED = frozenset({HearingState.CLOSED.value, HearingState.CANCELLED.value})


class Connection(PeerEvents, Protocol):
    """What a live hearing needs of a participant's signaling connection."""

    participant_id: str

    def send(self, message: dict[str, Any]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


def hearing_view(hearing: Hearing) -> dict[str, Any]:
    return {
        "id": str(hearing.id),
        "case_number": hearing.case_number,
        "title": hearing.title,
        "kind": hearing.kind.value,
        "state": hearing.state.value,
        "scheduled_start": hearing.scheduled_start.isoformat(),
        "scheduled_end": hearing.scheduled_end.isoformat(),
        "language": hearing.language,
        "auto_admit": hearing.auto_admit,
    }


class LiveHearing:
    """Everything live about one hearing that this process holds."""

    def __init__(
        self,
        hearing: Hearing,
        registry: Registry,
        recordings: Recordings,
        bus: LiveBus,
        ice_servers: list[RTCIceServer],
        client_ice_servers: list[dict[str, Any]],
        on_empty: Callable[[LiveHearing], None],
        on_closed: Callable[[uuid.UUID], Awaitable[None]],
        transcript: Callable[[LiveHearing], LiveTranscript],
        exhibits: Exhibits,
        own: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        *,
        media_counters: MediaCounters | None = None,
    ) -> None:
        self.id = str(hearing.id)
        self.hearing_uuid = hearing.id
        self.info = hearing_view(hearing)
        self.registry = registry
        self.recordings = recordings
        self.bus = bus
        self.media = MediaRoom(self.id, media_counters)
        self.recording_dir = Path("recordings") / self.id
        self._segment: tuple[float, int] | None = None  # (timeline origin, index) while recording
        self._recording_lock = asyncio.Lock()
        self.connections: dict[str, Connection] = {}
        self._ice_servers = ice_servers
        self._client_ice_servers = client_ice_servers
        self._on_empty = on_empty
        self._on_closed = on_closed
        self._lock = asyncio.Lock()
        self._unlisten = bus.listen(self.id, self._on_bus)
        self._tasks: set[asyncio.Task[Any]] = set()
        # Recording starts and stops: awaited, never cancelled, or a stop cut short would
        # leave its files unfinished.
        self._state_tasks: set[asyncio.Task[None]] = set()
        # The close (finish the files, drain the record, seal both) belongs to the hub: it
        # must outlive the last participant hanging up and this hearing's retirement.
        self._own = own
        self._finishing: asyncio.Task[None] | None = None
        self.transcript = transcript(self)
        self._transcript_started = False
        self._lag_reporter: asyncio.Task[None] | None = None
        self.exhibits = exhibits
        self.showing: dict[str, Any] | None = None  # the exhibit on the stage, `exhibit` message
        # Local views of seats, for filtering fan-out without a lookup per message.
        self._roles: dict[str, str] = {}
        self._admitted: set[str] = set()
        self._speakers = ActiveSpeaker()
        self._quality = QualityMeter()
        self._monitor: asyncio.Task[None] | None = None
        # Another process took the hearing over: leave its seats to that process.
        self.evicted = False

    @property
    def state(self) -> str:
        return str(self.info["state"])

    @property
    def connected_roles(self) -> list[str]:
        """The role of each participant connected to this process (read by /metrics)."""
        return [role for pid in self.connections if (role := self._roles.get(pid)) is not None]

    # -- bus ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, context=hearing_context(self.id))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("hearing %s task failed", self.id, exc_info=task.exception())

    def _on_bus(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "client":
            target = event.get("to")
            admitted_only = event.get("audience") == "admitted"
            court_message = event.get("court_message")
            for pid, connection in list(self.connections.items()):
                if target is not None and target != pid:
                    continue
                if admitted_only and pid not in self._admitted:
                    continue
                if court_message is not None and self._roles.get(pid) in CONTROL_ROLES:
                    connection.send(court_message)
                else:
                    connection.send(event["message"])
        elif kind == "seat":
            self._spawn(self._apply_seat(event["participant_id"], event.get("effect")))
        elif kind == "state":
            state = event["state"]
            self.info["state"] = state
            if state in FINISHED:
                if self._finishing is None:
                    self._finishing = self._own(self._finish(state))
            else:
                task = asyncio.create_task(self._apply_state(state),
                                           context=hearing_context(self.id))
                self._state_tasks.add(task)
                task.add_done_callback(self._state_tasks.discard)
                task.add_done_callback(self._task_done)

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Send to every admitted participant of the hearing, in every process: what is said
        and shown in the hearing does not reach the lobby (a witness waits outside)."""
        await self.bus.publish(
            self.id, {"kind": "client", "to": None, "audience": "admitted", "message": message}
        )

    async def _broadcast(self, message: dict[str, Any], to: str | None = None) -> None:
        await self.bus.publish(self.id, {"kind": "client", "to": to, "message": message})

    @staticmethod
    def _participants_message(seats: list[Seat], court: bool) -> dict[str, Any]:
        """Observers (supervision) are listed to the judge and clerk only."""
        return {"type": "participants", "participants": [
            s.public() for s in seats if court or s.role != OBSERVER
        ]}

    async def broadcast_participants(self) -> None:
        seats = await self.bus.seats(self.id)
        await self.bus.publish(self.id, {
            "kind": "client", "to": None,
            "message": self._participants_message(seats, court=False),
            "court_message": self._participants_message(seats, court=True),
        })
        await self._broadcast(self._consultations_message(seats))

    @staticmethod
    def _consultations_message(seats: list[Seat]) -> dict[str, Any]:
        requests = [
            {"participant_id": s.participant_id, "with": s.consultation["with"],
             "since": s.consultation["since"]}
            for s in seats if s.consultation is not None and s.consultation["state"] == "requested"
        ]
        active: dict[str, dict[str, Any]] = {}
        for s in seats:
            if s.consulting is not None:
                entry = active.setdefault(s.consulting, {
                    "id": s.consulting, "participants": [],
                    "started_at": s.consultation["since"] if s.consultation else None,
                })
                entry["participants"].append(s.participant_id)
        return {"type": "consultations", "requests": requests, "active": list(active.values())}

    async def _seat_changed(self, seat: Seat, effect: str | None = None) -> None:
        await self._seats_changed([seat], effect)

    async def _seats_changed(self, seats: list[Seat], effect: str | None = None) -> None:
        """Apply the seats' changes, then tell everyone once (both sides of a consultation
        change together: nobody should see one of them in it alone)."""
        for seat in seats:
            await self.bus.publish(
                self.id, {"kind": "seat", "participant_id": seat.participant_id, "effect": effect}
            )
        await self.broadcast_participants()

    async def _apply_seat(self, participant_id: str, effect: str | None) -> None:
        """Local consequences of a seat change, for a participant connected to this process."""
        PARTICIPANT_ID.set(participant_id)  # this task's own context: it acts for them
        connection = self.connections.get(participant_id)
        seat = await self.bus.seat(self.id, participant_id)
        if connection is None or seat is None:
            return
        if seat.admitted:
            self._admitted.add(participant_id)
        else:
            self._admitted.discard(participant_id)
        self.media.set_muted(participant_id, seat.muted)
        was_consulting = participant_id in self.media.groups
        self.media.set_group(participant_id, seat.consulting)
        if seat.consulting is not None and not was_consulting:
            self.transcript.pause(participant_id)  # what they say from now on is private
        if effect == "admitted":
            connection.send({"type": "admitted"})
            await self._send_hearing_record(connection)
            await self.start_media(connection)
        elif effect == "removed":
            connection.send({"type": "removed", "reason": "the court removed you"})
            await self.media.remove(participant_id)
            await connection.close(4001, "removed by the court")

    async def _apply_state(self, state: str) -> None:
        if state == HearingState.IN_SESSION.value:
            await self._start_recording()
        elif state == HearingState.RECESS.value:
            await self._stop_recording()

    async def _finish(self, state: str) -> None:
        """The hearing closed or was cancelled: finish its files and its record, seal them
        (which starts the review composite), and send everyone away."""
        if self._state_tasks:
            await asyncio.gather(*self._state_tasks, return_exceptions=True)
        await self._stop_recording()
        await self.media.aclose()
        await self._close_transcript()
        if state == HearingState.CLOSED.value:
            await self._on_closed(self.hearing_uuid)
        for connection in list(self.connections.values()):
            await connection.close(4000, f"the hearing is {state}")
        await self.bus.forget(self.id)

    # -- recording ------------------------------------------------------------------------

    async def _start_recording(self) -> None:
        async with self._recording_lock:
            if self._segment is not None or self.state != HearingState.IN_SESSION.value:
                return
            self._segment = await self.recordings.begin_segment(self.hearing_uuid, time.time())
            origin, index = self._segment
            await self.media.start_recording(
                self.recordings.data_dir / self.recording_dir, origin, index, self
            )
            if not self._transcript_started:
                await self.transcript.start()
                self._transcript_started = True
            self.transcript.origin = origin
            self.transcript.feeding = True
            if self._lag_reporter is None:
                self._lag_reporter = asyncio.create_task(
                    self._report_lag(), name=f"lag-{self.id[:8]}", context=hearing_context(self.id)
                )

    async def _stop_recording(self) -> None:
        async with self._recording_lock:
            if self._segment is None:
                return
            origin, index = self._segment
            self._segment = None
            self.transcript.feeding = False
            stopped = time.time()
            await self.media.stop_recording()
            await self.recordings.end_segment(self.hearing_uuid, index, stopped - origin)

    async def _report_lag(self) -> None:
        """The recognizer's lag, for the judge and clerk, while the record is being taken."""
        while True:
            await asyncio.sleep(LAG_REPORT_S)
            if self.transcript.feeding:
                await self._tell_court({"type": "transcription", **self.transcript.stats()})

    async def _close_transcript(self) -> None:
        if self._lag_reporter is not None:
            self._lag_reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_reporter
            self._lag_reporter = None
        if self._transcript_started:
            self._transcript_started = False
            await self.transcript.aclose()

    def _relative(self, path: Path) -> str:
        return (self.recording_dir / path.name).as_posix()

    async def recording_started(self, recorder: ParticipantRecorder) -> None:
        await self.recordings.file_started(
            self.hearing_uuid, uuid.UUID(recorder.participant_id), recorder.segment,
            self._relative(recorder.path), recorder.offset,
        )

    async def recording_finished(self, file: RecordingFile) -> None:
        await self.recordings.file_finished(
            self._relative(file.path),
            FileOutcome(duration=file.duration, codecs=",".join(file.codecs), error=file.error),
        )

    def recording_failed(self, participant_id: str, message: str) -> None:
        """A file could not be written (a full disk): the court must know; the hearing goes on."""
        self._spawn(self._alert_recording_failed(participant_id, message))

    async def _alert_recording_failed(self, participant_id: str, message: str) -> None:
        # Named: the court's console shows the message, and a file name says nothing of whose.
        seat = await self.bus.seat(self.id, participant_id)
        whose = seat.name if seat is not None else participant_id
        await self._tell_court({
            "type": "alert", "code": "recording_failed", "participant_id": participant_id,
            "message": f"recording failed for {whose}: {message}",
        })

    async def _tell_court(self, message: dict[str, Any]) -> None:
        """Send to the judge and the clerk only."""
        for seat in await self.bus.seats(self.id):
            if seat.role in CONTROL_ROLES:
                await self._broadcast(message, to=seat.participant_id)

    # -- arrival and departure ------------------------------------------------------------

    async def arrive(self, connection: Connection, participant: Participant) -> Seat:
        pid = connection.participant_id
        async with self._lock:
            previous = self.connections.get(pid)
            self.connections[pid] = connection
            if previous is not None and previous is not connection:
                previous.send({"type": "bye", "reason": "you joined from another connection"})
                self._spawn(previous.close(4002, "replaced by a new connection"))
            seat = await self.bus.seat(self.id, pid)
            if seat is None:
                seat = Seat(
                    participant_id=pid,
                    name=participant.name,
                    role=participant.role.value,
                    location=participant.location.value,
                    admitted=bool(self.info["auto_admit"])
                    or participant.role.value in CONTROL_ROLES
                    or participant.role.value == OBSERVER,
                )
            seat = replace(seat, present=True, connection="new", hand_raised=False,
                           screen_sharing=False)
            await self.bus.put_seat(self.id, seat)
            self._roles[pid] = seat.role
            if seat.admitted:
                self._admitted.add(pid)
        seats = await self.bus.seats(self.id)
        connection.send(
            {
                "type": "welcome",
                "protocol": 1,
                "participant": seat.public(),
                "hearing": self.info,
                "participants": self._participants_message(
                    seats, court=seat.role in CONTROL_ROLES)["participants"],
            }
        )
        # Before any offer: the client builds its RTCPeerConnection with these servers.
        connection.send({"type": "config", "ice_servers": self._client_ice_servers})
        if seat.admitted:
            await self._send_hearing_record(connection)
        await self.broadcast_participants()
        self._start_monitor()
        if seat.admitted:
            await self.start_media(connection)
        return seat

    async def depart(self, connection: Connection) -> None:
        pid = connection.participant_id
        async with self._lock:
            if self.connections.get(pid) is not connection:
                return  # already replaced by a newer connection of the same participant
            del self.connections[pid]
            self._admitted.discard(pid)
            await self.media.remove(pid)
            self.transcript.leave(pid)
            if not self.evicted and await self.bus.seat(self.id, pid) is not None:
                await self.bus.update_seat(
                    self.id, pid, present=False, connection="closed", hand_raised=False,
                    screen_sharing=False,
                )
        await self.broadcast_participants()
        if not self.connections:
            self._on_empty(self)

    async def start_media(self, connection: Connection) -> None:
        """(Re)start the participant's peer connection; an existing one is replaced."""
        seat = await self.bus.seat(self.id, connection.participant_id)
        if seat is None or not seat.admitted or self.state in FINISHED:
            return
        if self.connections.get(connection.participant_id) is not connection:
            return
        # Observers only watch: nothing of theirs is received, recorded or transcribed.
        publish = seat.role != OBSERVER
        peer = ParticipantPeer(connection.participant_id, connection, self._ice_servers,
                               publish=publish)
        await self.media.add(peer)
        peer.set_muted(seat.muted)
        if publish:
            self.transcript.listen(peer, seat.name, seat.role)
        if self.state == HearingState.IN_SESSION.value:
            await self._start_recording()  # a hearing already in session when we took it up

    def peer(self, participant_id: str) -> ParticipantPeer | None:
        return self.media.peers.get(participant_id)

    async def connection_state(self, participant_id: str, state: str) -> None:
        if await self.bus.seat(self.id, participant_id) is not None:
            await self.bus.update_seat(self.id, participant_id, connection=state)
            await self.broadcast_participants()

    # -- participants' own actions --------------------------------------------------------

    async def set_self_muted(self, participant_id: str, muted: bool) -> None:
        seat = await self.bus.update_seat(self.id, participant_id, muted_self=muted)
        await self._seat_changed(seat)

    async def set_hand(self, participant_id: str, raised: bool) -> None:
        seat = await self.bus.update_seat(self.id, participant_id, hand_raised=raised)
        await self._seat_changed(seat)

    async def set_camera_off(self, participant_id: str, off: bool) -> None:
        seat = await self.bus.update_seat(self.id, participant_id, camera_off=off)
        await self._seat_changed(seat)

    async def set_screen_sharing(self, participant_id: str, sharing: bool) -> None:
        seat = await self.bus.update_seat(self.id, participant_id, screen_sharing=sharing)
        await self._seat_changed(seat)
        # The video changed source: subscribers and the recording need a fresh keyframe.
        peer = self.media.peers.get(participant_id)
        if peer is not None:
            peer.publications["video"].want_keyframe()

    # -- private consultation -------------------------------------------------------------

    async def request_consultation(self, seat: Seat, partner_id: str | None) -> None:
        if partner_id is None:
            raise SignalingError("invalid", "consult request needs `with`", field="with")
        partner = await self.bus.seat(self.id, partner_id)
        self._check_consultation(seat, partner)
        assert partner is not None
        if seat.consultation is not None:
            raise SignalingError("consultation_refused",
                                 "you have already asked for or are in a consultation")
        request = {"state": "requested", "with": partner_id, "id": None,
                   "since": self.registry.clock().isoformat()}
        await self._seat_changed(await self.bus.update_seat(
            self.id, seat.participant_id, consultation=request))

    def _check_consultation(self, seat: Seat, partner: Seat | None) -> None:
        if partner is None or partner.participant_id == seat.participant_id:
            raise SignalingError("consultation_refused",
                                 "the other side of a consultation must be another participant "
                                 "of this hearing", field="with")
        roles = {seat.role, partner.role}
        if not (roles & COUNSEL_ROLES and roles & CONSULTING_ROLES):
            raise SignalingError(
                "consultation_refused",
                "a private consultation is between a lawyer and a defendant or party",
                field="with")
        if not (partner.present and partner.admitted):
            raise SignalingError("consultation_refused",
                                 f"{partner.name} is not in the hearing now", field="with")
        if partner.consulting is not None:
            raise SignalingError("consultation_refused",
                                 f"{partner.name} is already in a consultation", field="with")

    async def end_consultation(self, seat: Seat, actor: str) -> None:
        """End (or withdraw) `seat`'s consultation: both sides return to the hearing."""
        c = seat.consultation
        if c is None:
            raise SignalingError("consultation_refused", f"{seat.name} is not in a consultation")
        members = [seat.participant_id]
        if c["state"] == "active":
            members += [s.participant_id for s in await self.bus.seats(self.id)
                        if s.consulting == c["id"] and s.participant_id != seat.participant_id]
        await self._seats_changed([
            await self.bus.update_seat(self.id, pid, consultation=None) for pid in members
        ])
        if c["state"] == "active":
            await self.registry.record(self.hearing_uuid, actor, "consultation.ended",
                                       consultation_id=c["id"], participant_ids=members)

    async def _grant_consultation(self, requester: Seat, actor: str) -> None:
        c = requester.consultation
        if c is None or c["state"] != "requested":
            raise SignalingError("consultation_refused",
                                 f"{requester.name} has not asked for a consultation",
                                 field="participant_id")
        partner = await self.bus.seat(self.id, c["with"])
        self._check_consultation(requester, partner)
        assert partner is not None
        cid = uuid.uuid4().hex[:12]
        since = self.registry.clock().isoformat()
        await self._seats_changed([
            await self.bus.update_seat(
                self.id, pid, hand_raised=False,
                consultation={"state": "active", "with": other, "id": cid, "since": since})
            for pid, other in ((requester.participant_id, partner.participant_id),
                               (partner.participant_id, requester.participant_id))
        ])
        await self.registry.record(
            self.hearing_uuid, actor, "consultation.started", consultation_id=cid,
            participant_ids=[requester.participant_id, partner.participant_id])

    # -- exhibits -------------------------------------------------------------------------

    async def present(self, seat: Seat, exhibit_id: str | None, page: int) -> None:
        """Show an exhibit to everyone in the hearing, turn its page, or stop showing it."""
        if seat.consulting is not None:
            raise SignalingError("forbidden", "return from the consultation to present exhibits")
        if exhibit_id is None:
            if self.showing is None:
                return
            self.showing = None
            await self.broadcast(self._exhibit_message())
            return
        try:
            exhibit = await self.exhibits.get(self.hearing_uuid, uuid.UUID(exhibit_id))
        except (ValueError, CourtroomsError) as e:
            raise SignalingError("unknown_exhibit", f"no exhibit {exhibit_id} in this hearing",
                                 field="exhibit_id") from e
        if page > exhibit.pages:
            raise SignalingError("unknown_exhibit",
                                 f"the exhibit has {exhibit.pages} page(s)", field="page")
        same = self.showing is not None and self.showing["exhibit"]["id"] == exhibit_id
        self.showing = {
            "exhibit": {
                "id": str(exhibit.id), "title": exhibit.title, "media_type": exhibit.media_type,
                "pages": exhibit.pages, "sha256": exhibit.sha256,
                "participant_id": str(exhibit.participant_id) if exhibit.participant_id else None,
            },
            "page": page, "presenter_id": seat.participant_id,
        }
        if not same:
            await self.registry.record(
                self.hearing_uuid, f"participant:{seat.participant_id}", "exhibit.presented",
                exhibit_id=exhibit_id, sha256=exhibit.sha256)
        await self.broadcast(self._exhibit_message())

    def _exhibit_message(self) -> dict[str, Any]:
        if self.showing is None:
            return {"type": "exhibit", "exhibit": None, "page": None, "presenter_id": None}
        return {"type": "exhibit", **self.showing}

    async def _send_hearing_record(self, connection: Connection) -> None:
        """What an admitted participant sees on arrival: the record so far, the exhibit shown."""
        _, lines = await self.transcript.transcripts.of_hearing(self.hearing_uuid)
        lines = lines[-RECORD_LINES:]
        people: dict[str, tuple[str, str]] = {
            s.participant_id: (s.name, s.role) for s in await self.bus.seats(self.id)
        }
        if any(str(line.participant_id) not in people for line in lines):
            # Spoke before this process took the hearing up: their seat is not here.
            hearing = await self.registry.get_hearing(self.hearing_uuid)
            people.update({str(p.id): (p.name, p.role.value) for p in hearing.participants})
        record = []
        for line in lines:
            name, role = people.get(str(line.participant_id), ("", ""))
            record.append({
                "type": "caption", "final": True, "participant_id": str(line.participant_id),
                "name": name, "role": role,
                "start": round(line.start, 3), "end": round(line.end, 3), "text": line.text,
                "segment_id": str(line.id),
            })
        connection.send({"type": "record", "lines": record})
        connection.send(self._exhibit_message())

    # -- who speaks, how connections fare --------------------------------------------------

    def _start_monitor(self) -> None:
        if self._monitor is None:
            self._monitor = asyncio.create_task(self._watch(), name=f"monitor-{self.id[:8]}",
                                                context=hearing_context(self.id))

    async def _watch(self) -> None:
        """The active speaker for everyone (a few times a second) and connection quality for
        the court (every 2 s)."""
        loop = asyncio.get_running_loop()
        next_quality = loop.time() + LAG_REPORT_S
        while True:
            await asyncio.sleep(SPEAKERS_WINDOW_S)
            try:
                await self._update_speakers(loop.time())
                if loop.time() >= next_quality:
                    next_quality = loop.time() + LAG_REPORT_S
                    await self._report_quality()
            except Exception:
                log.exception("hearing %s: monitoring failed", self.id)

    async def _update_speakers(self, now: float) -> None:
        levels: dict[str, float] = {}
        for pid, peer in self.media.peers.items():
            level = peer.audio_tap.take_peak()
            audio = peer.publications["audio"]
            if peer.publish and not audio.muted and not audio.private:
                levels[pid] = level
        changed = self._speakers.update(levels, now)
        if changed is not None:
            await self.broadcast({"type": "speakers", "active": changed.active,
                                  "speaking": list(changed.speaking)})

    async def _report_quality(self) -> None:
        peers = list(self.media.peers.values())
        self._quality.forget(peers)
        if not peers:
            return
        qualities = [(await self._quality.sample(peer)).public() for peer in peers]
        await self._tell_court({"type": "quality", "participants": qualities})

    # -- the court's commands -------------------------------------------------------------

    async def command(self, actor: Seat, action: str, target_id: str | None) -> None:
        if actor.role not in CONTROL_ROLES:
            raise Forbidden(f"only the judge or the clerk may {action}")
        if action in ("open", "start", "recess", "resume", "close"):
            if target_id is not None:
                raise SignalingError(
                    "invalid", f"{action} applies to the hearing, not a participant",
                    field="participant_id",
                )
            await self._transition(actor, HearingAction(action))
            return
        if target_id is None:
            raise SignalingError("invalid", f"{action} needs a participant_id",
                                 field="participant_id")
        target = await self.bus.seat(self.id, target_id)
        if target is None:
            raise SignalingError("unknown_participant",
                                 f"participant {target_id} has not joined this hearing",
                                 field="participant_id")
        actor_ref = f"participant:{actor.participant_id}"
        if action in CONSULTATION_COMMANDS:
            if action == "grant_consultation":
                await self._grant_consultation(target, actor_ref)
            elif action == "end_consultation":
                if target.consulting is None:
                    raise SignalingError("consultation_refused",
                                         f"{target.name} is not in a consultation",
                                         field="participant_id")
                await self.end_consultation(target, actor_ref)
            else:
                if target.consultation is None or target.consultation["state"] != "requested":
                    raise SignalingError("consultation_refused",
                                         f"{target.name} has not asked for a consultation",
                                         field="participant_id")
                await self.end_consultation(target, actor_ref)
            return
        if action in REVIEW_COMMANDS:
            if actor.role != Role.JUDGE.value:
                raise Forbidden("only the judge may permit reviewing the recordings")
            await self.recordings.permit_review(
                self.hearing_uuid, uuid.UUID(target_id), action == "permit_review", actor_ref
            )
            return
        effect: str | None = None
        if action == "admit":
            if target.admitted:
                return
            target = replace(target, admitted=True)
            effect = "admitted"
        elif action == "remove":
            if target.role in CONTROL_ROLES and actor.role != Role.JUDGE.value:
                raise Forbidden("only the judge may remove the judge or the clerk")
            if target.participant_id == actor.participant_id:
                raise SignalingError("invalid", "you cannot remove yourself; leave instead")
            if target.consultation is not None:
                await self.end_consultation(target, actor_ref)
                target = await self.bus.seat(self.id, target_id) or target
            target = replace(target, admitted=False, hand_raised=False)
            effect = "removed"
        elif action in ("mute", "unmute"):
            target = replace(target, muted_by_court=action == "mute")
        await self.bus.put_seat(self.id, target)
        await self.registry.record(
            self.hearing_uuid, actor_ref, AUDITED_ACTIONS[action],
            participant_id=target.participant_id,
        )
        await self._seat_changed(target, effect)

    async def _transition(self, actor: Seat, action: HearingAction) -> None:
        try:
            hearing = await self.registry.transition(
                self.hearing_uuid, action, f"participant:{actor.participant_id}"
            )
        except InvalidTransition as e:
            raise SignalingError("invalid_transition", e.message) from e
        except CourtroomsError as e:
            raise SignalingError(e.code, e.message) from e
        await self.announce_state(hearing.state.value)

    async def announce_state(self, state: str) -> None:
        """Tell every participant (in every process) that the hearing changed state."""
        self.info["state"] = state
        await self._broadcast({"type": "hearing", "state": state})
        await self.bus.publish(self.id, {"kind": "state", "state": state})

    async def aclose(self) -> None:
        self._unlisten()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        while self._state_tasks:
            await asyncio.gather(*self._state_tasks, return_exceptions=True)
        if self._finishing is not None:
            # Waited for, not cancelled: the hub owns it (and logs its failure).
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finishing)
        await self._stop_recording()
        await self.media.aclose()
        await self._close_transcript()


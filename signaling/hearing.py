"""A live hearing in this process: its connected sessions, seats on the bus, and media room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from aiortc import RTCIceServer

from courtrooms.errors import CourtroomsError, InvalidTransition
from courtrooms.lifecycle import HearingAction
from courtrooms.models import Hearing, HearingState, Participant, Role
from courtrooms.recordings import FileOutcome, Recordings
from courtrooms.service import Registry
from media.peer import ParticipantPeer, PeerEvents
from media.recording import ParticipantRecorder, RecordingFile
from media.room import MediaRoom
from signaling.bus import LiveBus, Seat
from signaling.errors import Forbidden, SignalingError
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
LAG_REPORT_S = 2.0
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
    ) -> None:
        self.id = str(hearing.id)
        self.hearing_uuid = hearing.id
        self.info = hearing_view(hearing)
        self.registry = registry
        self.recordings = recordings
        self.bus = bus
        self.media = MediaRoom(self.id)
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
        self.transcript = transcript(self)
        self._transcript_started = False
        self._lag_reporter: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return str(self.info["state"])

    # -- bus ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
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
            for pid, connection in list(self.connections.items()):
                if target is None or target == pid:
                    connection.send(event["message"])
        elif kind == "seat":
            self._spawn(self._apply_seat(event["participant_id"], event.get("effect")))
        elif kind == "state":
            self.info["state"] = event["state"]
            self._spawn(self._apply_state(event["state"]))

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Send to every participant of the hearing, in every process."""
        await self._broadcast(message)

    async def _broadcast(self, message: dict[str, Any], to: str | None = None) -> None:
        await self.bus.publish(self.id, {"kind": "client", "to": to, "message": message})

    async def broadcast_participants(self) -> None:
        seats = await self.bus.seats(self.id)
        await self._broadcast(
            {"type": "participants", "participants": [s.public() for s in seats]}
        )

    async def _seat_changed(self, seat: Seat, effect: str | None = None) -> None:
        await self.bus.publish(
            self.id, {"kind": "seat", "participant_id": seat.participant_id, "effect": effect}
        )
        await self.broadcast_participants()

    async def _apply_seat(self, participant_id: str, effect: str | None) -> None:
        """Local consequences of a seat change, for a participant connected to this process."""
        connection = self.connections.get(participant_id)
        seat = await self.bus.seat(self.id, participant_id)
        if connection is None or seat is None:
            return
        self.media.set_muted(participant_id, seat.muted)
        if effect == "admitted":
            connection.send({"type": "admitted"})
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
        elif state in FINISHED:
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
                self._lag_reporter = asyncio.create_task(self._report_lag(),
                                                         name=f"lag-{self.id[:8]}")

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
        alert = {"type": "alert", "code": "recording_failed", "participant_id": participant_id,
                 "message": f"recording failed: {message}"}
        self._spawn(self._tell_court(alert))

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
                    or participant.role.value in CONTROL_ROLES,
                )
            seat = replace(seat, present=True, connection="new", hand_raised=False)
            await self.bus.put_seat(self.id, seat)
        connection.send(
            {
                "type": "welcome",
                "protocol": 1,
                "participant": seat.public(),
                "hearing": self.info,
                "participants": [s.public() for s in await self.bus.seats(self.id)],
            }
        )
        # Before any offer: the client builds its RTCPeerConnection with these servers.
        connection.send({"type": "config", "ice_servers": self._client_ice_servers})
        await self.broadcast_participants()
        if seat.admitted:
            await self.start_media(connection)
        return seat

    async def depart(self, connection: Connection) -> None:
        pid = connection.participant_id
        async with self._lock:
            if self.connections.get(pid) is not connection:
                return  # already replaced by a newer connection of the same participant
            del self.connections[pid]
            await self.media.remove(pid)
            self.transcript.leave(pid)
            if await self.bus.seat(self.id, pid) is not None:
                await self.bus.update_seat(
                    self.id, pid, present=False, connection="closed", hand_raised=False
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
        peer = ParticipantPeer(connection.participant_id, connection, self._ice_servers)
        await self.media.add(peer)
        peer.set_muted(seat.muted)
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
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self._stop_recording()
        await self.media.aclose()
        await self._close_transcript()


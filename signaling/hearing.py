"""A live hearing in the process that holds it: the one owner of its seats, connections and
media. Every change of a seat goes through `update()`, which re-derives the routing of all
media from the seats (`signaling.routing`), stores the seats on the bus, and sends the roster.

Its concerns live beside it: `consultation` (private consultations), `court` (the court's
commands and their consequences, who is admitted on arrival), `identity` (identity checks),
`attendance` (the join and departure log), `recording` (segments, files, the live record,
closing), `monitor` (the active speaker, connection quality), `stage` (exhibits, the record so
far on arrival).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol

from config.logs import hearing_context
from courtrooms.models import (
    CONTROL_ROLES,
    FINISHED_STATES,
    Hearing,
    HearingState,
    Participant,
    Role,
)
from media.peer import ParticipantPeer, PeerEvents
from media.room import MediaRoom
from signaling.attendance import AttendanceLog
from signaling.consultation import Consultations
from signaling.court import CourtCommands
from signaling.errors import SignalingError
from signaling.identity import IdentityDesk
from signaling.limits import (
    ARRIVALS_BURST,
    ARRIVALS_PER_S,
    MEDIA_RESTARTS_BURST,
    MEDIA_RESTARTS_PER_S,
    Coalesced,
    TokenBucket,
)
from signaling.monitor import Monitor
from signaling.recording import HearingRecording
from signaling.routing import route
from signaling.seats import (
    OBSERVER,
    Seat,
    consultations_message,
    expected_view,
    hearing_view,
    participants_message,
    seat_party,
)
from signaling.services import HearingServices
from signaling.stage import Stage
from signaling.tasks import TaskSet

log = logging.getLogger(__name__)


FINISHED = frozenset(s.value for s in FINISHED_STATES)
ROSTER_INTERVAL_S = 0.1
# Seats a write did not store are written again after this, doubling while it keeps failing.
STORE_RETRY_S = (0.5, 10.0)


class Connection(PeerEvents, Protocol):
    """What a live hearing needs of a participant's signaling connection."""

    participant_id: str
    device: str | None  # the browser's device and session ids, when it sent them

    def send(self, message: dict[str, Any]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    @property
    def departure_cause(self) -> str:
        """Why it ended (for the attendance log), once it has."""


class LiveHearing:
    """Everything live about one hearing that this process holds."""

    def __init__(self, hearing: Hearing, seats: list[Seat], services: HearingServices) -> None:
        self.id = str(hearing.id)
        self.hearing_uuid = hearing.id
        self.info = hearing_view(hearing)
        self.services = services
        self.registry = services.registry
        # The seats as taken up from the bus: nobody is connected to this process yet.
        self.seats: dict[str, Seat] = {s.participant_id: s for s in seats}
        self.connections: dict[str, Connection] = {}
        self.media = MediaRoom(self.id, services.media_counters)
        self.context = hearing_context(self.id)
        # Tasks cancelled when the hearing is retired, and tasks it waits for (recording
        # starts and stops, the close: cut short, they would leave files unfinished).
        self.tasks = TaskSet(f"hearing {self.id}")
        self.kept = TaskSet(f"hearing {self.id} (kept)")
        self.attendance = AttendanceLog(self)
        self.recording = HearingRecording(self)
        self.consultations = Consultations(self)
        self.court = CourtCommands(self)
        self.identity = IdentityDesk(self)
        self.monitor = Monitor(self)
        self.stage = Stage(self)
        self._finishing = False
        self._arrivals = asyncio.Lock()  # a rejoin never interleaves with its own departure
        # Per participant, not per connection: a rejoin must not bring a fresh allowance.
        self._rejoins: dict[str, TokenBucket] = {}
        self._restarts: dict[str, TokenBucket] = {}
        # However fast seats change (a lobby flood of raised hands), everyone gets at most one
        # roster per interval, and always the latest.
        self.send_roster = Coalesced(ROSTER_INTERVAL_S, self._send_roster)
        # Another process took the hearing over: leave its seats to that process.
        self.evicted = False
        # Seats changed and not yet written to the bus, and the one write under way (`store`).
        self._unstored: set[str] = set()
        self._storing = asyncio.Lock()
        self._store_retry: asyncio.Task[None] | None = None
        self._store_failures = 0
        self._unlisten = services.bus.listen(self.id, self._on_bus)
        self.media.apply(route(self.seats.values()))

    @property
    def state(self) -> str:
        return str(self.info["state"])

    @property
    def connected_roles(self) -> list[str]:
        """The role of each participant connected to this process (read by /metrics)."""
        return [self.seats[pid].role for pid in self.connections if pid in self.seats]

    # -- the seats ------------------------------------------------------------------------

    async def update(self, *seats: Seat) -> None:
        """The one way seats change: re-route the media, store the seats, tell everyone once
        (both sides of a consultation change together: nobody sees one of them in it alone)."""
        for seat in seats:
            self.seats[seat.participant_id] = seat
        self.reroute()
        await self.store(seat.participant_id for seat in seats)
        self.send_roster()

    async def store(self, changed: Iterable[str]) -> None:
        """Write the changed seats to the bus as they are now, one write at a time. Concurrent
        writes (each on its own Redis connection) may land in any order: an older seat landing
        last would be what the next holder takes up after a crash (a consultation forgotten,
        its pair before the court). A write takes every seat changed so far: returning, all of
        `changed` is stored."""
        self._unstored.update(changed)
        async with self._storing:
            if self.evicted or not self._unstored:
                return
            pids, self._unstored = self._unstored, set()
            order = {pid: n for n, pid in enumerate(self.seats)}
            seats = [self.seats[p] for p in pids if p in self.seats]
            if await self.services.bus.store_seats(self.id, seats, order):
                self._store_failures = 0
                return
            # Not stored (Redis slow or away): written with the next change or, if none comes,
            # shortly; never left as they were.
            self._unstored |= pids
            self._store_failures += 1
            if self._store_retry is None:
                first, most = STORE_RETRY_S
                delay = min(most, first * 2 ** (self._store_failures - 1))
                self._store_retry = self.tasks.spawn(
                    self._store_again(delay), name=f"store-seats-{self.id[:8]}",
                    context=self.context)

    async def _store_again(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._store_retry = None
        await self.store(())

    def reroute(self) -> None:
        """Apply the routing the seats call for; audio leaving the record ends the speaker's
        utterance there (what follows is not heard by the court)."""
        before = self.media.routing.on_record
        routing = route(self.seats.values())
        self.media.apply(routing)
        for pid, kind in before - routing.on_record:
            if kind == "audio":
                self.recording.transcript.pause(pid)

    def _send_roster(self) -> None:
        seats = list(self.seats.values())
        court, others = participants_message(seats, True), participants_message(seats, False)
        consultations = consultations_message(seats)
        for pid, connection in self.connections.items():
            seat = self.seats.get(pid)
            connection.send(court if seat is not None and seat.role in CONTROL_ROLES
                            else others)
            connection.send(consultations)

    # -- messages -------------------------------------------------------------------------

    def broadcast(self, message: dict[str, Any], *, witnesses: bool = True) -> None:
        """Send to every admitted participant: what is said and shown in the hearing does not
        reach the lobby (a witness waits outside). Without `witnesses`, not to witnesses
        either (the record's settled lines may be testimony from before their call-in)."""
        for pid, connection in list(self.connections.items()):
            seat = self.seats.get(pid)
            if (seat is not None and seat.admitted
                    and (witnesses or seat.role != Role.WITNESS.value)):
                connection.send(message)

    def tell_court(self, message: dict[str, Any]) -> None:
        """Send to the judge and the clerk only."""
        for pid, connection in list(self.connections.items()):
            seat = self.seats.get(pid)
            if seat is not None and seat.role in CONTROL_ROLES:
                connection.send(message)

    def _on_bus(self, event: dict[str, Any]) -> None:
        if event.get("kind") == "state":
            self.state_changed(str(event["state"]))

    def state_changed(self, state: str) -> None:
        """The hearing changed state (the judge here, or the REST API in any process)."""
        self.info["state"] = state
        if state != HearingState.RECESS.value:
            self.info["interrupted_at"] = None  # the court has decided
            self.info["signing_open"] = False  # a recess's signing ends with it
        for connection in list(self.connections.values()):
            connection.send({"type": "hearing", "state": state})
        if state in FINISHED:
            if not self._finishing:
                self._finishing = True
                self.kept.spawn(self._finish(state), name=f"finish-{self.id[:8]}",
                                context=self.context)
        else:
            self.kept.spawn(self.recording.follow(state), context=self.context)

    async def _finish(self, state: str) -> None:
        """The hearing closed or was cancelled: finish its files, send everyone away, then
        finish the record (draining the recognizer and filling gaps may take minutes on a busy
        machine: nobody waits for it) and seal both."""
        try:
            await self.recording.finish_files()
        finally:
            for connection in list(self.connections.values()):
                await connection.close(4000, f"the hearing is {state}")
        try:
            await self.recording.finish(closed=state == HearingState.CLOSED.value)
        finally:
            await self.services.bus.forget(self.id)

    # -- arrival and departure ------------------------------------------------------------

    async def arrive(self, connection: Connection, participant: Participant) -> Seat:
        """Seat a participant who joined (again); raises SignalingError when they rejoin
        too often (each arrival replaces a peer connection)."""
        pid = connection.participant_id
        if not self._rejoins.setdefault(
                pid, TokenBucket(ARRIVALS_PER_S, ARRIVALS_BURST)).allow():
            raise SignalingError("rate_limited", "you are reconnecting too often; wait a moment")
        async with self._arrivals:
            previous = self.connections.pop(pid, None)
            if previous is not None and previous is not connection:
                previous.send({"type": "bye", "reason": "you joined from another connection"})
                self.tasks.spawn(previous.close(4002, "replaced by a new connection"))
                self.attendance.write("attendance.left", pid, cause="replaced")
            returning = pid in self.seats
            seat = self.seats.get(pid) or Seat(
                participant_id=pid, name=participant.name, role=participant.role.value,
                location=participant.location.value, language=participant.language,
                admitted=await self.court.admits_on_arrival(participant),
                interprets_for_id=seat_party(participant),
            )
            seat = replace(seat, present=True, connection="new", hand_raised=False,
                           screen_sharing=False, device=connection.device)
            await self.update(seat)  # everyone else sees them arrive; the welcome says it all
            self.connections[pid] = connection
            self.attendance.write("attendance.joined", pid, returning=returning,
                             admitted=seat.admitted)
        court = seat.role in CONTROL_ROLES
        connection.send({
            "type": "welcome", "protocol": 1, "participant": seat.public(), "hearing": self.info,
            "participants": participants_message(self.seats.values(), court)["participants"],
            # The court lists everyone expected, joined or not (its identity checks).
            **({"expected": [expected_view(p) for p in await self.registry.list_participants(
                self.hearing_uuid)]} if court else {}),
        })
        # Before any offer: the client builds its RTCPeerConnection with these servers.
        connection.send({"type": "config", "ice_servers": self.services.client_ice_servers})
        if seat.admitted:
            await self.stage.welcome(connection)
        self.monitor.start()
        if seat.admitted:
            await self.start_media(connection)
        return seat

    async def depart(self, connection: Connection) -> bool:
        """The connection ended; returns whether nobody is connected any more."""
        pid = connection.participant_id
        async with self._arrivals:
            if self.connections.get(pid) is not connection:
                return not self.connections  # already replaced by a newer connection
            del self.connections[pid]
            self.attendance.write("attendance.left", pid, cause=connection.departure_cause)
            await self.media.remove(pid)
            self.recording.transcript.leave(pid)
            seat = self.seats.get(pid)
            if seat is not None:
                await self.update(replace(seat, present=False, connection="closed",
                                          hand_raised=False, screen_sharing=False))
        return not self.connections

    async def start_media(self, connection: Connection) -> None:
        """(Re)start the participant's peer connection; an existing one is replaced."""
        pid = connection.participant_id
        seat = self.seats.get(pid)
        if seat is None or not seat.admitted or self.state in FINISHED:
            return
        if self.connections.get(pid) is not connection:
            return
        # Observers only watch: nothing of theirs is received, recorded or transcribed.
        publish = seat.role != OBSERVER
        peer = ParticipantPeer(pid, connection, self.services.ice_servers, publish=publish)
        peer.adapting = self.services.adapt_downlinks
        await self.media.add(peer)
        if publish:
            self.media.listen(pid, self.recording.transcript.listener(
                pid, seat.name, seat.role, seat.language))
        if self.state == HearingState.IN_SESSION.value:
            await self.recording.start()  # a hearing already in session when we took it up

    async def restart_media(self, connection: Connection) -> None:
        """The participant asked for a fresh peer connection; raises SignalingError when they
        ask too often (each one sets up ICE and DTLS here)."""
        if not self._restarts.setdefault(connection.participant_id, TokenBucket(
                MEDIA_RESTARTS_PER_S, MEDIA_RESTARTS_BURST)).allow():
            raise SignalingError("rate_limited", "too many media restarts; wait a few seconds")
        await self.start_media(connection)

    def peer(self, participant_id: str) -> ParticipantPeer | None:
        return self.media.peers.get(participant_id)

    async def connection_state(self, participant_id: str, state: str) -> None:
        seat = self.seats.get(participant_id)
        if seat is not None:
            await self.update(replace(seat, connection=state))

    # -- participants' own actions --------------------------------------------------------

    async def set_flag(self, participant_id: str, **flag: Any) -> None:
        """Self-mute, hand, camera or screen sharing, as the participant says."""
        await self.update(replace(self.seats[participant_id], **flag))
        if "screen_sharing" in flag:
            self.media.request_keyframe(participant_id)

    async def aclose(self) -> None:
        """Retire the hearing: what must finish finishes, the rest is cancelled."""
        self._unlisten()
        self.send_roster.cancel()
        await self.monitor.aclose()
        await self.tasks.cancel()
        await self.kept.finish()
        await self.recording.aclose()
        await self.media.aclose()

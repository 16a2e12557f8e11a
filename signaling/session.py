"""One participant's WebSocket: authenticate, then relay protocol messages to the hearing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from config.logs import HEARING_ID, PARTICIPANT_ID
from courtrooms.errors import AccessDenied, HearingFinished
from courtrooms.invitations import JoinGrant
from courtrooms.models import CONSULTING_ROLES, COUNSEL_ROLES, Location, Participant
from media.errors import NegotiationError
from media.peer import FAILURES, SlotInfo
from signaling.cluster import CLOSE_CLUSTER_UNAVAILABLE, CLOSE_HOLDER_LOST, RelayedSocket
from signaling.errors import Forbidden, NotAdmitted, SignalingError
from signaling.hearing import LiveHearing
from signaling.hub import Hub
from signaling.limits import MESSAGES_BURST, MESSAGES_PER_S, TokenBucket
from signaling.messages import (
    MAX_MESSAGE_BYTES,
    Answer,
    Camera,
    Command,
    Consult,
    Hand,
    IceCandidate,
    Join,
    Leave,
    MediaRestart,
    Message,
    Mute,
    Ping,
    Present,
    Screen,
    error,
    parse,
    ref_of,
)
from signaling.seats import OBSERVER
from signaling.tasks import TaskSet

log = logging.getLogger(__name__)

OUTBOX_MESSAGES = 256
RATE_ERROR_INTERVAL_S = 1.0
# What a refused join's error carries besides its code and message: the ID number digits'
# tries left before the lockout, or when the lockout ends.
JOIN_REFUSAL_DETAILS = ("tries_left", "locked_until")


def origin_allowed(request: web.Request) -> bool:
    """Browsers send Origin; it must be this server. Non-browser clients send none."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


class Socket(Protocol):
    """A participant's message stream: a WebSocket here, or one relayed from another process."""

    async def receive(self, wait_s: float | None = None) -> str | bytes | None:
        """The next frame; None once the socket has ended. Raises TimeoutError."""

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    @property
    def close_code(self) -> int | None:
        """The code of the close frame the other end sent, if it sent one."""


# Why a participant's connection ended, for the attendance log: the law tells a walk-out from
# a network failure (《人民法院在线诉讼规则》 art. 25), so the server must know which it was.
CLOSED_BY_SERVER = {4000: "hearing_ended", 4001: "removed", 4002: "replaced",
                    4003: "released", 1012: "server_shutdown"}


class WebSocket:
    """A participant's own WebSocket, accepted by this process."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        # The code of a close frame the participant sent. aiohttp's own `close_code` reads
        # 1000 also when the connection just ended (EOF), which is no choice of theirs.
        self._close_frame: int | None = None

    async def receive(self, wait_s: float | None = None) -> str | bytes | None:
        msg = await self.ws.receive(timeout=wait_s)
        if msg.type == WSMsgType.TEXT:
            return str(msg.data)
        if msg.type == WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type == WSMsgType.CLOSE:
            self._close_frame = int(msg.data)
        return None

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])

    @property
    def close_code(self) -> int | None:
        return self._close_frame


class ParticipantSession:
    """The server's end of one participant's signaling connection: served here when this
    process holds the hearing, else relayed to the process that does."""

    def __init__(self, hub: Hub, socket: Socket) -> None:
        self.hub = hub
        self.socket = socket
        self.participant_id = ""
        self.live: LiveHearing | None = None
        self._join_text = ""
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_MESSAGES)
        self._bucket = TokenBucket(MESSAGES_PER_S, MESSAGES_BURST)
        self._last_rate_error = 0.0
        self._tasks = TaskSet("session")
        self._closed = False
        self._drained = asyncio.Event()
        self._cause: str | None = None  # set when the server or the participant ends it
        self.device: str | None = None  # "device/session", from the join (see _authenticate)

    # -- Connection protocol ---------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if message.get("type") == "error" and not self._closed:
            self.hub.signaling_counters.errors_sent[str(message.get("code"))] += 1
        self._enqueue(json.dumps(message, ensure_ascii=False))

    def _enqueue(self, text: str) -> None:
        if self._closed:
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("participant %s is not reading; closing", self.participant_id)
            self._cause = self._cause or "not_reading"
            self._spawn(self.close(WSCloseCode.POLICY_VIOLATION, "not reading messages"))

    @property
    def departure_cause(self) -> str:
        """Why the connection ended: left, page_closed, network_lost, removed, replaced,
        hearing_ended, server_shutdown, not_reading, closed_by_server."""
        if self._cause is not None:
            return self._cause
        # A close frame is the participant's page going (closed, reloaded, navigated away);
        # without one the connection was lost (a dead link, a reset, the heartbeat).
        return "page_closed" if self.socket.close_code is not None else "network_lost"

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        if self._cause is None:
            self._cause = CLOSED_BY_SERVER.get(code, "closed_by_server")
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drained.wait(), 2.0)
        await self.socket.close(code, reason)

    async def send_offer(self, sdp: str, slots: list[SlotInfo]) -> None:
        self.send({"type": "offer", "sdp": sdp, "slots": [s.__dict__ for s in slots]})

    def slots_changed(self, slots: list[SlotInfo]) -> None:
        self.send({"type": "slots", "slots": [s.__dict__ for s in slots]})

    def connection_state_changed(self, state: str) -> None:
        if self.live is None:
            return
        peer = self.live.peer(self.participant_id)
        if state == "failed" and peer is not None and peer.failure is not None:
            # Told why; `media_restart` (as the page sends on a failed connection) retries.
            self.send({"type": "media_failed", "reason": peer.failure,
                       "message": FAILURES[peer.failure] + "; send media_restart to retry"})
        self._spawn(self.live.connection_state(self.participant_id, state))

    # -- tasks ----------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    async def _writer(self) -> None:
        try:
            while True:
                text = await self._outbox.get()
                if text is None:
                    return
                await self.socket.send_text(text)
        except (ConnectionResetError, RuntimeError):
            return
        except Exception:
            # A message that cannot be sent must not leave a session that reads but never
            # answers: end it, the client reconnects.
            log.exception("participant %s: sending failed", self.participant_id)
            self._spawn(self.socket.close(1011, "the server could not send a message"))
        finally:
            self._drained.set()

    # -- the connection -------------------------------------------------------------------

    async def run(self) -> None:
        writer = asyncio.create_task(self._writer(), name="ws-writer")
        try:
            grant = await self._authenticate()
            if grant is None:
                return
            self.participant_id = str(grant.participant.id)
            # This handler's own context: what it logs, and the tasks it starts, name them.
            HEARING_ID.set(str(grant.participant.hearing_id))
            PARTICIPANT_ID.set(self.participant_id)
            try:
                holder = await self.hub.placement(grant.participant.hearing_id)
                if holder is not None:
                    await self._relay(holder)
                    return
            except SignalingError as e:  # draining, or Redis or the holder unreachable
                self._refuse(e)
                await self.close(1012 if e.code == "draining" else CLOSE_CLUSTER_UNAVAILABLE,
                                 e.message)
                return
            try:
                self.live = await self.hub.arrive(self, grant.participant)
            except SignalingError as e:  # rejoining too often
                self._refuse(e)
                await self.close(CLOSE_CLUSTER_UNAVAILABLE, e.message)
                return
            await self._serve(grant.participant)
        finally:
            if self.live is not None:
                await self.hub.depart(self.live, self)
            await self._tasks.cancel()
            if not self._closed:
                self._closed = True
                with contextlib.suppress(asyncio.QueueFull):
                    self._outbox.put_nowait(None)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(writer, 2.0)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self.socket.close(1000, "")

    async def _relay(self, holder: str) -> None:
        """Pass frames between the participant and the process holding the hearing."""
        cluster = self.hub.cluster
        assert cluster is not None
        link = await cluster.open_relay(holder, self._join_text)
        self.hub.connections.add(self)
        pump = asyncio.create_task(self._relay_out(link.outbound), name="relay-out")
        try:
            while (raw := await self._next_text()) is not None and not self._closed:
                if self._rate_ok():
                    await link.send(raw)
        except ConnectionResetError as e:
            log.warning("participant %s: relay lost: %s", self.participant_id, e)
            await self.close(CLOSE_HOLDER_LOST, "the hearing's server cannot be reached")
        finally:
            self.hub.connections.discard(self)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await cluster.close_relay(link)

    async def _relay_out(self, outbound: asyncio.Queue[str | tuple[int, str]]) -> None:
        while True:
            item = await outbound.get()
            if isinstance(item, tuple):
                await self.close(*item)
                return
            self._enqueue(item)

    async def _next_text(self, wait_s: float | None = None) -> str | None:
        """The next inbound text frame; binary frames get an error; None when the socket ends."""
        while True:
            frame = await self.socket.receive(wait_s)
            if isinstance(frame, bytes):
                self.send(error("invalid", "binary frames are not part of the protocol"))
                continue
            return frame

    def _refuse(self, e: SignalingError, raw: str | None = None, ref: str | None = None) -> None:
        self.send(error(e.code, e.message, e.field, ref if ref is not None else
                        (ref_of(raw) if raw is not None else None)))

    def _rate_ok(self) -> bool:
        if self._bucket.allow():
            return True
        now = time.monotonic()
        if now - self._last_rate_error >= RATE_ERROR_INTERVAL_S:
            self._last_rate_error = now
            self.send(error("rate_limited", "too many messages; slow down"))
        return False

    async def _authenticate(self) -> JoinGrant | None:
        deadline = time.monotonic() + self.hub.join_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.send(error("join_timeout", "no valid join message in time"))
                return None
            try:
                raw = await self._next_text(wait_s=remaining)
            except TimeoutError:
                continue
            if raw is None:
                return None
            if not self._rate_ok():
                continue
            try:
                message = parse(raw)
                if isinstance(message, Ping):
                    self.send({"type": "pong", "ref": message.ref})
                    continue
                if not isinstance(message, Join):
                    raise SignalingError("not_joined", f"send join before {message.type}")
                grant = await self._grant(message)
                self._join_text = raw
                # An identity check holds for the browser's device and session. Ids it did not
                # send are made up for this connection alone: nobody who joins later without
                # them (another machine holding the same link) inherits its check.
                self.device = (f"{message.device or 'connection-' + secrets.token_urlsafe(9)}"
                               f"/{message.session or secrets.token_urlsafe(9)}")
                return grant
            except SignalingError as e:
                self._refuse(e, raw)
            except HearingFinished as e:
                self.send(error(e.code, e.message, ref=ref_of(raw)))
                await self.close(4000, e.message)
                return None
            except AccessDenied as e:
                self.send(error(e.code, e.message, e.field, ref=ref_of(raw))
                          | {k: v for k, v in e.details.items() if k in JOIN_REFUSAL_DETAILS})
            except Exception:
                log.exception("join failed")
                self.send(error("internal", "the server could not handle this join; retry",
                                ref=ref_of(raw)))
                await self.close(1011, "join failed")
                return None

    async def _grant(self, join: Join) -> JoinGrant:
        registry = self.hub.registry
        if (join.token is None) == (join.device_key is None):
            raise SignalingError("invalid", "join needs exactly one of token or device_key")
        if join.token is not None:
            grant = await registry.resolve_join_token(join.token)
        else:
            assert join.device_key is not None
            grant = await registry.resolve_device_key(join.device_key)
        await registry.check_id_digits(grant, join.id_digits)
        return grant

    async def _serve(self, participant: Participant) -> None:
        while (raw := await self._next_text()) is not None:
            if self._closed:
                return  # the server ended it (removed, the hearing closed): nothing more counts
            if not self._rate_ok():
                continue
            try:
                message = parse(raw)
                if isinstance(message, Leave):
                    # Unless the server already ended it (removed, the hearing closed).
                    self._cause = self._cause or "left"
                    return
                await self._handle(message)
            except SignalingError as e:
                self._refuse(e, raw)
            except NegotiationError as e:
                self.send(error("negotiation_failed", str(e), ref=ref_of(raw)))
            except Exception:
                # One bad message must not end the participant's hearing.
                log.exception("message from participant %s failed", self.participant_id)
                self.send(error("internal", "the server could not handle this message",
                                ref=ref_of(raw)))

    async def _handle(self, message: Message) -> None:
        live = self.live
        assert live is not None
        seat = live.seats.get(self.participant_id)
        if seat is None:
            raise SignalingError("no_seat", "your seat was cleared; rejoin")
        if isinstance(message, Ping):
            self.send({"type": "pong", "ref": message.ref})
        elif isinstance(message, Join):
            raise SignalingError("already_joined", "this connection has already joined")
        elif seat.role == OBSERVER and not isinstance(message, (Answer, IceCandidate,
                                                                  MediaRestart)):
            raise Forbidden(f"observers only watch; {message.type} is not theirs to send")
        elif isinstance(message, Hand):
            await live.set_flag(self.participant_id, hand_raised=message.raised)
        elif not seat.admitted:
            raise NotAdmitted(message.type)
        elif isinstance(message, Answer):
            peer = live.peer(self.participant_id)
            if peer is None:
                raise SignalingError("no_media", "no peer connection is waiting for an answer")
            await peer.accept_answer(message.sdp)
        elif isinstance(message, IceCandidate):
            peer = live.peer(self.participant_id)
            if peer is None:
                raise SignalingError("no_media", "no peer connection to add the candidate to")
            await peer.add_ice_candidate(message.candidate, message.sdp_mid,
                                         message.sdp_mline_index)
        elif isinstance(message, Mute):
            await live.set_flag(self.participant_id, muted_self=message.muted)
        elif isinstance(message, Camera):
            if message.off and seat.location == Location.PRISON:
                # The court must see a detainee at all times (kiosk discipline); only the
                # court may silence one, by muting.
                raise Forbidden("a participant in prison cannot switch the camera off")
            await live.set_flag(self.participant_id, camera_off=message.off)
        elif isinstance(message, Screen):
            if message.sharing and seat.location == Location.PRISON:
                # A screen share takes the camera's place in the stream: the camera switched
                # off by another name.
                raise Forbidden("a participant in prison cannot share a screen instead of "
                                "the camera")
            await live.set_flag(self.participant_id, screen_sharing=message.sharing)
        elif isinstance(message, Present):
            await live.stage.present(seat, message.exhibit_id, message.page)
        elif isinstance(message, Consult):
            if message.action == "end":
                await live.consultations.end(seat, f"participant:{seat.participant_id}")
            elif seat.role not in CONSULTING_ROLES | COUNSEL_ROLES:
                raise Forbidden("private consultation is for a lawyer and a defendant or party")
            else:
                await live.consultations.request(seat, message.partner)
        elif isinstance(message, Command):
            await live.court.command(seat, message.action, message.participant_id,
                                     message.reason)
        elif isinstance(message, MediaRestart):
            await live.restart_media(self)


async def websocket_handler(request: web.Request, hub: Hub) -> web.StreamResponse:
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    ws = web.WebSocketResponse(heartbeat=hub.heartbeat_s, max_msg_size=MAX_MESSAGE_BYTES * 4)
    await ws.prepare(request)
    session = ParticipantSession(hub, WebSocket(ws))
    hub.signaling_counters.websockets_open += 1
    try:
        await session.run()
    finally:
        hub.signaling_counters.websockets_open -= 1
    return ws


async def serve_relayed(hub: Hub, socket: RelayedSocket) -> None:
    """A participant relayed here by another process: served like one connected here."""
    await ParticipantSession(hub, socket).run()

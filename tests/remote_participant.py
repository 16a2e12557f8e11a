"""A participant beyond a faulty network, as its own process (run inside a network namespace):

    ip netns exec NS python -m tests.remote_participant http://10.77.0.1:PORT TOKEN

It joins like `tests.clients.HearingClient` (a real aiortc peer sending audio and video) and,
like the browser (web/static/hearing/signaling.js), drops its peer connection and joins again
with the same token when the WebSocket drops. It beeps every `BEEP_EVERY_S` and writes what it
does and sees as JSON lines on stdout (`event`, `t` wall time, ...). It leaves when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time
from typing import Any

import aiohttp

from tests.clients import BeepTrack, HearingClient

# The browser learns of a dead socket from TCP, which may take a minute; a ping learns it in
# seconds, which keeps the tests short (`--heartbeat 0`: no ping, as a browser).
HEARTBEAT_S = 2.0
CONNECT_TIMEOUT_S = 3.0
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 2.0  # the browser's: 0.5 to 10 s
FINAL_CLOSE_CODES = frozenset({4000, 4001, 4002, 4003})  # ended, removed, replaced, released
REPORT_S = 1.0
BEEP_EVERY_S = 2.0
# The participant's media sockets hold this much unread: this process shares two cores with
# the server and a whole test suite, and what the link delivered while it waited for a core
# must not be dropped at its own socket (the tests measure the link, not this process).
RECEIVE_BUFFER = 8 * 1024 * 1024
SO_RCVBUFFORCE = 33  # Linux; not in Python's socket module
REPORTED = ("welcome", "admitted", "hearing", "removed", "bye", "error", "offer")


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


class RemoteParticipant(HearingClient):
    """A HearingClient whose socket pings the server and which can be dropped and rejoined."""

    heartbeat_s: float | None = HEARTBEAT_S

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
        )
        self._ws = await self._session.ws_connect(
            f"{self.base_url}/ws", heartbeat=self.heartbeat_s, timeout=aiohttp.ClientWSTimeout(
                ws_receive=None, ws_close=CONNECT_TIMEOUT_S),
        )
        self._reader = asyncio.create_task(self._read())

    async def _on_message(self, data: dict[str, Any]) -> None:
        await super()._on_message(data)
        kind = data.get("type")
        if kind == "welcome":
            emit(kind, participant=data["participant"], state=data["hearing"]["state"])
        elif kind == "offer":
            emit(kind, slots=data["slots"])
        elif kind in REPORTED:
            emit(str(kind), message=data)

    async def _new_pc(self) -> None:
        await super()._new_pc()
        pc = self.pc
        assert pc is not None

        @pc.on("connectionstatechange")
        def changed() -> None:
            emit("media", state=pc.connectionState)

    async def drop(self) -> None:
        """What the browser does when its socket drops: let go of the socket and the peer."""
        await self.close()
        self._ws = self._reader = self._session = None
        self.pc = None
        self.frames_by_mid.clear()


async def attend(client: RemoteParticipant, token: str, stop: asyncio.Event) -> None:
    backoff = BACKOFF_MIN_S
    while not stop.is_set():
        welcomed = len([m for m in client.messages if m.get("type") == "welcome"])
        try:
            await client.join(token)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            emit("connect_failed", error=f"{type(e).__name__}: {e}")
            await client.drop()
        else:
            emit("connected")
            reader = client._reader
            assert reader is not None
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
            if stop.is_set():
                return
            code = client.closed_code
            emit("closed", code=code)
            await client.drop()
            if code in FINAL_CLOSE_CODES:
                return
            if len([m for m in client.messages if m.get("type") == "welcome"]) > welcomed:
                backoff = BACKOFF_MIN_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        backoff = min(BACKOFF_MAX_S, backoff * 2)


async def beep(client: HearingClient) -> None:
    """A tone every BEEP_EVERY_S, each logged with the instant it starts: the recording must
    hold every one sent while the network carried it."""
    while True:
        at = time.time() + 0.5
        audio = client.audio
        if isinstance(audio, BeepTrack):
            audio.beep_at = at
        emit("beep", at=at)
        await asyncio.sleep(BEEP_EVERY_S)


async def report(client: HearingClient) -> None:
    # Counts over earlier connections, and over the current one.
    before = {"sent": 0, "received": 0, "lost": 0}
    now = dict(before)
    pc_seen = None
    while True:
        await asyncio.sleep(REPORT_S)
        pc = client.pc
        if pc is not pc_seen:
            before = {k: before[k] + now[k] for k in before}
            now = dict.fromkeys(before, 0)
            pc_seen = pc
        if pc is not None:
            for sender in pc.getSenders():
                if sender.track is not None and sender.track.kind == "audio":
                    for stats in (await sender.getStats()).values():
                        if stats.type == "outbound-rtp":
                            now["sent"] = stats.packetsSent
            # What the server sent of the others' voices: received, and lost on the way (from
            # the gaps in each stream's sequence numbers).
            received = lost = 0
            for receiver in pc.getReceivers():
                if receiver.track is not None and receiver.track.kind == "audio":
                    for stats in (await receiver.getStats()).values():
                        if stats.type == "inbound-rtp":
                            received += stats.packetsReceived
                            lost += max(0, stats.packetsLost)
            now["received"], now["lost"] = received, lost
        # Frames received from the others since start, over every connection, and the audio
        # packets this participant sent.
        emit("frames", audio=client.frames.get("audio", 0), video=client.frames.get("video", 0),
             audio_sent=before["sent"] + now["sent"],
             audio_received=before["received"] + now["received"],
             audio_lost=before["lost"] + now["lost"],
             media=pc.connectionState if pc is not None else None)


def roomy_sockets(loop: asyncio.AbstractEventLoop) -> None:
    """Every UDP socket aioice opens in this process gets `RECEIVE_BUFFER` (forced: the
    namespace's tests run as root, and the system's limit is far lower)."""
    original = loop.create_datagram_endpoint

    async def create_datagram_endpoint(*args: Any, **kwargs: Any) -> Any:
        transport, protocol = await original(*args, **kwargs)
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        return transport, protocol

    loop.create_datagram_endpoint = create_datagram_endpoint  # type: ignore[method-assign]


async def main(base_url: str, token: str, heartbeat_s: float, encoded: bool) -> None:
    loop = asyncio.get_running_loop()
    roomy_sockets(loop)
    stop = asyncio.Event()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    client = RemoteParticipant(base_url, "remote")
    client.heartbeat_s = heartbeat_s or None
    client.decode = not encoded
    tasks = [asyncio.create_task(coro) for coro in (beep(client), report(client))]
    attending = asyncio.create_task(attend(client, token, stop))
    emit("started")
    await stdin.read()  # until the test closes our stdin (or dies)
    stop.set()
    await attending
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await client.send({"type": "leave"})
    await client.close()
    emit("left")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.remote_participant")
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_S,
                        help="seconds between WebSocket pings; 0: none (as a browser)")
    parser.add_argument("--encoded", action="store_true",
                        help="count what arrives without decoding it")
    args = parser.parse_args()
    asyncio.run(main(args.base_url, args.token, args.heartbeat, args.encoded))

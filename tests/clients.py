"""A real participant for tests: an aiohttp WebSocket plus an aiortc peer with synthetic media."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from media.aiortc_adapter import capture_encoded, on_keyframe_request

BEEP_HZ = 1000
BEEP_S = 0.2


class BeepTrack(AudioStreamTrack):
    """Silence, except a loud 1 kHz tone for 0.2 s from the wall-clock instant `beep_at`."""

    def __init__(self) -> None:
        super().__init__()
        self.beep_at: float | None = None

    async def recv(self) -> Any:
        frame = await super().recv()
        if self.beep_at is not None:
            rate = frame.sample_rate
            start = self._start + frame.pts / rate  # the instant this frame is captured
            t = start + np.arange(frame.samples) / rate
            inside = (t >= self.beep_at) & (t < self.beep_at + BEEP_S)
            if inside.any():
                tone = (np.sin(2 * np.pi * BEEP_HZ * t) * 20_000 * inside).astype(np.int16)
                frame.planes[0].update(tone.tobytes())
        return frame


class SpeechTrack(AudioStreamTrack):
    """Silence, then a recording (16-bit mono WAV) from the wall-clock instant `speak_at`."""

    def __init__(self, wav: Path) -> None:
        super().__init__()
        with wave.open(str(wav)) as f:
            self.rate = f.getframerate()
            self.speech = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
        self.speak_at: float | None = None
        self._sent = 0
        self._quiet = 0  # samples of silence sent since the speech was all sent
        self._next_pts = 0

    @property
    def seconds(self) -> float:
        return self.speech.size / self.rate

    @property
    def quiet_s(self) -> float:
        """Seconds of silence actually sent since the speech ended: on a busy machine the
        track runs behind the wall clock, so a pause is known from what was sent."""
        return self._quiet / self.rate

    def say(self, speech: np.ndarray, in_s: float) -> None:
        """Speak another recording, `in_s` seconds from now."""
        self.speech, self._sent, self._quiet = speech, 0, 0
        self.speak_at = time.time() + in_s

    async def recv(self) -> Any:
        samples = self.rate // 50
        if self._next_pts == 0:
            self._t0 = time.time()
        else:
            await asyncio.sleep(max(0.0, self._t0 + self._next_pts / self.rate - time.time()))
        chunk = np.zeros(samples, dtype=np.int16)
        if self.speak_at is not None and time.time() >= self.speak_at:
            piece = self.speech[self._sent:self._sent + samples]
            chunk[:piece.size] = piece
            self._sent += piece.size
            if piece.size < samples:
                self._quiet += samples - piece.size
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._next_pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._next_pts += samples
        return frame


class StillCamera(VideoStreamTrack):
    """A camera for tests: aiortc's still 640x480 picture at 30 fps, its planes made once.
    (At 320x240 a defendant decoding behind 15 % loss on a busy machine stopped receiving
    video altogether (tests/signaling/test_network_faults.py): not understood yet, noted in
    issue 16; the size stays that of aiortc's own test track.)"""

    WIDTH, HEIGHT = 640, 480

    def __init__(self) -> None:
        super().__init__()
        self._planes: list[bytes] | None = None

    async def recv(self) -> Any:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=self.WIDTH, height=self.HEIGHT, format="yuv420p")
        if self._planes is None:
            self._planes = [bytes(p.buffer_size) for p in frame.planes]
        for plane, data in zip(frame.planes, self._planes, strict=True):
            plane.update(data)
        frame.pts = pts
        frame.time_base = time_base
        return frame


class HearingClient:
    """Joins a hearing like a browser does: answers the server's offers, sends audio+video."""

    def __init__(self, base_url: str, name: str = "client") -> None:
        self.base_url = base_url
        self.name = name
        self.messages: list[dict[str, Any]] = []
        self.participants: list[dict[str, Any]] = []
        self.hearing_state: str | None = None
        self.slots: list[dict[str, Any]] = []
        self.frames: dict[str, int] = {}
        self.frames_by_mid: dict[str, int] = {}
        self.pc: RTCPeerConnection | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Condition()
        self.closed_code: int | None = None
        self.publish = True
        self.audio: AudioStreamTrack = BeepTrack()
        # The video sent: a test card, encoded live, unless a test gives its own (one with
        # `request_keyframe()` is told of the server's keyframe requests).
        self.video_source: Callable[[], MediaStreamTrack] = StillCamera
        # Received media is counted frame by frame as it arrives; decoding it as well (True)
        # proves it decodes, at a cost: a suite of such peers on two cores does little else.
        self.decode = False

    # -- connection -----------------------------------------------------------------------

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(f"{self.base_url}/ws")
        self._reader = asyncio.create_task(self._read())

    async def join(self, token: str | None = None, device_key: str | None = None,
                   device: tuple[str, str] | None = None, id_digits: str | None = None
                   ) -> None:
        """Join with a join token or a terminal's device key; `device` is the browser's
        (device id, session id), as the page sends them; `id_digits` the last digits of the
        participant's ID number, when the court has them on file."""
        if self._ws is None:
            await self.connect()
        message: dict[str, Any] = {"type": "join"}
        if token is not None:
            message["token"] = token
        if device_key is not None:
            message["device_key"] = device_key
        if device is not None:
            message["device"], message["session"] = device
        if id_digits is not None:
            message["id_digits"] = id_digits
        await self.send(message)

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        assert self._ws is not None
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            await self._on_message(data)
            async with self._changed:
                self.messages.append(data)
                self._changed.notify_all()
        self.closed_code = self._ws.close_code
        async with self._changed:
            self._changed.notify_all()

    async def _on_message(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "welcome":
            self.participants = data["participants"]
            self.hearing_state = data["hearing"]["state"]
        elif kind == "participants":
            self.participants = data["participants"]
        elif kind == "hearing":
            self.hearing_state = data["state"]
        elif kind == "slots":
            self.slots = data["slots"]
        elif kind == "offer":
            self.slots = data["slots"]
            await self._answer(data["sdp"])

    async def _answer(self, sdp: str) -> None:
        if self.pc is None or self.pc.connectionState in ("closed", "failed"):
            await self._new_pc()
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def _new_pc(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        if self.publish:
            if self.audio.readyState != "live":
                self.audio = BeepTrack()
            pc.addTrack(self.audio)
            video = self.video_source()
            sender = pc.addTrack(video)
            if hasattr(video, "request_keyframe"):
                on_keyframe_request(sender, video.request_keyframe)

        @pc.on("track")
        def on_track(track: Any) -> None:
            transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
            mid = transceiver.mid
            if not self.decode:
                capture_encoded(transceiver.receiver,
                                lambda codec, frame: self._count(track.kind, mid),
                                lambda: None)
                return
            task = asyncio.create_task(self._pull(track, mid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self.pc = pc

    async def restart_media(self) -> None:
        """What a browser does after a network change: drop the peer, ask for a new one."""
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        await self.send({"type": "media_restart"})

    async def _pull(self, track: Any, mid: str) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self._count(track.kind, mid)

    def _count(self, kind: str, mid: str) -> None:
        self.frames[kind] = self.frames.get(kind, 0) + 1
        self.frames_by_mid[mid] = self.frames_by_mid.get(mid, 0) + 1

    def frames_from(self, participant_id: str, kind: str) -> int:
        """Frames received on the slot currently carrying `participant_id`'s `kind`."""
        return sum(
            self.frames_by_mid.get(s["mid"], 0)
            for s in self.slots
            if s["participant_id"] == participant_id and s["kind"] == kind
        )

    # -- waiting --------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: condition not met; last messages: "
                                   f"{[m.get('type') for m in self.messages[-8:]]}")
            with contextlib.suppress(TimeoutError):
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    async def next_message(self, type_: str, after: int = 0, within: float = 10.0
                           ) -> dict[str, Any]:
        def found() -> bool:
            return any(m.get("type") == type_ for m in self.messages[after:])

        await self.wait_for(found, within)
        return next(m for m in self.messages[after:] if m.get("type") == type_)

    def seat(self, participant_id: str) -> dict[str, Any] | None:
        return next((p for p in self.participants if p["participant_id"] == participant_id),
                    None)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        if self.pc is not None:
            await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()


async def join_until_welcomed(base: str, token: str, name: str, speech: Path | None = None,
                              within: float = 60.0) -> HearingClient:
    """Join like the page does after a failure: retry with a fresh socket until welcomed."""
    deadline = time.monotonic() + within
    while True:
        client = HearingClient(base, name)
        if speech is not None:
            client.audio = SpeechTrack(speech)
        try:
            await client.join(token)
            await client.wait_for(lambda c=client: c.closed_code is not None or any(
                m.get("type") == "welcome" for m in c.messages), 10)
            if client.closed_code is None:
                return client
        except (TimeoutError, aiohttp.ClientError):
            pass
        await client.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} was not welcomed within {within:.0f} s")
        await asyncio.sleep(0.5)


class Api:
    """The REST API of a server running apart (a subprocess, a cluster), as the admin token's
    holder calls it; each call asserts the status it expects."""

    def __init__(self, http: aiohttp.ClientSession, base: str, admin_token: str) -> None:
        self.http, self.base = http, base
        self.headers = {"Authorization": f"Bearer {admin_token}"}

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        async with self.http.request(method, f"{self.base}/api/v1{path}", json=body,
                                     headers=self.headers) as r:
            text = await r.text()
            assert r.status == status, f"{method} {path}: {r.status} {text}"
            return json.loads(text) if text else None

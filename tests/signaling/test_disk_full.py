"""The recordings disk fills in the middle of a hearing, between two things said: the court is
told whose recording stopped and why, the hearing and its trial record go on, and what was
recorded before the disk filled is kept, finished, readable and accounted for."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
import uuid
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.clients import HearingClient, SpeechTrack
from tests.probe import codecs, first_loud_instant, playable_seconds
from tests.signaling.test_recording import (
    audit_actions,
    auto_hearing,  # noqa: F401 (a fixture)
    command,
    recordings_of,
    sealed,
)
from tests.signaling.test_transcript import in_order, words
from tests.speech import SPEECH
from web.keys import RECORDINGS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

OPENING = ("The court is now in session. The defendant will please state his full name for "
           "the record.")
WITNESS = "Your honor, the prosecution calls its first witness. Please raise your right hand."
PAUSE_S = 6.0  # between the two: the disk fills in the middle of this pause
FILLER_CHUNK = 1 << 20


def two_statements(path: Path) -> tuple[Path, float]:
    """A WAV of the opening, a pause, then the witness call; and when the call starts (s)."""
    samples, rate = [], 0
    for name in ("en_opening.wav", "en_witness.wav"):
        with wave.open(str(SPEECH / name)) as f:
            rate = f.getframerate()
            samples.append(np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16))
    pause = np.zeros(int(PAUSE_S * rate), dtype=np.int16)
    joined = np.concatenate([samples[0], pause, samples[1]])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(joined.tobytes())
    return path, (samples[0].size + pause.size) / rate


def fill(directory: Path) -> int:
    """Write a file until the disk is full; the bytes written."""
    written = 0
    chunk = b"\0" * FILLER_CHUNK
    with (directory / "filler").open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) <= 4096:  # down to the last page
                    return written
                chunk = chunk[: len(chunk) // 2]


async def timeline_origin(client: Any, hearing: Any, admin: dict[str, str]) -> float:
    """The wall-clock instant the hearing's timeline starts, once recording has begun."""
    deadline = time.monotonic() + 10
    while (origin := (await recordings_of(client, hearing, admin))["timeline_origin"]) is None:
        assert time.monotonic() < deadline, "recording did not start"
        await asyncio.sleep(0.1)
    return datetime.fromisoformat(origin).timestamp()


@pytest.fixture
def recordings_disk(settings, tmpfs):
    """The recordings directory on its own 32 MiB disk."""
    return tmpfs(settings.data_dir / "recordings", "32m")


async def test_a_disk_that_fills_stops_the_recording_loses_nothing_and_the_record_goes_on(
    recordings_disk, auto_hearing, participants, client, admin, tmp_path  # noqa: F811
):
    hearing = auto_hearing
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    wav, witness_at = two_statements(tmp_path / "statements.wav")
    speech = SpeechTrack(wav)
    lawyer.audio = speech
    participants.extend([judge, lawyer])
    for c, role in ((judge, "judge"), (lawyer, "lawyer")):
        await c.join(hearing.tokens[role])
    await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "video") > 5)
    await lawyer.wait_for(lambda: lawyer.frames_from(hearing.ids["judge"], "video") > 5)
    await command(judge, "open", "open")
    started = await command(judge, "start", "in_session")
    speech.speak_at = started + 1.0
    origin = await timeline_origin(client, hearing, admin)

    def alerts() -> list[dict[str, Any]]:
        return [m for m in judge.messages if m.get("type") == "alert"]

    # The disk fills in the pause between the two statements.
    await asyncio.sleep(max(0.0, speech.speak_at + witness_at - PAUSE_S / 2 - time.time()))
    assert not alerts()
    filled = time.time()
    await asyncio.to_thread(fill, recordings_disk)
    full = time.time()  # the disk filled between `filled` and now (the recorders write too)
    await judge.wait_for(lambda: len(alerts()) == 2, within=15)
    told_after = time.time() - filled
    alerted = {a["participant_id"]: a for a in alerts()}
    for role, name in (("judge", "Judge Wang"), ("lawyer", "Lawyer Li")):
        alert = alerted[hearing.ids[role]]
        assert alert["code"] == "recording_failed"
        # Whose recording stopped, and why, in words the court can act on.
        assert name in alert["message"] and "No space left on device" in alert["message"], alert
    assert not [m for m in lawyer.messages if m.get("type") == "alert"]
    frames = judge.frames_from(hearing.ids["lawyer"], "video")
    await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "video") > frames + 30)

    # The hearing goes on, and so does its trial record.
    said_until = speech.speak_at + speech.seconds

    def finals() -> list[dict[str, Any]]:
        return [m for m in judge.messages if m.get("type") == "caption" and m["final"]]

    filled_at = filled - origin  # on the hearing timeline, where lines are placed

    def said(text: str, lines: list[dict[str, Any]]) -> float:
        return in_order(words(text), words(" ".join(m["text"] for m in lines)))

    def before() -> list[dict[str, Any]]:
        return [m for m in finals() if m["start"] < filled_at]

    def after() -> list[dict[str, Any]]:
        return [m for m in finals() if m["start"] > filled_at]

    with contextlib.suppress(TimeoutError):
        await judge.wait_for(lambda: said(WITNESS, after()) >= 0.7, within=40)
    assert said(OPENING, before()) >= 0.7, finals()
    assert said(WITNESS, after()) >= 0.7, finals()
    assert time.time() > said_until
    assert judge.hearing_state == "in_session"
    closing = await command(judge, "close", "closed")
    await sealed(client, hearing, admin)

    # The record: every line, before and after the disk filled, kept and sealed.
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript", headers=admin)
    lines = (await r.json())["items"]
    # Every line the court saw, in order; as it saw it, or as settling (the record decoded
    # again behind the live lines, at the close too) revised it.
    shown = {m["segment_id"]: m for m in finals()}
    assert [line["id"] for line in lines if line["id"] in shown] == list(shown)
    for line in lines:
        if line["id"] in shown and line["text"] != shown[line["id"]]["text"]:
            assert line["revision"] > 1, line
    actions = [e["action"] for e in await audit_actions(client, hearing, admin)]
    assert "transcript.sealed" in actions and "recording.sealed" in actions

    # The recordings: interrupted, saying why, holding everything up to the moment the disk
    # filled (but the last cluster, at most a second), readable, the lawyer's opening in it.
    listing = await recordings_of(client, hearing, admin)
    files = [f for f in listing["items"] if f["kind"] == "participant"]
    assert {f["role"] for f in files} == {"judge", "lawyer"}
    recordings = client.server.app[RECORDINGS]
    rows, _ = await recordings.of_hearing(uuid.UUID(hearing.id))
    paths = {str(row.id): recordings.path_of(row) for row in rows}
    for f in files:
        assert f["status"] == "interrupted", f
        assert "No space left on device" in f["error"], f
        path = paths[f["id"]]
        assert f["size"] == path.stat().st_size > 0 and len(f["sha256"]) == 64, f
        assert codecs(path) == ["opus", "vp8"]
        recorded_until = filled_at - f["offset"]
        played = playable_seconds(path)
        # Once the disk is full, a file can still fill the free end of its own last page. What
        # its writer had not written yet when the disk filled is lost: a second or so, more
        # on a busy machine (4.5 s seen with three test processes on two cores), so only the
        # lawyer's opening (below) is required of its start.
        last_page_s = 4096 / (f["size"] / played)
        assert 0 < played <= (recorded_until + full - filled + 0.5 + last_page_s), (
            f, played, recorded_until, last_page_s)
        # The row's duration counts the frames of the cluster that could not be written
        # (up to a second, plus a batch in flight), so it may run ahead of the file a little.
        assert played - 0.1 <= f["duration"] <= played + 2.5, (f, played)
    assert actions.count("recording.interrupted") == 2
    lawyer_file = next(f for f in files if f["role"] == "lawyer")
    onset = first_loud_instant(paths[lawyer_file["id"]], threshold=0.05)
    assert onset is not None
    assert abs(lawyer_file["offset"] + onset - (speech.speak_at - origin)) < 0.5, onset
    # The review composite is rendered from what was kept (it is written elsewhere).
    deadline = time.monotonic() + 60
    while (status := (await (await client.get(f"/api/v1/hearings/{hearing.id}/composite",
                                              headers=admin)).json()))["state"] == "rendering":
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.3)
    assert status["state"] == "done", status
    print(f"disk full {filled - started:.1f} s into the session; the court was told within "
          f"{told_after:.1f} s; the hearing closed {closing - filled:.1f} s later")

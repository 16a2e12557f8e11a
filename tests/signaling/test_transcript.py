"""The live trial record through a real server: speech in, attributed lines and captions out."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import docx
import pytest
import srt
import webvtt

from tests.clients import HearingClient, SpeechTrack
from tests.signaling.test_recording import (
    audit_actions,
    auto_hearing,  # noqa: F401 (a fixture)
    command,
    sealed,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SPEECH = Path(__file__).parents[3] / "shared" / "speech"
OPENING = ("The court is now in session. The defendant will please state his full name for "
           "the record.")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def in_order(expected: list[str], heard: list[str]) -> float:
    """The share of `expected` words found in `heard` in the same order."""
    found, position = 0, 0
    for word in expected:
        try:
            position = heard.index(word, position) + 1
            found += 1
        except ValueError:
            continue
    return found / len(expected)


async def test_speech_becomes_attributed_lines_captions_and_a_sealed_record(
    auto_hearing, participants, client, admin, settings  # noqa: F811
):
    hearing = auto_hearing
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    speech = SpeechTrack(SPEECH / "en_opening.wav")
    lawyer.audio = speech
    participants.extend([judge, lawyer])
    for c, role in ((judge, "judge"), (lawyer, "lawyer")):
        await c.join(hearing.tokens[role])
    await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "video") > 5)
    await command(judge, "open", "open")
    started = await command(judge, "start", "in_session")
    speech.speak_at = time.time() + 1.0
    said_until = speech.speak_at + speech.seconds
    lawyer_id = hearing.ids["lawyer"]

    def finals() -> list[dict[str, Any]]:
        return [m for m in judge.messages if m.get("type") == "caption" and m["final"]]

    await judge.wait_for(lambda: bool(finals()) and time.time() > said_until + 3, within=60)
    captions = [m for m in judge.messages if m.get("type") == "caption"]
    assert all(m["participant_id"] == lawyer_id for m in captions), captions
    # Partial captions are best effort (skipped when the recognizer is behind; their rate is
    # tested in tests/transcription); those that come are the speaker's, as checked above.
    heard = " ".join(m["text"] for m in finals())
    assert in_order(words(OPENING), words(heard)) >= 0.7, heard
    # Lines sit where the speech was on the hearing timeline (from the start of the session).
    speak_from, speak_to = speech.speak_at - started, said_until - started
    for m in finals():
        assert m["name"] == "Lawyer Li" and m["role"] == "lawyer"
        assert speak_from - 1.0 <= m["start"] < m["end"] <= speak_to + 1.0, (m, speak_from)
    # The lawyer sees the same captions; the judge's silence produced nothing.
    await lawyer.wait_for(lambda: any(m.get("type") == "caption" and m["final"]
                                      for m in lawyer.messages))
    transcription = [m for m in judge.messages if m.get("type") == "transcription"]
    assert transcription and "lag_seconds" in transcription[-1]
    assert not [m for m in lawyer.messages if m.get("type") == "transcription"]

    # The record holds the lines at once, in order, attributed.
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript", headers=admin)
    record = await r.json()
    assert record["version"] == 1
    lines = record["items"]
    assert [line["id"] for line in lines] == [m["segment_id"] for m in finals()]
    assert all(line["participant"] == "Lawyer Li" and line["role"] == "lawyer" and
               line["revision"] == 1 and line["words"] for line in lines)
    assert [line["start"] for line in lines] == sorted(line["start"] for line in lines)

    # A correction keeps the history.
    first = lines[0]
    corrected = "The court is now in session."
    r = await client.patch(f"/api/v1/hearings/{hearing.id}/transcript/{first['id']}",
                           json={"text": corrected}, headers=admin)
    assert r.status == 200, await r.text()
    assert (await r.json())["revision"] == 2
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript/{first['id']}/revisions",
                         headers={"Authorization": f"Bearer {hearing.tokens['judge']}"})
    [revision] = (await r.json())["items"]
    assert revision["before"] == first["text"] and revision["after"] == corrected
    assert revision["author"] == "admin" and revision["revision"] == 2
    # The judge corrects from the review page with their own link; a party cannot, even
    # when the judge let them review.
    url = f"/api/v1/hearings/{hearing.id}/transcript/{first['id']}"
    r = await client.patch(url, json={"text": corrected + " Please be seated."},
                           headers={"Authorization": f"Bearer {hearing.tokens['judge']}"})
    assert r.status == 200 and (await r.json())["revision"] == 3, await r.text()
    r = await client.put(f"/api/v1/hearings/{hearing.id}/participants/{hearing.ids['lawyer']}"
                         "/review", json={"may_review": True}, headers=admin)
    assert r.status == 200, await r.text()
    r = await client.patch(url, json={"text": "tampered"},
                           headers={"Authorization": f"Bearer {hearing.tokens['lawyer']}"})
    assert r.status == 403 and "judge or clerk" in (await r.json())["error"]["message"]
    r = await client.get(f"{url}/revisions", headers=admin)
    assert [x["author"] for x in (await r.json())["items"]] == [
        "admin", f"participant:{hearing.ids['judge']}"]
    r = await client.put(f"/api/v1/hearings/{hearing.id}/participants/{hearing.ids['lawyer']}"
                         "/review", json={"may_review": False}, headers=admin)
    assert r.status == 200, await r.text()
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript",
                         headers={"Authorization": f"Bearer {hearing.tokens['lawyer']}"})
    assert r.status == 403

    # Exports parse and carry the corrected line.
    base = f"/api/v1/hearings/{hearing.id}/transcript/export"
    r = await client.get(f"{base}/vtt", headers=admin)
    cues = webvtt.from_buffer(io.StringIO(await r.text()))
    assert len(cues) == len(lines) and corrected in cues[0].text
    r = await client.get(f"{base}/srt", headers=admin)
    subtitles = list(srt.parse(await r.text()))
    assert len(subtitles) == len(lines) and corrected in subtitles[0].content
    r = await client.get(f"{base}/docx", headers=admin)
    assert r.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    document = docx.Document(io.BytesIO(await r.read()))
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    text = "\n".join([p.text for p in document.paragraphs] + cells)
    assert "(2026)测01刑初1号" in text and corrected in text and "Lawyer Li" in text
    r = await client.get(f"{base}/pdf", headers=admin)
    assert r.status == 404

    await command(judge, "close", "closed")
    await sealed(client, hearing, admin)
    for _ in range(50):
        events = await audit_actions(client, hearing, admin)
        seals = [e for e in events if e["action"] == "transcript.sealed"]
        if seals:
            break
        await asyncio.sleep(0.1)
    [seal] = seals
    assert seal["data"]["lines"] == len(lines) and len(seal["data"]["record_sha256"]) == 64
    assert "transcript.corrected" in [e["action"] for e in events]

    # Retranscribing the recordings makes a new version; the live record stays.
    env = {**os.environ, "TINGSHEN_DATA_DIR": str(settings.data_dir),
           "TINGSHEN_DATABASE_URL": settings.database, "TINGSHEN_WHISPER_MODEL": "tiny.en"}
    env.pop("TINGSHEN_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "tingshen"), "retranscribe", hearing.id,
        "--beam-size", "2", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()
    assert "100%" in err.decode() and "trial record version 2" in out.decode()
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript", headers=admin)
    again = await r.json()
    assert again["version"] == 2 and again["items"]
    assert all(line["participant"] == "Lawyer Li" for line in again["items"])
    assert in_order(words(OPENING), words(" ".join(li["text"] for li in again["items"]))) >= 0.7
    # Offsets on the timeline agree with the live record's within a second.
    assert abs(again["items"][0]["start"] - lines[0]["start"]) < 1.0


async def test_a_slow_recognizer_delays_the_record_but_not_the_hearing(
    auto_hearing, participants, client, admin, monkeypatch  # noqa: F811
):
    from transcription.recognizer import Recognizer

    original = Recognizer.transcribe

    def slow(self, *args, **kwargs):  # runs on the inference thread
        time.sleep(3.0)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Recognizer, "transcribe", slow)
    hearing = auto_hearing
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    speech = SpeechTrack(SPEECH / "en_opening.wav")
    lawyer.audio = speech
    participants.extend([judge, lawyer])
    for c, role in ((judge, "judge"), (lawyer, "lawyer")):
        await c.join(hearing.tokens[role])
    lawyer_id = hearing.ids["lawyer"]
    await judge.wait_for(lambda: judge.frames_from(lawyer_id, "video") > 5)
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    speech.speak_at = time.time() + 0.5
    # While the recognizer is behind, the judge keeps receiving the lawyer at full rate.
    await asyncio.sleep(speech.seconds + 1.5)
    before, since = judge.frames_from(lawyer_id, "video"), time.monotonic()
    await asyncio.sleep(3.0)
    rate = (judge.frames_from(lawyer_id, "video") - before) / (time.monotonic() - since)
    assert rate > 20, rate
    lags = [m["lag_seconds"] for m in judge.messages if m.get("type") == "transcription"]
    assert max(lags) > 1.0, lags  # the judge sees the record falling behind
    # Nothing is lost: the lines come, late.
    deadline = time.monotonic() + 60
    while True:
        r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript", headers=admin)
        heard = " ".join(line["text"] for line in (await r.json())["items"])
        if in_order(words(OPENING), words(heard)) >= 0.7:
            break
        assert time.monotonic() < deadline, heard
        await asyncio.sleep(0.5)

"""The live trial record through a real server: speech in, attributed lines and captions out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import docx
import numpy as np
import pytest
import srt
import webvtt

import signaling.recording as recording_module
from courtrooms.transcripts import SETTLING
from tests.clients import HearingClient, SpeechTrack
from tests.servers import free_port
from tests.signaling.conftest import schedule
from tests.signaling.test_recording import (
    audit_actions,
    auto_hearing,  # noqa: F401 (a fixture)
    command,
    sealed,
)
from tests.speech import SPEECH
from tests.transcription.conftest import matched_in_order
from tests.transcription.conftest import share_in_order as in_order
from web.app import create_app
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

OPENING = ("The court is now in session. The defendant will please state his full name for "
           "the record.")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


# `in_order` is the longest common subsequence, not a greedy scan: a greedy scan that matched a
# common word ("the") far ahead lost every word before it (a record 14 of 17 words right scored
# 7 of 17 in CI).


def finals(c: HearingClient) -> list[dict[str, Any]]:
    """The final captions `c` was sent, in order: the live lines as the court saw them."""
    return [m for m in c.messages if m.get("type") == "caption" and m["final"]]


async def lawyer_speaks_in_session(hearing: Any, participants: list[HearingClient]
                                   ) -> tuple[HearingClient, HearingClient, SpeechTrack, float]:
    """The judge and a lawyer who will read the opening (from `speech.speak_at`), both
    connected, the hearing in session; `started` is when the judge saw it start."""
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
    return judge, lawyer, speech, started


async def test_speech_becomes_attributed_lines_captions_and_a_sealed_record(
    auto_hearing, participants, client, admin, settings  # noqa: F811
):
    hearing = auto_hearing
    judge, lawyer, speech, started = await lawyer_speaks_in_session(hearing, participants)
    speech.speak_at = time.time() + 1.0
    said_until = speech.speak_at + speech.seconds
    lawyer_id = hearing.ids["lawyer"]

    def heard() -> str:
        return " ".join(m["text"] for m in finals(judge))

    # On a busy machine the record runs behind the speech: wait for it, not for a time.
    with contextlib.suppress(TimeoutError):
        await judge.wait_for(lambda: time.time() > said_until + 3
                             and in_order(words(OPENING), words(heard())) >= 0.7, within=90)
    assert in_order(words(OPENING), words(heard())) >= 0.7, [
        (m["start"], m["end"], m["text"]) for m in finals(judge)]
    captions = [m for m in judge.messages if m.get("type") == "caption"]
    assert all(m["participant_id"] == lawyer_id for m in captions), captions
    # Partial captions are best effort (skipped when the recognizer is behind; their rate is
    # tested in tests/transcription); those that come are the speaker's, as checked above.
    # Lines sit where the speech was on the hearing timeline (from the start of the session).
    speak_from, speak_to = speech.speak_at - started, said_until - started
    for m in finals(judge):
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
    # (On a machine slow enough for the record to take half a minute, settling may already
    # have revised a line, or added one the live lines missed: revision 2.)
    shown = {m["segment_id"] for m in finals(judge)}
    assert [line["id"] for line in lines if line["id"] in shown] == [
        m["segment_id"] for m in finals(judge)]
    assert all(line["participant"] == "Lawyer Li" and line["role"] == "lawyer" and
               line["revision"] >= 1 and line["words"] for line in lines)
    assert [line["start"] for line in lines] == sorted(line["start"] for line in lines)

    # A correction keeps the history.
    first = lines[0]
    corrected = "The court is now in session."
    r = await client.patch(f"/api/v1/hearings/{hearing.id}/transcript/{first['id']}",
                           json={"text": corrected}, headers=admin)
    assert r.status == 200, await r.text()
    assert (await r.json())["revision"] == first["revision"] + 1
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript/{first['id']}/revisions",
                         headers={"Authorization": f"Bearer {hearing.tokens['judge']}"})
    [revision] = [x for x in (await r.json())["items"] if x["author"] != SETTLING]
    assert revision["before"] == first["text"] and revision["after"] == corrected
    assert revision["author"] == "admin" and revision["revision"] == first["revision"] + 1
    # The judge corrects from the review page with their own link; a party cannot, even
    # when the judge let them review.
    url = f"/api/v1/hearings/{hearing.id}/transcript/{first['id']}"
    r = await client.patch(url, json={"text": corrected + " Please be seated."},
                           headers={"Authorization": f"Bearer {hearing.tokens['judge']}"})
    assert r.status == 200 and (await r.json())["revision"] == first["revision"] + 2, (
        await r.text())
    r = await client.put(f"/api/v1/hearings/{hearing.id}/participants/{hearing.ids['lawyer']}"
                         "/review", json={"may_review": True}, headers=admin)
    assert r.status == 200, await r.text()
    r = await client.patch(url, json={"text": "tampered"},
                           headers={"Authorization": f"Bearer {hearing.tokens['lawyer']}"})
    assert r.status == 403 and "judge or clerk" in (await r.json())["error"]["message"]
    r = await client.get(f"{url}/revisions", headers=admin)
    assert [x["author"] for x in (await r.json())["items"] if x["author"] != SETTLING] == [
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
    # What was sealed: the record after the close settled it.
    sealed_lines = await record_of(client, hearing, admin)
    assert seal["data"]["lines"] == len(sealed_lines) >= len(lines)
    assert len(seal["data"]["record_sha256"]) == 64
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
    judge, _, speech, _ = await lawyer_speaks_in_session(hearing, participants)
    lawyer_id = hearing.ids["lawyer"]

    async def video_rate() -> float:
        before, since = judge.frames_from(lawyer_id, "video"), time.monotonic()
        await asyncio.sleep(3.0)
        return (judge.frames_from(lawyer_id, "video") - before) / (time.monotonic() - since)

    # The rate this machine forwards at now, before anyone speaks (a busy machine forwards
    # less: 12.8 fps was seen in CI while the recognizer was behind).
    idle = await video_rate()
    speech.speak_at = time.time() + 0.5
    # While the recognizer is behind, the judge keeps receiving the lawyer as before (a
    # decode that held the event loop would stop the video for its 3 s).
    await asyncio.sleep(speech.seconds + 1.5)
    behind = await video_rate()
    assert idle > 5 and behind >= 0.6 * idle, (idle, behind)
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


# -- a record that never stops (issue 14, section 1) ---------------------------------------

SCRIPT = [("en_opening.wav", OPENING),
          ("en_witness.wav", "Your honor, the prosecution calls its first witness. Please raise "
                             "your right hand.")]
PAUSE_S = 1.0


def talk(path: Path, order: list[int]) -> list[tuple[float, float, str]]:
    """Write the script's sentences in `order` with pauses to one WAV; returns each
    sentence's (from, to) seconds into it and its text."""
    pieces, spans, at = [], [], 0.0
    for i in order:
        name, text = SCRIPT[i]
        with wave.open(str(SPEECH / name)) as f:
            rate = f.getframerate()
            samples = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
        pieces += [samples, np.zeros(int(PAUSE_S * rate), dtype=np.int16)]
        spans.append((at, at + samples.size / rate, text))
        at += samples.size / rate + PAUSE_S
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.concatenate(pieces).tobytes())
    return spans


async def record_of(client: Any, hearing: Any, admin: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript", headers=admin)
    assert r.status == 200, await r.text()
    return list((await r.json())["items"])


async def closed_and_sealed(client: Any, hearing: Any, admin: dict[str, str]) -> list[str]:
    """The hearing's audit actions once its recordings and record are sealed (the record's
    gaps are transcribed from the recording first, which takes a while on a busy machine)."""
    deadline = time.monotonic() + 120
    while not {"recording.sealed", "transcript.sealed"} <= set(actions := [
            e["action"] for e in await audit_actions(client, hearing, admin)]):
        assert time.monotonic() < deadline, actions
        await asyncio.sleep(0.2)
    return actions


def alerts(c: HearingClient, code: str) -> list[dict[str, Any]]:
    return [m for m in c.messages if m.get("type") == "alert" and m.get("code") == code]


async def test_a_record_far_behind_spills_to_disk_and_every_line_arrives(
    auto_hearing, participants, client, admin, monkeypatch, tmp_path  # noqa: F811
):
    from transcription.recognizer import Recognizer

    # One utterance waits in memory, the rest on disk; each decode takes 2.5 s longer, and two
    # people speak at once: the record falls far behind.
    recognizer = client.server.app[HUB].services.worker.recognizer
    monkeypatch.setattr(recognizer, "options",
                        dataclasses.replace(recognizer.options, max_queued_utterances=1))
    original = Recognizer.transcribe

    def slow(self, *args, **kwargs):  # runs on the inference thread
        time.sleep(2.5)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Recognizer, "transcribe", slow)
    monkeypatch.setattr(recording_module, "BEHIND_ALERT_S", 4.0)
    hearing = auto_hearing
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    scripts = {"lawyer": talk(tmp_path / "lawyer.wav", [0, 1, 0]),
               "judge": talk(tmp_path / "judge.wav", [1, 0])}
    tracks = {role: SpeechTrack(tmp_path / f"{role}.wav") for role in scripts}
    judge.audio, lawyer.audio = tracks["judge"], tracks["lawyer"]
    participants.extend([judge, lawyer])
    for c, role in ((judge, "judge"), (lawyer, "lawyer")):
        await c.join(hearing.tokens[role])
    await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "video") > 5)
    await command(judge, "open", "open")
    started = await command(judge, "start", "in_session")
    speak_at = time.time() + 1.0
    for track in tracks.values():
        track.speak_at = speak_at

    def state() -> list[dict[str, Any]]:
        return [m for m in judge.messages if m.get("type") == "transcription"]

    # The court is told, clearly, how far behind the record is; the lines spill to disk.
    await judge.wait_for(lambda: bool(alerts(judge, "record_behind")), within=90)
    [behind] = alerts(judge, "record_behind")[:1]
    assert behind["lag_seconds"] >= 4.0 and "behind" in behind["message"], behind
    await judge.wait_for(lambda: any(m["spilled"] > 0 for m in state()), within=90)
    assert any(m["state"] == "behind" for m in state())
    assert not alerts(lawyer, "record_behind")
    # Every sentence of both speakers reaches the record, late, in the speaker's own lines
    # and in the order said. (Not by clock position: on a busy machine the clients' tracks
    # run seconds behind the wall clock, and the server rightly places speech when it came.)
    expected = sum(len(s) for s in scripts.values())
    deadline = time.monotonic() + 180
    while True:
        lines = await record_of(client, hearing, admin)
        found = []
        for role, spans in scripts.items():
            mine = sorted((li for li in lines if li["participant_id"] == hearing.ids[role]),
                          key=lambda li: li["start"])
            assert all(li["start"] >= speak_at - started - 1.0 for li in mine), mine
            said = [words(text) for _, _, text in spans]
            matched = matched_in_order([w for s in said for w in s],
                                       words(" ".join(li["text"] for li in mine)))
            at = 0
            for sentence in said:
                found.append(sum(matched[at:at + len(sentence)]) >= 0.6 * len(sentence))
                at += len(sentence)
        if sum(found) == expected:
            break
        assert time.monotonic() < deadline, (found, [(li["participant"], li["start"], li["text"])
                                                     for li in lines])
        await asyncio.sleep(1.0)
    assert not alerts(judge, "record_stopped")
    # Then it catches up and says so. Each waiting utterance costs 2.5 s here and more on a busy
    # machine (one whose stalls cut utterances has more of them): wait while the queue goes
    # down, not for a fixed time.
    progress, last_seen = time.monotonic(), None
    reported, report_count = time.monotonic(), len(state())
    while not alerts(judge, "record_caught_up"):
        reports = state()
        seen = (reports[-1]["queued"], reports[-1]["lines"]) if reports else None
        if seen != last_seen:
            progress, last_seen = time.monotonic(), seen
        if len(reports) != report_count:
            reported, report_count = time.monotonic(), len(reports)
        # The court is told every 2 s: a silence says the reports stopped (or this process's
        # loop did), not the record (once in CI: no progress for 60 s, cause unknown).
        assert time.monotonic() - reported < 30, (
            "no report on the record for 30 s", judge.closed_code,
            [m.get("type") for m in judge.messages[-8:]], reports[-3:])
        assert time.monotonic() - progress < 60, ("no progress towards catching up",
                                                   reports[-3:])
        await asyncio.sleep(0.5)
    assert all(not li["recovered"] for li in lines)


async def test_a_failed_transcriber_is_restarted_and_its_gap_recovered_from_the_recording(
    auto_hearing, participants, client, admin, monkeypatch  # noqa: F811
):
    from transcription.pipeline import HearingTranscriber

    original = HearingTranscriber._recognize_final
    finals = 0

    def breaks_once(self, *args):  # the decode of a final, on the inference thread
        nonlocal finals
        finals += 1
        if finals == 1:
            raise RuntimeError("the recognizer broke")
        return original(self, *args)

    monkeypatch.setattr(HearingTranscriber, "_recognize_final", breaks_once)
    # Each final decoded when its utterance ends (not taken from a decode begun as the
    # speaker fell quiet, whose failure costs only time): the first one breaks.
    monkeypatch.setattr(HearingTranscriber, "_early_for", lambda self, final: None)
    hearing = auto_hearing
    judge, lawyer, speech, started = await lawyer_speaks_in_session(hearing, participants)
    speech.speak_at = time.time() + 1.0

    # The court is told at once, in hearing time; the transcriber comes back by itself.
    await judge.wait_for(lambda: bool(alerts(judge, "record_stopped")), within=60)
    [stopped] = alerts(judge, "record_stopped")
    assert re.fullmatch(r"the record has stopped at 0:00:\d\d; .*", stopped["message"]), stopped
    assert speech.speak_at - started - 1.0 <= stopped["at"] <= time.time() - started
    assert not alerts(lawyer, "record_stopped")
    r = await client.get("/readyz")
    ready = await r.json()
    # Degraded, not unready: a load balancer must not drop the process holding the hearing.
    assert r.status == 200 and ready["status"] == "degraded", ready
    assert ready["checks"]["transcription"] == "degraded"
    r = await client.get("/metrics")
    text = await r.text()
    assert "tingshen_transcriber_failures_total 1.0" in text, text
    assert "tingshen_records_with_gaps 1.0" in text
    await judge.wait_for(lambda: bool(alerts(judge, "record_resumed")), within=30)

    # After the restart the record is taken live again.
    # A pause the live record can start from: the restart takes the speaker back at a pause.
    await judge.wait_for(lambda: speech.quiet_s >= 1.0, within=60)
    witness = SpeechTrack(SPEECH / "en_witness.wav")
    speech.say(witness.speech, 0.0)
    said_until = speech.speak_at + witness.seconds
    try:
        # Once in CI no final came in 60 s (not reproduced): the last reports say why.
        await judge.wait_for(lambda: any(m.get("type") == "caption" and m["final"]
                                         and "witness" in m["text"].lower()
                                         for m in judge.messages), within=120)
    except TimeoutError as e:
        reports = [m for m in judge.messages if m.get("type") == "transcription"]
        raise AssertionError(("no final caption of the witness", reports[-3:])) from e
    await judge.wait_for(lambda: time.time() > said_until + 1.0)

    # At the recess the gap is transcribed from the files just finished; the court is told.
    await command(judge, "recess", "recess")
    await judge.wait_for(lambda: bool(alerts(judge, "record_recovered")), within=60)
    [recovered_alert] = alerts(judge, "record_recovered")
    assert recovered_alert["participant_id"] == hearing.ids["lawyer"]
    assert recovered_alert["lines"] >= 1 and "from the recording" in recovered_alert["message"]
    assert any(li["recovered"] for li in await record_of(client, hearing, admin))
    deadline = time.monotonic() + 30  # every participant's gap is done, the silent one's too
    while (ready := await (await client.get("/readyz")).json())["status"] != "ready":
        assert time.monotonic() < deadline, ready
        await asyncio.sleep(0.2)
    await command(judge, "close", "closed")
    actions = await closed_and_sealed(client, hearing, admin)
    assert actions.count("transcript.recovered") >= 1
    for action in ("transcript.stopped", "transcript.resumed", "transcript.recovered"):
        assert action in actions, actions
    assert actions.index("transcript.recovered") < actions.index("transcript.sealed")
    lines = await record_of(client, hearing, admin)
    recovered = [li for li in lines if li["recovered"]]
    live = [li for li in lines if not li["recovered"]]
    assert recovered and live, lines
    heard = " ".join(li["text"] for li in sorted(lines, key=lambda li: li["start"]))
    assert in_order(words(OPENING), words(heard)) >= 0.7, heard
    assert in_order(words(SCRIPT[1][1]), words(heard)) >= 0.7, heard
    assert all(li["start"] < min(x["start"] for x in live if "witness" in x["text"].lower())
               for li in recovered)
    # The exports say which lines were recovered.
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript/export/txt", headers=admin)
    assert "（据录音补录）" in await r.text()
    r = await client.get("/readyz")
    assert (await r.json())["status"] == "ready"


async def test_a_hearing_whose_transcription_never_works_still_closes_and_seals(
    auto_hearing, participants, client, admin, monkeypatch  # noqa: F811
):
    from transcription.recognizer import Recognizer

    def broken(self, *args, **kwargs):  # runs on the inference thread
        raise RuntimeError("the recognizer is broken")

    monkeypatch.setattr(Recognizer, "transcribe", broken)
    hearing = auto_hearing
    judge, _, speech, _ = await lawyer_speaks_in_session(hearing, participants)
    speech.speak_at = time.time() + 0.5
    await judge.wait_for(lambda: bool(alerts(judge, "record_stopped")), within=60)
    await judge.wait_for(lambda: time.time() > speech.speak_at + speech.seconds + 0.5)
    await command(judge, "close", "closed")
    # What exists is sealed; the failure, and what could not be recovered, are audited.
    actions = await closed_and_sealed(client, hearing, admin)
    for action in ("transcript.stopped", "transcript.recovery_failed", "transcript.incomplete"):
        assert action in actions, actions
    assert "hearing.sealing_failed" not in actions
    assert actions.index("transcript.incomplete") < actions.index("transcript.sealed")
    assert await record_of(client, hearing, admin) == []
    # The record itself says where speech is missing and who said it; so do its documents.
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript", headers=admin)
    holes = (await r.json())["untranscribed"]
    assert [(h["participant_id"], h["role"]) for h in holes] == [
        (hearing.ids["lawyer"], "lawyer")], holes
    start, end = holes[0]["start"], holes[0]["end"]
    assert start >= 0 and (end is None or end > start), holes
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript/export/txt", headers=admin)
    notes = [line for line in (await r.text()).splitlines()
             if "【记录中断】" in line or "[Record incomplete]" in line]
    assert len(notes) == 1 and holes[0]["participant"] in notes[0], notes
    r = await client.get("/metrics")
    failed = re.search(r"^tingshen_recoveries_failed_total (\S+)$", await r.text(), re.M)
    assert failed is not None and float(failed[1]) >= 1


# A slow recognizer injected into a real server process: nothing it hears reaches the record
# before the process is killed.
SLOW_DECODE_HOOK = '''
import time
from transcription.recognizer import Recognizer

_transcribe = Recognizer.transcribe

def _slow(self, *args, **kwargs):
    if not kwargs.get("draft"):
        time.sleep(600)
    return _transcribe(self, *args, **kwargs)

Recognizer.transcribe = _slow
'''


async def test_what_a_killed_server_never_transcribed_is_recovered_when_the_hearing_resumes(
    tmp_path, database_url
):
    from tests.web.test_cli import TINGSHEN, clean_env, http, read_until, stop_server

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_DECODE_HOOK)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(tmp_path / "var", TINGSHEN_ICE_HOST_ADDRESSES="127.0.0.1",
                    TINGSHEN_DATABASE_URL=database_url)

    def serve(*args: str, **extra: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [str(TINGSHEN), "serve", "--port", str(port), *args],
            env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return proc, read_until(proc, "API:")

    proc, out = serve("--seed-demo",
                      PYTHONPATH=f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    try:
        token = re.search(r"judge\s+\S+\s+\S+/join/(\S+)", out)
        admin_token = re.search(r"^API token \([^)]*\): (\S+)", out, re.MULTILINE)
        assert token and admin_token, out
        admin = {"Authorization": f"Bearer {admin_token.group(1)}"}
        judge = HearingClient(base, "judge")
        speech = SpeechTrack(SPEECH / "en_opening.wav")
        judge.audio = speech
        try:
            await judge.join(token.group(1))
            hearing_id = (await judge.next_message("welcome"))["hearing"]["id"]
            await judge.next_message("offer")
            for action, state in (("open", "open"), ("start", "in_session")):
                await command(judge, action, state)
            speech.speak_at = time.time() + 0.5
            # Killed once the speech is in the file (a killed writer loses its last 2 s).
            await judge.wait_for(lambda: time.time() > speech.speak_at + speech.seconds + 3.0)
            status, text = http(f"{base}/api/v1/hearings/{hearing_id}/transcript", admin)
            assert status == 200 and json.loads(text)["items"] == [], text
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            await judge.close()

        proc, _ = serve()  # the same server, recognizing normally
        judge = HearingClient(base, "judge")
        try:
            await judge.join(token.group(1))
            await judge.next_message("welcome", within=30)
            deadline = time.monotonic() + 120
            while True:
                status, text = http(f"{base}/api/v1/hearings/{hearing_id}/transcript", admin)
                lines = json.loads(text)["items"]
                heard = " ".join(li["text"] for li in lines)
                if in_order(words(OPENING), words(heard)) >= 0.7:
                    break
                assert time.monotonic() < deadline, lines
                await asyncio.sleep(0.5)
            assert all(li["recovered"] for li in lines), lines
            # Audited once the whole span is transcribed: its lines are committed one by one
            # before that, and the last may still be decoding when enough words are in.
            while True:
                status, text = http(f"{base}/api/v1/audit?hearing_id={hearing_id}&limit=200",
                                    admin)
                actions = [e["action"] for e in json.loads(text)["items"]]
                if "transcript.recovered" in actions:
                    break
                assert time.monotonic() < deadline, actions
                await asyncio.sleep(0.5)
        finally:
            await judge.close()
    finally:
        stop_server(proc, 30)


async def test_a_participant_is_recognized_in_their_own_language(
    aiohttp_client, settings, clock, participants, admin
):
    """A Mandarin hearing with a witness who speaks English: the clerk gives the witness's
    language when inviting them; their lines are recognized in English and marked so."""
    # The multilingual model a court runs: tiny.en hears only English.
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"whisper_model": "base"}), clock=clock))
    hearing = await schedule(client, admin, clock, auto_admit=True)
    url = f"/api/v1/hearings/{hearing.id}/participants"
    r = await client.post(url, headers=admin, json={
        "name": "Robert Miller", "role": "witness", "location": "remote", "language": "english"})
    assert r.status == 422 and "language" in await r.text()
    r = await client.post(url, headers=admin, json={
        "name": "Robert Miller", "role": "witness", "location": "remote", "language": "en"})
    assert r.status == 201, await r.text()
    witness_invited = await r.json()
    assert witness_invited["language"] == "en"
    r = await client.get(url, headers=admin)
    listed = {p["name"]: p["language"] for p in (await r.json())["items"]}
    assert listed == {"Judge Wang": None, "Zhang San": None, "Lawyer Li": None,
                      "Robert Miller": "en"}

    judge = HearingClient(hearing.base_url, "judge")
    witness = HearingClient(hearing.base_url, "witness")
    speech = SpeechTrack(SPEECH / "en_opening.wav")
    witness.audio = speech
    participants.extend([judge, witness])
    await judge.join(hearing.tokens["judge"])
    await witness.join(witness_invited["token"])
    # A witness waits outside until the court calls them in (even where all are admitted).
    await judge.wait_for(lambda: (judge.seat(witness_invited["id"]) or {}).get("present"))
    await judge.send({"type": "command", "action": "admit",
                      "participant_id": witness_invited["id"]})
    await judge.wait_for(lambda: judge.frames_from(witness_invited["id"], "video") > 5)
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    speech.speak_at = time.time() + 1.0

    def heard_so_far() -> str:
        return " ".join(m["text"] for m in finals(judge))

    # On a busy machine the track runs behind the wall clock and the record behind the
    # speech: wait for what was sent and for the record, not for a time.
    await judge.wait_for(lambda: speech.quiet_s >= 1.0, within=90)
    with contextlib.suppress(TimeoutError):
        await judge.wait_for(lambda: in_order(words(OPENING), words(heard_so_far())) >= 0.7,
                             within=120)
    assert in_order(words(OPENING), words(heard_so_far())) >= 0.7, [
        (m["start"], m["end"], m["text"]) for m in finals(judge)]
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript", headers=admin)
    lines = (await r.json())["items"]
    assert lines and {line["participant"] for line in lines} == {"Robert Miller"}
    # In the hearing's language (zh) the English would have come out as Chinese characters.
    assert {line["language"] for line in lines} == {"en"}, lines
    heard = " ".join(line["text"] for line in lines)
    assert in_order(words(OPENING), words(heard)) >= 0.7, heard



async def test_the_record_settles_behind_the_live_lines(
    auto_hearing, participants, client, admin, monkeypatch  # noqa: F811
):
    """Each participant's speech is decoded again behind the live lines (settling): its text
    takes the place of the live text, as a revision audited like a correction, and everyone
    but a witness is told. The settled decode is the real one, written in capitals here so
    that every line it settles differs from the live line and shows where it went."""
    from transcription.recognizer import Recognizer

    original = Recognizer.settle
    settled: list[Any] = []

    def capitals(self, *args, **kwargs):  # on the inference thread
        result = original(self, *args, **kwargs)
        result = dataclasses.replace(result, segments=tuple(
            dataclasses.replace(s, text=s.text.upper(),
                                words=tuple((w.upper(), *rest) for w, *rest in s.words))
            for s in result.segments))
        settled.append(result)
        return result

    monkeypatch.setattr(Recognizer, "settle", capitals)
    hearing = auto_hearing
    judge, lawyer, speech, _ = await lawyer_speaks_in_session(hearing, participants)
    speech.speak_at = time.time() + 1.0

    # All of it said (on a busy machine the track runs behind the wall clock, and what is said
    # after the recess is rightly not on the record: CI once cut "his full name" to "his
    # vote"), and its live lines in.
    await judge.wait_for(lambda: speech.quiet_s >= 1.0, within=90)
    with contextlib.suppress(TimeoutError):
        await judge.wait_for(lambda: in_order(words(OPENING), words(
            " ".join(m["text"] for m in finals(judge)))) >= 0.7, within=90)
    # The live lines as the court saw them (settling may already have revised some in the
    # record: in session it settles once the speaker's audio has stopped for `settle_stall_s`).
    live = {m["segment_id"]: m["text"] for m in finals(judge)}
    assert live
    # At a recess nothing more is heard: what was said is settled (in session, that waits
    # for the next 30 s of the lawyer's audio, their silence too).
    await command(judge, "recess", "recess")
    await judge.wait_for(lambda: any(m.get("type") == "record_line" for m in judge.messages),
                         within=120)
    await command(judge, "close", "closed")
    actions = await closed_and_sealed(client, hearing, admin)
    lines = await record_of(client, hearing, admin)
    spoken = [s for result in settled for s in result.segments]
    assert spoken, "nothing was settled"
    # The record reads as the settled decode: every line of it is in capitals.
    assert words(" ".join(li["text"] for li in lines)) == words(
        " ".join(s.text for s in spoken)), (lines, spoken)
    assert all(li["text"] == li["text"].upper() for li in lines), lines
    assert in_order(words(OPENING), words(" ".join(li["text"] for li in lines))) >= 0.7
    revised = [li for li in lines if li["id"] in live]
    assert revised and all(li["revision"] >= 2 for li in revised)
    r = await client.get(f"/api/v1/hearings/{hearing.id}/transcript/{revised[0]['id']}"
                         "/revisions", headers=admin)
    revisions = (await r.json())["items"]
    assert {revision["author"] for revision in revisions} == {"recognizer:settled"}
    assert revisions[0]["before"] == live[revised[0]["id"]]
    assert actions.count("transcript.corrected") >= len(revised)
    assert actions.index("transcript.corrected") < actions.index("transcript.sealed")
    # Everyone admitted was told, with the line's place in the record.
    told = {m["segment_id"]: m for m in judge.messages if m.get("type") == "record_line"}
    assert {li["id"] for li in lines} <= set(told), (told, lines)
    assert all(told[li["id"]]["text"] == li["text"] for li in lines)
    assert any(m.get("type") == "record_line" for m in lawyer.messages)
    # The record verifies: settling's revisions are on the audit chain.
    r = await client.get("/api/v1/audit/verify", headers=admin)
    assert (await r.json())["ok"] is True

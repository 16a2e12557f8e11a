"""Speech through Chromium's fake microphone into the live trial record, attributed and timed."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
import wave
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, Page

from tests.e2e.conftest import CHROMIUM_ARGS, Pages, pass_device_check
from tests.e2e.test_join import INBOUND, STATE_TIMEOUT_MS, join_url, wait_state
from tests.signaling.conftest import schedule
from tests.signaling.test_transcript import in_order, words
from tests.speech import SPEECH

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# Silence before the speech: the page joins and the hearing goes in session meanwhile.
LEAD_S = 8.0
TAIL_S = 4.0
# Where lines may sit on the timeline around the speech: the utterance detector's pre-roll and
# hang-over, Whisper's word timings, network and jitter-buffer delay.
SLACK_S = 1.5
RECORD_WITHIN_S = 45.0

# Instrumentation only (the page is untouched): when the page's getUserMedia resolved (the
# device check opens camera and microphone once and hands them to the hearing). Chromium
# starts playing the fake-capture file then (measured: the first sound reaches the record
# within ~0.1 s of LEAD_S later).
CAPTURE_CLOCK = """(() => {
  const devices = navigator.mediaDevices;
  const getUserMedia = devices.getUserMedia.bind(devices);
  window.__capture = [];
  devices.getUserMedia = async (constraints) => {
    const asked = Date.now();
    const stream = await getUserMedia(constraints);
    window.__capture.push({asked, got: Date.now(), audio: stream.getAudioTracks().length});
    return stream;
  };
})()"""
CONNECTED = "() => window.tingshen.pc && window.tingshen.pc.connectionState === 'connected'"


def reference(name: str) -> str:
    for row in (SPEECH / "transcripts.tsv").read_text(encoding="utf-8").splitlines():
        file, _, text = row.partition("\t")
        if file == name:
            return text
    raise LookupError(name)


def sound_span(wav: Path) -> tuple[float, float]:
    """Seconds from the start of a 16-bit mono WAV to its first and its last sound."""
    with wave.open(str(wav)) as f:
        rate = f.getframerate()
        samples = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 0.02 * 32768)
    return float(loud[0] / rate), float((loud[-1] + 1) / rate)


@pytest.fixture
def fake_microphone(tmp_path: Path) -> Path:
    """Silence, the opening statement, silence: 16-bit PCM, 48 kHz stereo, as Chromium's fake
    capture reads best."""
    out = tmp_path / "fake-microphone.wav"
    subprocess.run(
        ["sox", str(SPEECH / "en_opening.wav"), "-r", "48000", "-c", "2", "-b", "16",
         "-e", "signed-integer", str(out), "pad", str(LEAD_S), str(TAIL_S)],
        check=True,
    )
    return out


@pytest.fixture
async def speaking(browser: Browser, chromium: Path, fake_microphone: Path
                   ) -> AsyncIterator[Pages]:
    """A second Chromium whose fake microphone plays `fake_microphone` once (a launch flag, so
    one browser per speaker)."""
    launched = await browser.browser_type.launch(
        executable_path=str(chromium), headless=True,
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={fake_microphone}%noloop"],
    )
    opened = Pages(launched)
    try:
        yield opened
    finally:
        await opened.aclose()
        await launched.close()
        for name, lines in opened.console.items():
            print(f"--- console of {name} ---", *lines[-40:], sep="\n")


async def transcript(client: Any, admin: dict[str, str], hearing_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/hearings/{hearing_id}/transcript", headers=admin)
    assert r.status == 200, await r.text()
    items: list[dict[str, Any]] = (await r.json())["items"]
    return items


async def timeline_origin(client: Any, admin: dict[str, str], hearing_id: str) -> float:
    """The wall-clock instant that is 0 on the hearing timeline, once the session began."""
    for _ in range(100):
        r = await client.get(f"/api/v1/hearings/{hearing_id}/recordings", headers=admin)
        origin = (await r.json())["timeline_origin"]
        if origin is not None:
            return datetime.fromisoformat(origin).timestamp()
        await asyncio.sleep(0.1)
    raise AssertionError("the hearing never got a timeline origin")


async def transition(client: Any, admin: dict[str, str], hearing_id: str, action: str) -> None:
    r = await client.post(f"/api/v1/hearings/{hearing_id}/{action}", headers=admin)
    assert r.status == 200, await r.text()


async def open_speaking_page(pages: Pages, url: str, name: str
                             ) -> tuple[Page, list[dict[str, Any]]]:
    """Open `url` with the capture clock installed; returns the page and the messages its
    WebSocket receives."""
    page = await pages.open("about:blank", name)
    await page.add_init_script(CAPTURE_CLOCK)
    received: list[dict[str, Any]] = []

    def on_frame(payload: str | bytes) -> None:
        if isinstance(payload, str):
            received.append(json.loads(payload))

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    pages.responses[name] = await page.goto(url)
    await pass_device_check(page)
    return page, received


async def test_speech_from_chromiums_fake_microphone_enters_the_record(
    client, admin, clock, pages, speaking
):
    hearing = await schedule(client, admin, clock, auto_admit=True)
    judge = await pages.open(join_url(client, hearing.tokens["judge"]), "judge")
    await pass_device_check(judge)
    await wait_state(judge, "live")
    await judge.wait_for_function(CONNECTED, timeout=STATE_TIMEOUT_MS)
    await transition(client, admin, hearing.id, "open")

    lawyer, received = await open_speaking_page(
        speaking, join_url(client, hearing.tokens["lawyer"]), "lawyer"
    )
    await wait_state(lawyer, "live")
    await lawyer.wait_for_function(CONNECTED, timeout=STATE_TIMEOUT_MS)
    await transition(client, admin, hearing.id, "start")
    origin = await timeline_origin(client, admin, hearing.id)
    [capture] = await lawyer.evaluate("window.__capture")
    assert capture["audio"] == 1, capture
    # Where the file's speech plays on the hearing timeline.
    first_sound, last_sound = sound_span(SPEECH / "en_opening.wav")
    captured_at = capture["got"] / 1000 - origin
    speech_from, speech_to = (captured_at + LEAD_S + first_sound,
                              captured_at + LEAD_S + last_sound)
    assert speech_from > 1.0, (
        f"the hearing went in session {-speech_from:.1f} s after the speech began: "
        "the page took too long to join; lengthen LEAD_S"
    )

    lawyer_id = hearing.ids["lawyer"]
    deadline = time.time() + RECORD_WITHIN_S
    lines: list[dict[str, Any]] = []
    expected = words(reference("en_opening.wav"))
    while time.time() < deadline:
        lines = await transcript(client, admin, hearing.id)
        said = [line for line in lines if line["participant_id"] == lawyer_id]
        # Done once the record reaches the end of the speech and holds it (on a busy machine
        # a line cut at a pause reaches the end before the words after the cut are in).
        heard = words(" ".join(line["text"] for line in said))
        if said and said[-1]["end"] >= speech_to - SLACK_S and in_order(expected, heard) >= 0.7:
            break
        await asyncio.sleep(0.5)
    print(f"speech on the timeline {speech_from:.2f}..{speech_to:.2f} s,"
          f" getUserMedia took {capture['got'] - capture['asked']} ms", *lines, sep="\n")

    # The judge's fake microphone beeps all along, and the server got it (the lawyer heard it
    # through the server); a beep is not speech, so nothing of the judge is in the record.
    beep = await judge.evaluate("""async () => {
      let energy = 0;
      (await window.tingshen.pc.getStats()).forEach((s) => {
        if (s.type === "media-source" && s.kind === "audio") energy += s.totalAudioEnergy;
      });
      return energy;
    }""")
    assert beep > 0 and (await lawyer.evaluate(INBOUND))["audioPackets"] > 200, beep
    assert [line for line in lines if line["participant_id"] != lawyer_id] == []

    # The reference words, in order, all the lawyer's, where and when they were said.
    heard = words(" ".join(line["text"] for line in lines))
    assert in_order(expected, heard) >= 0.7, (heard, expected)
    for line in lines:
        assert line["participant"] == "Lawyer Li" and line["role"] == "lawyer", line
        assert line["revision"] >= 1 and line["words"], line  # 2 once settled
        assert speech_from - SLACK_S <= line["start"] < line["end"] <= speech_to + SLACK_S, (
            line, speech_from, speech_to)
        for word, start, end, _probability in line["words"]:
            assert line["start"] - 0.1 <= start <= end <= line["end"] + 0.1, (word, line)
    assert all(a["end"] <= b["start"] + 0.1 for a, b in itertools.pairwise(lines)), lines
    assert abs(lines[0]["start"] - speech_from) <= SLACK_S, (lines[0], speech_from)
    assert lines[-1]["end"] >= speech_to - SLACK_S, (lines[-1], speech_to)

    # The speaking page was sent each line as a final caption; no caption, partial or final,
    # is the judge's.
    def finals() -> list[dict[str, Any]]:
        return [m for m in received if m.get("type") == "caption" and m["final"]]

    for _ in range(20):  # committed first, then sent: the last one may still be on its way
        if len(finals()) >= len(lines):
            break
        await asyncio.sleep(0.1)
    assert [m["segment_id"] for m in finals()] == [line["id"] for line in lines], received
    captions = [m for m in received if m.get("type") == "caption"]
    assert all(m["participant_id"] == lawyer_id and m["name"] == "Lawyer Li"
               and m["role"] == "lawyer" for m in captions), captions
    # Both pages show the last lines as captions, with the speaker's name, and every line in
    # their trial record panel, in order.
    for page in (judge, lawyer):
        shown = await page.locator("#captions .caption.final").all_inner_texts()
        assert shown and shown[-1] == f"Lawyer Li：{lines[-1]['text']}", shown
        panel = await page.locator("#transcript li .text").all_inner_texts()
        assert panel == [line["text"] for line in lines], panel
        assert await page.locator("#transcript li .name").first.inner_text() == "Lawyer Li"
    assert not any(pages.errors().values()), pages.errors()
    assert not any(speaking.errors().values()), speaking.errors()

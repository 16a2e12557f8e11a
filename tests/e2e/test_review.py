"""Review of a real recorded hearing in real Chromium: real aiortc participants speak real speech
through the server (tiny.en), with a recess between; the judge opens /review/{id} from their
link (token in the fragment) and plays the record against the recordings: lines seek the video
through each file's offset on the hearing timeline, search finds words, a correction shows with
its revision, exhibits and exports are there, and sealing locks the record."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import Page

from tests.clients import HearingClient, SpeechTrack
from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import Pages, open_staff_page, save_screenshot, staff_sign_in
from tests.signaling.conftest import LiveHearing, schedule
from tests.signaling.test_recording import command, sealed
from tests.speech import SPEECH

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SEEK_TOLERANCE_S = 0.5
WAIT_MS = 20_000
COMPOSITE_WAIT_MS = 180_000

# Where the player is: its file, that file's offset on the timeline, and its position.
PLAYER = """() => {
  const v = document.getElementById('player');
  return {id: v.dataset.recordingId, offset: Number(v.dataset.offset), time: v.currentTime,
          readyState: v.readyState, duration: v.duration};
}"""


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 60, 90)).save(out, "PNG")
    return out.getvalue()


async def speak(judge: HearingClient, track: SpeechTrack) -> None:
    """`track`'s participant says its recording; returns once the lines reached the judge."""
    before = len(finals(judge))
    track.speak_at = time.time() + 1.0
    said_until = track.speak_at + track.seconds
    await judge.wait_for(lambda: len(finals(judge)) > before and time.time() > said_until + 3,
                         within=60)


def finals(judge: HearingClient) -> list[dict[str, Any]]:
    return [m for m in judge.messages if m.get("type") == "caption" and m["final"]]


async def recorded_hearing(client: Any, admin: dict[str, str], clock: Any
                           ) -> tuple[LiveHearing, dict[str, Any]]:
    """A closed hearing: the lawyer speaks, a recess, the judge speaks; an exhibit presented."""
    hearing = await schedule(client, admin, clock, auto_admit=True)
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    judge.audio = judge_says = SpeechTrack(SPEECH / "en_witness.wav")
    lawyer.audio = lawyer_says = SpeechTrack(SPEECH / "en_opening.wav")
    try:
        for c, role in ((judge, "judge"), (lawyer, "lawyer")):
            await c.join(hearing.tokens[role])
        await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "video") > 5)
        await command(judge, "open", "open")
        await command(judge, "start", "in_session")
        await speak(judge, lawyer_says)
        await command(judge, "recess", "recess")
        await asyncio.sleep(2.0)
        await command(judge, "resume", "in_session")
        await speak(judge, judge_says)
        r = await client.post(f"/api/v1/hearings/{hearing.id}/exhibits",
                              params={"title": "现场照片"}, data=png(),
                              headers={**admin, "Content-Type": "image/png"})
        assert r.status == 201, await r.text()
        exhibit = await r.json()
        await command(judge, "close", "closed")
        # The peers stay until the recordings are sealed: hanging up at once left the last
        # segment's files unfinished and the hearing never sealed (seen here, reported).
        await sealed(client, hearing, admin)
    finally:
        await judge.close()
        await lawyer.close()
    # Closing starts the composite's render in the background.
    for _ in range(100):
        if (await api(client, admin, f"/{hearing.id}/composite"))["state"] != "idle":
            break
        await asyncio.sleep(0.1)
    return hearing, exhibit


async def api(client: Any, admin: dict[str, str], path: str) -> Any:
    r = await client.get(f"/api/v1/hearings{path}", headers=admin)
    assert r.status == 200, await r.text()
    return await r.json()


async def click_line(page: Page, index: int) -> None:
    await page.locator("#transcript li.line").nth(index).locator(".line-text").click()


async def seeked_to(page: Page, line: dict[str, Any], files: dict[str, dict[str, Any]]
                    ) -> dict[str, Any]:
    """Wait until the player shows `line` from a file covering it, at its start; the file.

    A line whose start falls in a recess gap (the recognizer's lead-in) plays from where
    recording resumed: the start of the file, inside the line.
    """
    await page.wait_for_function(
        """([id, start, tolerance]) => {
          const v = document.getElementById('player');
          const current = document.querySelector('#transcript li.current');
          const offset = Number(v.dataset.offset);
          return v.readyState >= 1 && current && current.dataset.lineId === id
            && Math.abs(offset + v.currentTime - Math.max(start, offset)) < tolerance;
        }""",
        arg=[line["id"], line["start"], SEEK_TOLERANCE_S], timeout=WAIT_MS,
    )
    player = await page.evaluate(PLAYER)
    # The page's offset is the listing's, and the file has the line.
    chosen = files[player["id"]]
    assert player["offset"] == pytest.approx(chosen["offset"], abs=1e-6)
    offset, end = chosen["offset"], chosen["offset"] + chosen["duration"]
    assert offset - 0.05 <= line["start"] < end or line["start"] < offset < line["end"], chosen
    expected = max(line["start"], offset) - offset
    assert abs(player["time"] - expected) < SEEK_TOLERANCE_S, (player, expected)
    return chosen


async def test_judge_reviews_the_recorded_hearing_against_the_record(
    client, admin, clock, pages: Pages
):
    hearing, exhibit = await recorded_hearing(client, admin, clock)
    record = await api(client, admin, f"/{hearing.id}/transcript")
    lines = record["items"]
    assert len(lines) >= 2 and record["sealed"] is None, lines
    listing = await api(client, admin, f"/{hearing.id}/recordings")
    files = {f["id"]: f for f in listing["items"]}
    segments = listing["segments"]
    assert [s["index"] for s in segments] == [0, 1]

    url = str(client.make_url(f"/review/{hearing.id}")) + f"#token={hearing.tokens['judge']}"
    judge = await open_staff_page(pages, url, "judge")
    # The token is taken from the fragment and the address bar no longer shows it.
    await page_ready(judge, len(lines))
    assert "token" not in judge.url and await judge.locator("#staff-nav").is_hidden()
    shown = await judge.locator("#transcript li.line .line-text").all_inner_texts()
    assert shown == [line["text"] for line in lines]
    assert await judge.locator("#transcript li.recess").count() == 1  # the recess, between

    # The video loads.
    await judge.wait_for_function(
        "() => { const v = document.getElementById('player'); "
        "return v.readyState >= 1 && v.duration > 0; }", timeout=WAIT_MS)

    # The second line: the video seeks to it (through the file's offset) and it is highlighted.
    await click_line(judge, 1)
    await seeked_to(judge, lines[1], files)

    # A participant's file of the second segment starts after the recess: a line in it is
    # reached at start - offset.
    after = [line for line in lines if line["start"] >= segments[1]["start"]]
    before = [line for line in lines if line["start"] < segments[0]["end"]]
    assert after and before, (lines, segments)
    second = next(f for f in listing["items"] if f["kind"] == "participant"
                  and f["segment"] == 1 and f["participant_id"] == after[-1]["participant_id"])
    assert second["offset"] > segments[0]["end"]
    await judge.locator(f'button.file[data-recording-id="{second["id"]}"]').click()
    await click_line(judge, lines.index(after[-1]))
    chosen = await seeked_to(judge, after[-1], files)
    assert chosen["id"] == second["id"]
    # A line before the recess is not in that file: the page plays it from one that covers it
    # (the composite, or the speaker's own file).
    await click_line(judge, lines.index(before[0]))
    chosen = await seeked_to(judge, before[0], files)
    assert chosen["kind"] == "composite" or (
        chosen["segment"] == 0 and chosen["participant_id"] == before[0]["participant_id"])

    # Search: every line with the word is marked; next moves to the following match.
    word = "the"
    with_word = [i for i, line in enumerate(lines) if word in line["text"].lower()]
    assert with_word, lines
    await judge.locator("#transcript-search").fill(word)
    assert await judge.locator("#search-count").inner_text() == f"1 / {len(with_word)}"
    assert await judge.locator("#transcript li.line.match").count() == len(with_word)
    marks = await judge.locator("#transcript mark").all_inner_texts()
    assert marks and all(m.lower() == word for m in marks)
    current = judge.locator("#transcript li.current-match")
    assert await current.get_attribute("data-line-id") == lines[with_word[0]]["id"]
    if len(with_word) > 1:
        await judge.locator("#search-next").click()
        assert await current.get_attribute("data-line-id") == lines[with_word[1]]["id"]
    await judge.locator("#transcript-search").fill("")
    assert await judge.locator("#transcript mark").count() == 0

    # The exhibit, with its hash, and the exports: a click opens a short-lived signed link
    # made for the judge (the join token is never in a URL).
    item = judge.locator(f'#exhibits li[data-exhibit-id="{exhibit["id"]}"]')
    assert exhibit["sha256"] == hashlib.sha256(png()).hexdigest()
    assert exhibit["sha256"] in await item.inner_text() and "现场照片" in await item.inner_text()
    for export, check in (("docx", zipfile.is_zipfile),
                          ("vtt", lambda p: Path(p).read_text().startswith("WEBVTT"))):
        async with judge.expect_download() as downloading:
            await judge.locator(f"#export-{export}").click()
        download = await downloading.value
        assert "sig=" in download.url and hearing.tokens["judge"] not in download.url
        assert check(await download.path()), export
    async with judge.context.expect_page() as opening:
        await item.locator("a").click()
    shown = await opening.value
    await shown.wait_for_load_state()
    assert "sig=" in shown.url and hearing.tokens["judge"] not in shown.url
    assert await shown.evaluate("document.contentType") == "image/png"
    await shown.close()

    # The court's staff correct a line; the judge's page shows it with its revision.
    staff = await open_staff_page(pages, str(client.make_url(f"/review/{hearing.id}")), "staff")
    await staff_sign_in(staff, ADMIN_TOKEN)
    await page_ready(staff, len(lines))
    assert await staff.locator("#staff-nav").is_visible()
    corrected = "The court is now in session."
    first = staff.locator("#transcript li.line").first
    await first.locator("[data-action=edit]").click()
    await first.locator("textarea").fill(corrected)
    await first.locator("button[type=submit]").click()
    # The staff's revision is the last (settling may have revised the line before them).
    revision = first.locator(".revision").filter(has_text=corrected).last
    await revision.wait_for(timeout=WAIT_MS)
    assert await first.locator(".line-text").inner_text() == corrected
    assert lines[0]["text"] in await revision.locator("del").inner_text()
    assert corrected in await revision.locator("ins").inner_text()
    again = await api(client, admin, f"/{hearing.id}/transcript")
    assert again["items"][0]["text"] == corrected
    assert again["items"][0]["revision"] == lines[0]["revision"] + 1

    await judge.reload()
    await page_ready(judge, len(lines))
    line_one = judge.locator("#transcript li.line").first
    assert await line_one.locator(".line-text").inner_text() == corrected
    # One correction by people; settling's revision, if it revised the line, shown apart.
    assert "1" in await line_one.locator(".badge.corrected").inner_text()
    assert await line_one.locator(".badge.settled").count() == int(lines[0]["settled"])
    assert lines[0]["settled"] == (lines[0]["revision"] == 2)

    # Once rendered, the composite is listed first; it starts at 0 on the timeline.
    composite = judge.locator("button.file[data-kind=composite]")
    await composite.wait_for(timeout=COMPOSITE_WAIT_MS)
    assert await judge.locator("#recordings li").first.locator("[data-kind=composite]").count()
    listing = await api(client, admin, f"/{hearing.id}/recordings")
    files = {f["id"]: f for f in listing["items"]}
    await composite.click()
    await click_line(judge, 1)
    chosen = await seeked_to(judge, lines[1], files)
    assert chosen["kind"] == "composite" and chosen["offset"] == 0
    await save_screenshot(judge, "review")

    # The judge seals the record: confirmed, shown with its hash, editing gone everywhere.
    assert await judge.locator("#transcript [data-action=edit]").count() == len(lines)
    await judge.locator("#seal").click()
    dialog = judge.locator("dialog[open]")
    assert "不能再更正" in await dialog.inner_text()
    await dialog.locator("[data-action=confirm]").click()
    await judge.locator("#sealed").wait_for(timeout=WAIT_MS)
    seal = (await api(client, admin, f"/{hearing.id}/transcript"))["sealed"]
    assert seal and seal["by"] == f"participant:{hearing.ids['judge']}"
    assert seal["sha256"] in await judge.locator("#sealed").inner_text()
    assert "Judge Wang" in await judge.locator("#sealed").inner_text()
    assert await judge.locator("#seal").count() == 0
    assert await judge.locator("#transcript [data-action=edit]").count() == 0
    await staff.reload()
    await page_ready(staff, len(lines))
    await staff.locator("#sealed").wait_for()
    assert await staff.locator("#transcript [data-action=edit]").count() == 0
    r = await client.patch(f"/api/v1/hearings/{hearing.id}/transcript/{lines[1]['id']}",
                           json={"text": "changed"}, headers=admin)
    assert r.status == 409 and (await r.json())["error"]["code"] == "record_sealed"
    assert not any(pages.errors().values()), pages.errors()


async def page_ready(page: Page, count: int) -> None:
    await page.locator("#app").wait_for(state="visible", timeout=WAIT_MS)
    await page.locator("#transcript li.line").nth(count - 1).wait_for(timeout=WAIT_MS)

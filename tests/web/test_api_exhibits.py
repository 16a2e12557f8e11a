"""Exhibits through the real app on a real port, on SQLite and PostgreSQL: real PDFs and images."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

import courtrooms.exhibits
import web.api_exhibits
from config import Settings
from courtrooms.exhibits import MAX_EXHIBIT_BYTES
from tests.conftest import FakeClock
from tests.exhibit_files import A4, A4_LANDSCAPE, decoded, jpeg, pdf, png
from tests.web.support import (
    API,
    HEARING_END,
    HEARING_START,
    DatabaseState,
    Reply,
    World,
    assert_error,
    call,
    hearing_body,
    link,
)
from web.keys import REGISTRY

PDF = "application/pdf"
# Inside the fixtures' hearing's join window (it opens 30 minutes before the start).
IN_WINDOW = HEARING_START - timedelta(minutes=15)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(client: TestClient, hearing_id: str, data: Any, content_type: str | None,
                 headers: dict[str, str], title: str | None = "借款合同",
                 **params: str) -> Reply:
    if title is not None:
        params["title"] = title
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    return await call(client, "POST", f"{API}/hearings/{hearing_id}/exhibits", data=data,
                      headers=sent, params=params)


async def fetch(client: TestClient, path: str, headers: dict[str, str] | None = None,
                **params: str) -> tuple[int, Any, bytes]:
    async with client.get(API + path, headers=headers or {}, params=params) as resp:
        return resp.status, resp.headers, await resp.read()


def stored(settings: Settings) -> list[Path]:
    root = settings.data_dir / "exhibits"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def court_says(client: TestClient, hearing_id: str, participant_id: str,
                     word: str = "participant.admitted") -> None:
    """What the court's admit (or remove) command writes to the audit trail."""
    await client.server.app[REGISTRY].record(uuid.UUID(hearing_id), "participant:judge", word,
                                             participant_id=participant_id)


async def add_participant(client: TestClient, admin: dict[str, str], hearing_id: str,
                          name: str, role: str) -> tuple[str, str]:
    reply = await call(client, "POST", f"{API}/hearings/{hearing_id}/participants",
                       headers=admin, json={"name": name, "role": role, "location": "remote"})
    assert reply.status == 201, reply.text
    return reply.json["id"], reply.json["token"]


async def test_present_list_fetch_and_page_an_exhibit(
    client: TestClient, admin: dict[str, str], world: World, settings: Settings,
    clock: FakeClock,
) -> None:
    data = pdf(A4, A4_LANDSCAPE, A4)
    # The defendant presents from prison once the hearing's window opened and the court
    # admitted them.
    clock.now = IN_WINDOW
    await court_says(client, world.hearing_id, world.defendant_id)
    reply = await upload(client, world.hearing_id, data, PDF, bearer(world.defendant_token))
    assert reply.status == 201, reply.text
    exhibit = reply.json
    sha = hashlib.sha256(data).hexdigest()
    assert {k: v for k, v in exhibit.items() if k not in ("id", "created_at")} == {
        "hearing_id": world.hearing_id, "participant_id": world.defendant_id,
        "title": "借款合同", "media_type": PDF, "size": len(data), "sha256": sha, "pages": 3,
    }
    assert stored(settings) == [settings.data_dir / "exhibits" / world.hearing_id / f"{sha}.pdf"]
    assert stored(settings)[0].read_bytes() == data

    base = f"/hearings/{world.hearing_id}/exhibits"
    listing = (await link(client, world.judge_token, API + base)).json["url"]
    for headers, path in ((admin, base), (bearer(world.judge_token), base),
                          ({}, listing[len(API):])):
        status, _, body = await fetch(client, path, headers)
        assert status == 200, body
        assert [e["id"] for e in json.loads(body)["items"]] == [exhibit["id"]]
    # A join token in the URL is refused, whatever it opens.
    status, _, body = await fetch(client, base, token=world.judge_token)
    assert status == 401 and json.loads(body)["error"]["code"] == "token_in_url", body

    # The file as presented, for an <iframe>/<img>: through a signed link made for the judge.
    signed = await link(client, world.judge_token, f"{API}{base}/{exhibit['id']}/file")
    assert signed.status == 201, signed.text
    status, headers, body = await fetch(client, signed.json["url"][len(API):])
    assert status == 200 and body == data
    assert headers["Content-Type"] == PDF
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "sandbox"
    disposition = headers["Content-Disposition"]
    assert disposition.startswith("inline; ") and f'filename="exhibit-{exhibit["id"]}.pdf"' in (
        disposition)
    assert quote("借款合同.pdf") in disposition

    widths_heights = []
    for n in (1, 2, 3):
        status, headers, body = await fetch(client, f"{base}/{exhibit['id']}/pages/{n}",
                                            bearer(world.defendant_token))
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert headers["X-Content-Type-Options"] == "nosniff"
        widths_heights.append(decoded(body).size)
    assert all(abs(w - 1600) <= 1 for w, _ in widths_heights)
    assert widths_heights[1][1] < widths_heights[1][0] < widths_heights[0][1]  # landscape p. 2
    for n in ("0", "4", "x", "1.0", "-1", "99999999999"):
        reply = await call(client, "GET", f"{API}{base}/{exhibit['id']}/pages/{n}",
                           headers=admin)
        assert_error(reply, 404, "unknown_page", "n")

    events = (await call(client, "GET", f"{API}/audit", headers=admin,
                         params={"hearing_id": world.hearing_id})).json["items"]
    added = [e for e in events if e["action"] == "exhibit_added"]
    assert len(added) == 1 and added[0]["actor"] == f"participant:{world.defendant_id}"
    assert added[0]["data"]["sha256"] == sha and added[0]["data"]["pages"] == 3
    assert added[0]["data"]["size"] == len(data) and added[0]["data"]["title"] == "借款合同"
    # Each reader's viewing is audited once (the judge's file, the defendant's three pages);
    # pages that do not exist are no viewing.
    viewed = [e for e in events if e["action"] == "exhibit.viewed"]
    assert len(viewed) == 2 and f"participant:{world.defendant_id}" in {
        e["actor"] for e in viewed}, viewed
    assert all(e["data"]["exhibit_id"] == exhibit["id"] for e in viewed)
    verified = await call(client, "GET", f"{API}/audit/verify", headers=admin)
    assert verified.json["ok"] is True


async def test_staff_present_pictures_shown_as_png_pages(
    client: TestClient, admin: dict[str, str], world: World, clock: FakeClock
) -> None:
    base = f"/hearings/{world.hearing_id}/exhibits"
    for content_type, data in (("image/png", png((64, 48))), ("image/jpeg", jpeg((2400, 600)))):
        clock.advance(timedelta(minutes=1))
        reply = await upload(client, world.hearing_id, data, content_type, admin, title="现场照片")
        assert reply.status == 201, reply.text
        assert reply.json["participant_id"] is None and reply.json["pages"] == 1
        assert reply.json["media_type"] == content_type
        assert reply.json["sha256"] == hashlib.sha256(data).hexdigest()
        status, headers, body = await fetch(client, f"{base}/{reply.json['id']}/file", admin)
        assert status == 200 and body == data and headers["Content-Type"] == content_type
        status, headers, body = await fetch(client, f"{base}/{reply.json['id']}/pages/1", admin)
        assert status == 200 and headers["Content-Type"] == "image/png"
        image = decoded(body)
        assert image.width <= 1600 and image.size in ((64, 48), (1600, 400))
        assert_error(await call(client, "GET", f"{API}{base}/{reply.json['id']}/pages/2",
                                headers=admin), 404, "unknown_page")
    listed = await call(client, "GET", API + base, headers=admin)
    assert [e["media_type"] for e in listed.json["items"]] == ["image/png", "image/jpeg"]


async def test_refused_uploads_are_named_and_leave_nothing(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    settings: Settings, clock: FakeClock,
) -> None:
    clock.now = IN_WINDOW
    before = await db_state.snapshot()
    good_pdf, good_png = pdf(), png()
    judge = bearer(world.judge_token)
    # A PDF renamed as a picture, a picture sent as a PDF, and files that only look right.
    for data, content_type in ((good_pdf, "image/png"), (good_pdf, "image/jpeg"),
                               (good_png, PDF), (b"%PDF-1.7\ngarbage\n%%EOF", PDF),
                               (good_pdf[:200], PDF), (b"", PDF),
                               (b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png")):
        reply = await upload(client, world.hearing_id, data, content_type, judge)
        error = assert_error(reply, 422, "invalid_exhibit")
        assert "PDF" in error["message"] or "PNG" in error["message"] or "JPEG" in (
            error["message"]) or "empty" in error["message"], error
    for content_type in ("text/plain", "application/octet-stream", "image/gif",
                         "multipart/form-data; boundary=x", "application/json", None):
        reply = await upload(client, world.hearing_id, good_pdf, content_type, judge)
        error = assert_error(reply, 415, "unsupported_media_type")
        assert "application/pdf" in error["message"]
    for title in (None, "", "   ", "x" * 201, "证据\x00一"):
        reply = await upload(client, world.hearing_id, good_pdf, PDF, judge, title=title)
        assert_error(reply, 422, "invalid", "title")
    unknown = await upload(client, world.hearing_id, good_pdf, PDF, judge, colour="red")
    assert_error(unknown, 422, "invalid", "colour")

    # Past 50 MiB the upload is cut off, with a Content-Length and without one.
    too_big = b"%PDF-" + bytes(MAX_EXHIBIT_BYTES - 4)
    reply = await upload(client, world.hearing_id, too_big, PDF, judge)
    error = assert_error(reply, 413, "exhibit_too_large")
    assert "50 MiB" in error["message"]

    async def streamed() -> Any:
        yield b"%PDF-"
        for _ in range(51):
            yield bytes(1024 * 1024)

    reply = await upload(client, world.hearing_id, streamed(), PDF, judge)
    assert_error(reply, 413, "exhibit_too_large")

    await db_state.assert_unchanged(before, "refused exhibits")
    assert stored(settings) == []
    # The server took all that and goes on.
    assert (await upload(client, world.hearing_id, good_pdf, PDF, judge)).status == 201


async def test_who_may_present_and_view(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    clock: FakeClock,
) -> None:
    hid = world.hearing_id
    clock.now = IN_WINDOW
    await court_says(client, hid, world.defendant_id)
    base = f"{API}/hearings/{hid}/exhibits"
    observer = await call(client, "POST", f"{API}/hearings/{hid}/participants", headers=admin,
                          json={"name": "监督员", "role": "observer", "location": "remote"})
    observer_token = observer.json["token"]
    other = await call(client, "POST", f"{API}/hearings", headers=admin,
                       json=hearing_body(title="另案"))
    outsider = await call(client, "POST", f"{API}/hearings/{other.json['id']}/participants",
                          headers=admin,
                          json={"name": "另案律师", "role": "lawyer", "location": "remote"})
    outsider_token = outsider.json["token"]
    presented = await upload(client, hid, png(), "image/png", bearer(world.defendant_token))
    assert presented.status == 201
    file_path = f"{base}/{presented.json['id']}/file"

    # Observers watch: they see the exhibits (their viewing audited) but present none.
    for path in (base, file_path, f"{base}/{presented.json['id']}/pages/1"):
        status, _, _ = await fetch(client, path[len(API):], bearer(observer_token))
        assert status == 200, path
    before = await db_state.snapshot()
    refused = await upload(client, hid, png(), "image/png", bearer(observer_token))
    assert "observers" in assert_error(refused, 403, "access_denied")["message"]

    # Another hearing's token opens nothing here, however it is sent.
    error = assert_error(await upload(client, hid, png(), "image/png", bearer(outsider_token)),
                         403, "access_denied")
    assert "another hearing" in error["message"]
    for path in (base, file_path):
        assert_error(await call(client, "GET", path, headers=bearer(outsider_token)), 403)
        assert_error(await link(client, outsider_token, path), 403)

    for headers, status in (({}, 401), ({"Authorization": "Bearer"}, 401),
                            (bearer("not-a-token"), 403), (bearer(world.judge_token + "x"), 403),
                            ({"Authorization": f"Device {world.device_key}"}, 401)):
        assert_error(await upload(client, hid, png(), "image/png", headers), status)
        assert_error(await call(client, "GET", file_path, headers=headers), status)

    # Path segments that are not ids never reach the disk.
    for bad in ("..%2F..%2F..%2Fetc%2Fpasswd", "..%2F..", "%2E%2E", "..\\..\\x", "1",
                presented.json["sha256"]):
        url = URL(f"{base}/{bad}/file", encoded=True)
        reply = await call(client, "GET", str(url), headers=admin)
        assert reply.status == 404 and reply.json is not None, (bad, reply.text)
        url = URL(f"{API}/hearings/{bad}/exhibits/{presented.json['id']}/file", encoded=True)
        reply = await call(client, "GET", str(url), headers=admin)
        assert reply.status == 404 and reply.json is not None, (bad, reply.text)
    # An exhibit of this hearing is not found through another hearing.
    assert_error(await call(client, "GET",
                            f"{API}/hearings/{other.json['id']}/exhibits/"
                            f"{presented.json['id']}/file", headers=admin), 404, "not_found")
    await db_state.assert_unchanged(before, "refused access")

    # A revoked link presents nothing more and sees nothing more.
    revoked = await call(client, "DELETE",
                         f"{API}/hearings/{hid}/participants/{world.defendant_id}/token",
                         headers=admin)
    assert revoked.status == 204
    assert_error(await upload(client, hid, png(), "image/png", bearer(world.defendant_token)),
                 403, "access_denied")
    assert_error(await call(client, "GET", base, headers=bearer(world.defendant_token)), 403)

    # Once the hearing is over no exhibit can be added; those presented stay on view for the
    # staff. A join link opens nothing of a closed hearing, as it joins nothing.
    for action in ("open", "start", "close"):
        assert (await call(client, "POST", f"{API}/hearings/{hid}/{action}",
                           headers=admin)).status == 200
    late = await upload(client, hid, png(), "image/png", admin)
    assert assert_error(late, 409, "not_editable")["current_state"] == "closed"
    late = await upload(client, hid, png(), "image/png", bearer(world.judge_token))
    assert "closed" in assert_error(late, 403, "hearing_finished")["message"]
    # The judge reviews the closed hearing: its exhibits beside the record and recordings.
    status, _, body = await fetch(client, file_path[len(API):], bearer(world.judge_token))
    assert status == 200 and body == png()
    status, _, body = await fetch(client, file_path[len(API):], admin)
    assert status == 200 and body == png()
    assert_error(await upload(client, str(uuid.uuid4()), png(), "image/png", admin),
                 404, "not_found")
    listed = await call(client, "GET", base, headers=admin)
    assert len(listed.json["items"]) == 1


async def test_participants_reach_exhibits_only_as_they_may_join(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    settings: Settings, clock: FakeClock,
) -> None:
    hid = world.hearing_id
    base = f"{API}/hearings/{hid}/exhibits"
    lawyer_id, lawyer = await add_participant(client, admin, hid, "李律师", "lawyer")
    _, observer = await add_participant(client, admin, hid, "监督员", "observer")
    # The staff are not bound to the window: they prepare the hearing's exhibits beforehand.
    shown = await upload(client, hid, png(), "image/png", admin, title="现场照片")
    assert shown.status == 201, shown.text
    paths = (base, f"{base}/{shown.json['id']}/file", f"{base}/{shown.json['id']}/pages/1")

    async def refused(token: str, code: str, reason: str) -> None:
        before = await db_state.snapshot()
        files = stored(settings)
        for path in paths:
            # A link may be made for a token still held; opening it is refused all the same.
            signed = await link(client, token, path)
            by_link = signed if signed.status != 201 else await call(client, "GET",
                                                                     signed.json["url"])
            for reply in (await call(client, "GET", path, headers=bearer(token)), by_link):
                assert reason in assert_error(reply, 403, code)["message"], path
        reply = await upload(client, hid, pdf(), PDF, bearer(token))
        assert reason in assert_error(reply, 403, code)["message"]
        await db_state.assert_unchanged(before, f"refused: {reason}")
        assert stored(settings) == files

    async def allowed(token: str, presents: bool = True) -> None:
        for path in paths:
            status, _, body = await fetch(client, path[len(API):], bearer(token))
            assert status == 200, (path, body[:300])
        if presents:
            reply = await upload(client, hid, pdf(), PDF, bearer(token))
            assert reply.status == 201, reply.text

    async def reviews_only(token: str, reason: str) -> None:
        """Those who may review the hearing (its judge) see its exhibits at any time, as they
        see its recordings; presenting follows the join window."""
        for path in paths:
            status, _, body = await fetch(client, path[len(API):], bearer(token))
            assert status == 200, (path, body[:300])
        reply = await upload(client, hid, pdf(), PDF, bearer(token))
        assert reason in assert_error(reply, 403, "access_denied")["message"]

    # Hours before the hearing its links open nothing yet; the judge only reviews.
    for token in (lawyer, observer):
        await refused(token, "access_denied", "opens at")
    await reviews_only(world.judge_token, "opens at")
    clock.now = IN_WINDOW
    # In the window the judge and observers are in as they join; the lawyer waits in the
    # lobby until the court admits them.
    await allowed(world.judge_token)
    await allowed(observer, presents=False)
    await refused(lawyer, "access_denied", "not admitted")
    await court_says(client, hid, lawyer_id)
    await allowed(lawyer)
    # Removed by the court: out, whatever they presented; the court's last word counts.
    await court_says(client, hid, lawyer_id, "participant.removed")
    await refused(lawyer, "access_denied", "removed by the court")
    await allowed(world.judge_token)
    await court_says(client, hid, lawyer_id)
    await allowed(lawyer)
    # Past the scheduled end and the grace the links expire; the staff still see everything.
    grace = client.server.app[REGISTRY].join_grace
    clock.now = HEARING_END + grace + timedelta(minutes=1)
    for token in (lawyer, observer):
        await refused(token, "access_denied", "expired")
    await reviews_only(world.judge_token, "expired")
    listed = await call(client, "GET", base, headers=admin)
    assert listed.status == 200 and len(listed.json["items"]) == 5


async def test_an_auto_admit_hearing_lets_its_parties_in_until_removed_or_closed(
    client: TestClient, admin: dict[str, str], clock: FakeClock, db_state: DatabaseState,
) -> None:
    created = await call(client, "POST", f"{API}/hearings", headers=admin,
                         json=hearing_body(title="调解", auto_admit=True))
    hid = created.json["id"]
    base = f"{API}/hearings/{hid}/exhibits"
    party_id, party = await add_participant(client, admin, hid, "赵某", "party")
    clock.now = IN_WINDOW
    presented = await upload(client, hid, png(), "image/png", bearer(party))
    assert presented.status == 201, presented.text
    assert (await call(client, "GET", base, headers=bearer(party))).status == 200
    await court_says(client, hid, party_id, "participant.removed")
    before = await db_state.snapshot()
    assert "removed by the court" in assert_error(
        await call(client, "GET", base, headers=bearer(party)), 403, "access_denied")["message"]
    assert "removed by the court" in assert_error(
        await upload(client, hid, png(), "image/png", bearer(party)), 403,
        "access_denied")["message"]
    await db_state.assert_unchanged(before, "a removed party's exhibits")
    await court_says(client, hid, party_id)
    assert (await call(client, "GET", base, headers=bearer(party))).status == 200
    assert (await call(client, "POST", f"{API}/hearings/{hid}/cancel",
                       headers=admin)).status == 200
    error = assert_error(await call(client, "GET", base, headers=bearer(party)), 403,
                         "hearing_finished")
    assert "cancelled" in error["message"]


async def test_quotas_per_participant_and_per_hearing(
    client: TestClient, admin: dict[str, str], world: World, clock: FakeClock,
    db_state: DatabaseState, settings: Settings, monkeypatch: Any,
) -> None:
    monkeypatch.setattr(courtrooms.exhibits, "PARTICIPANT_EXHIBITS", 2)
    monkeypatch.setattr(courtrooms.exhibits, "HEARING_EXHIBITS", 3)
    hid = world.hearing_id
    lawyer_id, lawyer = await add_participant(client, admin, hid, "李律师", "lawyer")
    clock.now = IN_WINDOW
    for pid in (world.defendant_id, lawyer_id):
        await court_says(client, hid, pid)
    for _ in range(2):
        assert (await upload(client, hid, png(), "image/png",
                             bearer(world.defendant_token))).status == 201
    before = await db_state.snapshot()
    files = stored(settings)
    error = assert_error(await upload(client, hid, png(), "image/png",
                                      bearer(world.defendant_token)), 409, "quota_exceeded")
    assert error["quota"] == "participant_exhibits" and error["limit"] == 2
    assert "2 exhibits" in error["message"], error
    # The others still present, up to the hearing's quota; the staff are not limited.
    assert (await upload(client, hid, png(), "image/png", bearer(lawyer))).status == 201
    before = await db_state.snapshot()
    error = assert_error(await upload(client, hid, png(), "image/png", bearer(lawyer)),
                         409, "quota_exceeded")
    assert error["quota"] == "hearing_exhibits" and "3 exhibits" in error["message"], error
    await db_state.assert_unchanged(before, "an exhibit past the hearing's quota")
    assert (await upload(client, hid, png(), "image/png", admin)).status == 201

    # A file that would take a participant past their bytes is cut off as it comes.
    monkeypatch.setattr(courtrooms.exhibits, "PARTICIPANT_EXHIBITS", 30)
    monkeypatch.setattr(courtrooms.exhibits, "HEARING_EXHIBITS", 300)
    monkeypatch.setattr(courtrooms.exhibits, "PARTICIPANT_BYTES", 2 * 1024 * 1024)
    sent = 0

    async def streamed() -> Any:
        nonlocal sent
        yield b"%PDF-"
        for _ in range(40):
            sent += 1
            yield bytes(1024 * 1024)

    before = await db_state.snapshot()
    files = stored(settings)
    reply = await upload(client, hid, streamed(), PDF, bearer(lawyer))
    error = assert_error(reply, 409, "quota_exceeded")
    assert error["quota"] == "participant_bytes", error
    assert sent < 40
    await db_state.assert_unchanged(before, "an exhibit past the participant's bytes")
    assert stored(settings) == files


async def test_an_upload_that_sends_too_slowly_is_cut_off(
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState,
    settings: Settings, monkeypatch: Any,
) -> None:
    monkeypatch.setattr(web.api_exhibits, "UPLOAD_CHUNK_TIMEOUT_S", 0.5)
    data = pdf(A4, A4)
    before = await db_state.snapshot()

    async def stalls() -> Any:
        yield data[:1000]
        await asyncio.sleep(2.0)
        yield data[1000:]

    error = assert_error(await upload(client, world.hearing_id, stalls(), PDF, admin),
                         408, "upload_too_slow")
    assert "0.5 s" in error["message"], error

    # Every piece in time, the whole too slow: the overall deadline cuts it off.
    monkeypatch.setattr(web.api_exhibits, "UPLOAD_DEADLINE_S", 1.0)

    async def trickles() -> Any:
        for i in range(0, len(data), 16):
            yield data[i:i + 16]
            await asyncio.sleep(0.1)

    assert len(data) // 16 * 0.1 > 2.0
    error = assert_error(await upload(client, world.hearing_id, trickles(), PDF, admin),
                         408, "upload_too_slow")
    assert "1 s" in error["message"], error
    await db_state.assert_unchanged(before, "uploads cut off")
    assert stored(settings) == []
    assert (await upload(client, world.hearing_id, data, PDF, admin)).status == 201


@pytest.mark.parametrize("cancels", [False, True], ids=["served", "handler_cancelled"])
async def test_an_aborted_upload_logs_one_line_and_leaves_nothing(
    client: TestClient, world: World, db_state: DatabaseState, settings: Settings,
    clock: FakeClock, caplog: Any, cancels: bool,
) -> None:
    # `tingshen serve` runs aiohttp's default (the handler goes on, reading fails); aiohttp's
    # test server cancels the handler when its client goes away. Both are covered.
    client.server.runner.server.handler_cancellation = cancels
    clock.now = IN_WINDOW
    await court_says(client, world.hearing_id, world.defendant_id)
    before = await db_state.snapshot()
    caplog.set_level(logging.INFO)
    uploads = settings.data_dir / "exhibits" / world.hearing_id

    def partial() -> list[Path]:
        return list(uploads.glob(".upload-*")) if uploads.exists() else []

    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = (f"POST {API}/hearings/{world.hearing_id}/exhibits?title=x HTTP/1.1\r\n"
            f"Host: court.example\r\nAuthorization: Bearer {world.defendant_token}\r\n"
            f"Content-Type: application/pdf\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n")
    writer.write(head.encode() + b"%PDF-" + bytes(2 * 1024 * 1024))
    await writer.drain()
    for _ in range(500):  # until the server is receiving it
        if partial():
            break
        await asyncio.sleep(0.02)
    assert partial()
    writer.transport.abort()  # the client goes away mid-body
    for _ in range(500):
        if not partial() and [r for r in caplog.records if "aborted" in r.getMessage()]:
            break
        await asyncio.sleep(0.02)
    assert not partial(), [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    await asyncio.sleep(0.3)  # whatever else would be logged about it
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    line = lines[0]
    assert line.levelno == logging.WARNING and line.exc_info is None and not line.exc_text
    assert world.hearing_id in line.getMessage() and world.defendant_id in line.getMessage()
    assert stored(settings) == []
    await db_state.assert_unchanged(before, "an aborted upload")
    del reader

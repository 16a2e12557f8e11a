"""Exhibits through the real app on a real port, on SQLite and PostgreSQL: real PDFs and images."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from yarl import URL

from config import Settings
from courtrooms.exhibits import MAX_EXHIBIT_BYTES
from tests.conftest import FakeClock
from tests.exhibit_files import A4, A4_LANDSCAPE, decoded, jpeg, pdf, png
from tests.web.support import (
    API,
    DatabaseState,
    Reply,
    World,
    assert_error,
    call,
    hearing_body,
)

PDF = "application/pdf"


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


async def test_present_list_fetch_and_page_an_exhibit(
    client: TestClient, admin: dict[str, str], world: World, settings: Settings
) -> None:
    data = pdf(A4, A4_LANDSCAPE, A4)
    # The defendant presents from prison hours before the hearing: not bound to its window.
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
    for headers, params in ((admin, {}), (bearer(world.judge_token), {}),
                            ({}, {"token": world.judge_token})):
        status, _, body = await fetch(client, base, headers, **params)
        assert status == 200, body
        assert [e["id"] for e in json.loads(body)["items"]] == [exhibit["id"]]

    # The file as presented, for an <iframe>/<img> with the token in the query string.
    status, headers, body = await fetch(client, f"{base}/{exhibit['id']}/file",
                                        token=world.judge_token)
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
    settings: Settings,
) -> None:
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
    client: TestClient, admin: dict[str, str], world: World, db_state: DatabaseState
) -> None:
    hid = world.hearing_id
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

    before = await db_state.snapshot()
    # Observers watch: they see the exhibits but present none.
    refused = await upload(client, hid, png(), "image/png", bearer(observer_token))
    assert "observers" in assert_error(refused, 403, "access_denied")["message"]
    for path in (base, file_path, f"{base}/{presented.json['id']}/pages/1"):
        status, _, _ = await fetch(client, path[len(API):], bearer(observer_token))
        assert status == 200, path

    # Another hearing's token opens nothing here, however it is sent.
    error = assert_error(await upload(client, hid, png(), "image/png", bearer(outsider_token)),
                         403, "access_denied")
    assert "another hearing" in error["message"]
    for path in (base, file_path):
        assert_error(await call(client, "GET", path, headers=bearer(outsider_token)), 403)
        assert_error(await call(client, "GET", path, params={"token": outsider_token}), 403)

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

    # Once the hearing is over no exhibit can be added; those presented stay on view.
    for action in ("open", "start", "close"):
        assert (await call(client, "POST", f"{API}/hearings/{hid}/{action}",
                           headers=admin)).status == 200
    late = await upload(client, hid, png(), "image/png", bearer(world.judge_token))
    assert assert_error(late, 409, "not_editable")["current_state"] == "closed"
    status, _, body = await fetch(client, file_path[len(API):], bearer(world.judge_token))
    assert status == 200 and body == png()
    assert_error(await upload(client, str(uuid.uuid4()), png(), "image/png", admin),
                 404, "not_found")
    listed = await call(client, "GET", base, headers=admin)
    assert len(listed.json["items"]) == 1

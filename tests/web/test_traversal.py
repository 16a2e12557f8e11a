"""Recording downloads and exhibit files never serve a file from anywhere else.

Hostile paths (dot segments plain, encoded, double-encoded and overlong, encoded slashes and
backslashes, absolute paths, NUL bytes, very long names) get a 4xx JSON error; links planted in
the data directory (to a secret outside it, to another file inside it, in a loop, a linked
folder) and rows whose path leads out are answered 404, and the secret is in no reply.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from yarl import URL

from config import Settings
from tests.exhibit_files import picture, png
from tests.web.support import (
    API,
    DatabaseState,
    Reply,
    World,
    add_recording,
    assert_error,
    call,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SECRET = b"TOP SECRET: the prosecution's sealed witness list"
RECORDING = b"\x1aE\xdf\xa3 a recording " * 50

# Dot segments and slashes in every spelling a server has been fooled by.
HOSTILE_SEGMENTS = [
    "..", ".", "../..", "..%2F..%2Fsecret.txt", "%2e%2e", "%2E%2E%2F%2E%2E%2Fsecret.txt",
    "%252e%252e%252fsecret.txt", "..%5C..%5Csecret.txt", "..\\..\\secret.txt",
    "%c0%ae%c0%ae%c0%afsecret.txt", "%ef%bc%8e%ef%bc%8e", "%2Fetc%2Fpasswd", "/etc/passwd",
    "%00", "a%00.webm", "secret.txt%00.webm", "%ff%fe", "~", "*", "x" * 3000,
]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret beside the data directory, and one inside it that no route serves."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    return folder / "secret.txt"


def relative(target: Path, start: Path) -> str:
    """`target` as a link in `start` spells it when it climbs out with ../."""
    return os.path.relpath(target, start)


async def fetch(client: TestClient, path: str, headers: dict[str, str]) -> Reply:
    """GET a path sent exactly as written (no normalising of dots or escapes)."""
    async with client.get(URL(path, encoded=True), headers=headers) as resp:
        body = await resp.read()
        assert SECRET not in body, path
        text = body.decode("utf-8", "replace")
        parsed = await resp.json() if resp.content_type == "application/json" else None
        return Reply(resp.status, resp.headers, text, parsed)


async def set_path(db_state: DatabaseState, recording_id: str, path: str) -> None:
    async with db_state.db.engine.begin() as conn:
        result = await conn.execute(sa.text("UPDATE recordings SET path = :p WHERE id = :i"),
                                    {"p": path, "i": uuid.UUID(recording_id).hex})
        assert result.rowcount == 1


async def test_hostile_paths_get_a_json_error(
    client: TestClient, admin: dict[str, str], world: World, settings: Settings,
    outside: Path, db_state: DatabaseState,
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "secret.txt").write_bytes(SECRET)
    recording = await add_recording(client, world.hearing_id, world.judge_id, RECORDING)
    hid = world.hearing_id
    before = await db_state.snapshot()
    templates = [
        f"{API}/hearings/{hid}/recordings/{{}}/media",
        f"{API}/hearings/{{}}/recordings/{recording}/media",
        f"{API}/hearings/{hid}/exhibits/{{}}/file",
        f"{API}/hearings/{hid}/exhibits/{uuid.uuid4()}/pages/{{}}",
        f"{API}/hearings/{hid}/transcript/export/{{}}",
        f"{API}/join/{{}}",
    ]
    checked = 0
    for template in templates:
        for segment in HOSTILE_SEGMENTS:
            path = template.format(segment)
            reply = await fetch(client, path, admin)
            # Dot segments may be resolved by the router first: then it is another route
            # (or none) that answers, still with a JSON error and nothing served.
            assert_error(reply)
            checked += 1
    assert checked == len(templates) * len(HOSTILE_SEGMENTS)
    # The static files are served by aiohttp, which refuses to leave their folder.
    for segment in ("../api.py", "..%2Fapi.py", "%2e%2e/api.py", "..%5Capi.py",
                    "%2e%2e%2f%2e%2e%2fpyproject.toml"):
        reply = await fetch(client, f"/static/{segment}", {})
        assert reply.status in (403, 404), (segment, reply.status)
        assert "def " not in reply.text and "[project]" not in reply.text
    await db_state.assert_unchanged(before, "hostile paths")
    # The real recording is served: the refusals were for the paths.
    reply = await fetch(client, f"{API}/hearings/{hid}/recordings/{recording}/media", admin)
    assert reply.status == 200


async def test_links_and_rows_leading_out_of_the_data_directory_are_not_followed(
    client: TestClient, admin: dict[str, str], world: World, settings: Settings,
    outside: Path, db_state: DatabaseState,
) -> None:
    hid = world.hearing_id
    recording = await add_recording(client, hid, world.judge_id, RECORDING)
    media = f"{API}/hearings/{hid}/recordings/{recording}/media"
    uploaded = await call(client, "POST", f"{API}/hearings/{hid}/exhibits", data=png(),
                          params={"title": "借款合同"},
                          headers={**admin, "Content-Type": "image/png"})
    exhibit = uploaded.json
    file_url = f"{API}/hearings/{hid}/exhibits/{exhibit['id']}/file"
    page_url = f"{API}/hearings/{hid}/exhibits/{exhibit['id']}/pages/1"
    data = settings.data_dir
    recording_file = data / "recordings" / hid / f"{world.judge_id}-0.webm"
    exhibit_file = data / "exhibits" / hid / f"{exhibit['sha256']}.png"
    page_file = data / "exhibits" / hid / "pages" / f"{exhibit['sha256']}-1.png"
    inside = data / "secret-inside.txt"
    inside.write_bytes(SECRET)
    for url in (media, file_url, page_url):
        assert (await fetch(client, url, admin)).status == 200, url
    assert recording_file.is_file() and exhibit_file.is_file() and page_file.is_file()
    before = await db_state.snapshot()

    def plant(at: Path, target: Path | str) -> None:
        at.unlink()
        at.symlink_to(target)

    async def refused(url: str, what: str) -> None:
        reply = await fetch(client, url, admin)
        assert_error(reply, 404, "not_found")
        assert reply.status == 404, what

    for file, url in ((recording_file, media), (exhibit_file, file_url), (page_file, page_url)):
        for target in (outside, inside, Path("/etc/passwd"), relative(outside, file.parent)):
            plant(file, target)
            await refused(url, f"{file.name} -> {target}")
    # Links that lead nowhere, or round: a rendered page is rendered again in their place,
    # a recording or an exhibit is missing.
    loop = recording_file.parent / "loop"
    loop.symlink_to(loop)
    for file, url in ((recording_file, media), (exhibit_file, file_url)):
        for target in (loop, outside.parent / "gone"):
            plant(file, target)
            await refused(url, f"{file.name} -> {target}")
    # A page is rendered from the exhibit's file: never from a picture outside, linked in.
    (outside.parent / "outside.png").write_bytes(picture("PNG", (32, 32)))
    plant(exhibit_file, outside.parent / "outside.png")
    page_file.unlink()
    await refused(page_url, "a page of a linked picture")
    assert not page_file.exists()
    # With its own file back, a page whose cached copy leads nowhere is rendered again.
    exhibit_file.unlink()
    exhibit_file.write_bytes(png())
    page_file.symlink_to(loop)
    page = await fetch(client, page_url, admin)
    assert page.status == 200 and not page_file.is_symlink()

    # A whole folder linked out: the hearing's recordings folder now lies outside.
    elsewhere = outside.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / recording_file.name).write_bytes(SECRET)
    moved = recording_file.parent.rename(outside.parent / "moved")
    recording_file.parent.symlink_to(elsewhere, target_is_directory=True)
    await refused(media, "a linked folder")
    recording_file.parent.unlink()
    moved.rename(recording_file.parent)

    # A path in the record itself that leads out (the server never writes one; a restored
    # or tampered database might) is not followed either.
    for bad in ("../outside/secret.txt", str(outside), "recordings/../secret-inside.txt",
                "recordings/\x00/x.webm", "exhibits/" + "x" * 300):
        await set_path(db_state, recording, bad)
        await refused(media, f"a row with path {bad!r}")
    await set_path(db_state, recording, f"recordings/{hid}/{world.judge_id}-0.webm")
    # Nothing was viewed, so nothing entered the audit chain; the recording is served again.
    await db_state.assert_unchanged(before, "links and rows leading out")
    recording_file.unlink()
    recording_file.write_bytes(RECORDING)
    served = await fetch(client, media, admin)
    assert served.status == 200

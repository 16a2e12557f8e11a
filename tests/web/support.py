"""Helpers for the web tests: calling the API, checking error bodies, snapshotting the database."""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from courtrooms.database import Database
from courtrooms.recordings import FileOutcome
from courtrooms.transcripts import SpokenLine
from web.endpoints import Endpoint
from web.keys import HUB, RECORDINGS

API = "/api/v1"
# The hearing the fixtures schedule: 10:00-12:00 UTC on the FakeClock's day (it starts at 01:00).
HEARING_START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HEARING_END = HEARING_START + timedelta(hours=2)


@dataclass
class Reply:
    status: int
    headers: Any
    text: str
    json: Any

    @property
    def error(self) -> dict[str, Any]:
        return self.json["error"]


async def call(
    client: TestClient,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    json: Any = None,
    data: Any = None,
    params: Any = None,
) -> Reply:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if json is not None:
        kwargs["json"] = json
    if data is not None:
        kwargs["data"] = data
    if params is not None:
        kwargs["params"] = params
    async with client.request(method, path, **kwargs) as resp:
        text = await resp.text()
        parsed = None
        if resp.content_type == "application/json":
            parsed = jsonlib.loads(text)
        return Reply(resp.status, resp.headers, text, parsed)


def assert_error(
    reply: Reply,
    status: int | None = None,
    code: str | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    """The body is `{"error": {"code", "message", "field"?}}` as JSON; returns the error."""
    assert reply.headers.get("Content-Type", "").startswith("application/json"), (
        f"{reply.status} {reply.headers.get('Content-Type')}: {reply.text[:300]}"
    )
    if status is not None:
        assert reply.status == status, reply.text[:500]
    assert 400 <= reply.status < 500, reply.text[:500]
    body = reply.json
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], error
    assert isinstance(error.get("message"), str) and error["message"], error
    if "field" in error:
        assert isinstance(error["field"], str) and error["field"], error
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error.get("field") == field, error
    return error


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def hearing_body(
    start: datetime = HEARING_START,
    end: datetime | None = None,
    courtroom_id: uuid.UUID | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "case_number": "(2026)京0105刑初123号",
        "title": "张某盗窃案",
        "kind": "trial",
        "scheduled_start": iso(start),
        "scheduled_end": iso(end or start + timedelta(hours=2)),
    }
    if courtroom_id is not None:
        body["courtroom_id"] = str(courtroom_id)
    body.update(extra)
    return body


@dataclass
class World:
    """One of everything, created through the API, so paths with ids point at real entities."""

    court_id: str
    courtroom_id: str
    terminal_id: str
    device_key: str
    hearing_id: str
    judge_id: str
    judge_token: str
    defendant_id: str
    defendant_token: str
    segment_id: str

    def path(self, template: str) -> str:
        """`template` with each `{name}` replaced by the id of the entity it names."""
        kind = template[len(API) :].split("/")[1]
        owner = {
            "courts": self.court_id,
            "courtrooms": self.courtroom_id,
            "prison-terminals": self.terminal_id,
            "hearings": self.hearing_id,
        }
        values = {"id": owner.get(kind, str(uuid.uuid4())), "participant_id": self.judge_id,
                  "recording_id": str(uuid.uuid4()), "segment_id": self.segment_id,
                  "format": "pdf", "exhibit_id": str(uuid.uuid4()), "n": "1", "seq": "1",
                  "request_id": str(uuid.uuid4()),
                  "token": self.judge_token}
        return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], template)


async def make_world(client: TestClient, admin: dict[str, str]) -> World:
    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await call(client, "POST", API + path, json=body, headers=admin)
        assert reply.status == 201, reply.text
        return reply.json

    court = await post("/courts", {"name": "北京市朝阳区人民法院"})
    room = await post("/courtrooms", {"court_id": court["id"], "name": "第一法庭"})
    terminal = await post("/prison-terminals", {"name": "终端一号", "prison": "北京市第一监狱"})
    hearing = await post("/hearings", hearing_body(courtroom_id=room["id"]))
    judge = await post(
        f"/hearings/{hearing['id']}/participants",
        {"name": "王审判员", "role": "judge", "location": "courtroom"},
    )
    defendant = await post(
        f"/hearings/{hearing['id']}/participants",
        {"name": "张某", "role": "defendant", "location": "prison", "terminal_id": terminal["id"]},
    )
    line = SpokenLine(uuid.UUID(judge["id"]), 1.0, 3.5, "现在开庭。", "zh",
                      [("现在", 1.0, 2.0, 0.9), ("开庭", 2.0, 3.5, 0.9)])
    row = await client.server.app[HUB].transcripts.add(uuid.UUID(hearing["id"]), line)
    return World(
        segment_id=str(row.id),
        court_id=court["id"],
        courtroom_id=room["id"],
        terminal_id=terminal["id"],
        device_key=terminal["device_key"],
        hearing_id=hearing["id"],
        judge_id=judge["id"],
        judge_token=judge["token"],
        defendant_id=defendant["id"],
        defendant_token=defendant["token"],
    )


async def link(client: TestClient, token: str, path: str) -> Reply:
    """Ask, as the holder of join token `token`, for a signed link to `path` (an API path of
    the hearing's, as a page does for a player, an image or a download)."""
    hearing = path.split("/")[4]
    return await call(client, "POST", f"{API}/hearings/{hearing}/links",
                      headers={"Authorization": f"Bearer {token}"}, json={"path": path})


def valid_body(endpoint: Endpoint, world: World | None) -> dict[str, Any]:
    """A body each endpoint accepts, given the entities of `world` (random ids without one)."""
    court_id = world.court_id if world else str(uuid.uuid4())
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/courts"): {"name": "上海市第一中级人民法院"},
        ("PATCH", "/courts/{id}"): {"name": "北京市朝阳区人民法院（新）"},
        ("POST", "/courtrooms"): {"court_id": court_id, "name": "第二法庭"},
        ("PATCH", "/courtrooms/{id}"): {"name": "第三法庭"},
        ("POST", "/prison-terminals"): {"name": "终端二号", "prison": "北京市第二监狱"},
        ("PATCH", "/prison-terminals/{id}"): {"name": "终端三号"},
        ("POST", "/hearings"): hearing_body(HEARING_START + timedelta(days=1),
                                            language="en", auto_admit=True),
        ("POST", "/hearings/conflicts"): hearing_body(
            HEARING_START + timedelta(days=1),
            hearing_id=world.hearing_id if world else str(uuid.uuid4())),
        ("PATCH", "/hearings/{id}"): {"scheduled_start": iso(HEARING_START + timedelta(hours=1)),
                                      "scheduled_end": iso(HEARING_END + timedelta(hours=1)),
                                      "title": "张某盗窃案（改期）"},
        ("POST", "/hearings/{id}/participants"): {
            "name": "李律师", "role": "lawyer", "location": "remote"},
        ("POST", "/hearings/{id}/watch"): {"name": "技术保障"},  # as the admin token watches
        ("PUT", "/hearings/{id}/participants/{participant_id}/review"): {"may_review": True},
        ("PATCH", "/hearings/{id}/transcript/{segment_id}"): {"text": "被告人：我认罪。"},
        ("POST", "/session"): {"token": "test-admin-token-0123456789abcdef"},
        ("POST", "/hearings/{id}/transcript/edits"): {
            "action": "delete", "line_ids": [world.segment_id if world else str(uuid.uuid4())]},
        ("POST", "/hearings/{id}/signing/signature"): {
            "record_sha256": "0" * 64, "signature_png": "iVBORw0KGgo="},
        ("POST", "/hearings/{id}/signing/refusal"): {"reason": "不同意笔录内容"},
        ("POST", "/hearings/{id}/signing/corrections"): {
            "line_id": world.segment_id if world else str(uuid.uuid4()), "text": "更正"},
        ("POST", "/hearings/{id}/signing/corrections/{request_id}"): {"accept": True},
        ("POST", "/tokens"): {"name": "案件管理系统", "scopes": ["schedule", "read_records"]},
        ("POST", "/hearings/{id}/links"): {
            "path": f"{API}/hearings/{world.hearing_id if world else uuid.uuid4()}/transcript"},
    }
    key = (endpoint.method, endpoint.path[len(API) :])
    if key not in bodies and endpoint.body is not None:
        raise AssertionError(f"no valid body known for {key}; add one here")
    return bodies.get(key, {})


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, tuple[str, ...]]
    audit_head: tuple[int, str] | None

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}


class DatabaseState:
    """Reads every table of the app's database through its own connection."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self._names: list[str] | None = None
        self._baseline: Snapshot | None = None

    async def snapshot(self) -> Snapshot:
        async with self.db.engine.connect() as conn:
            if self._names is None:
                names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
                assert {"audit_events", "hearings", "join_tokens"} <= set(names), names
                self._names = sorted(names)
            tables: dict[str, tuple[str, ...]] = {}
            for name in self._names:
                rows = (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all()
                tables[name] = tuple(sorted(repr(tuple(row)) for row in rows))
            head = (
                await conn.execute(
                    sa.text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                )
            ).first()
        return Snapshot(tables, (int(head[0]), str(head[1])) if head else None)

    async def settled(self, within: float = 15.0) -> Snapshot:
        """A snapshot once what is being written has been written: two alike in a row (a join
        audits its arrival after the welcome, on its own time)."""
        deadline = time.monotonic() + within
        last = await self.snapshot()
        while True:
            await asyncio.sleep(0.3)
            now = await self.snapshot()
            if now == last:
                return now
            assert time.monotonic() < deadline, "the database never settled"
            last = now

    async def baseline(self) -> Snapshot:
        """The first snapshot taken through this fixture: for tests that must change nothing."""
        if self._baseline is None:
            self._baseline = await self.snapshot()
        return self._baseline

    async def assert_unchanged(self, before: Snapshot, what: str = "") -> None:
        after = await self.snapshot()
        assert after.audit_head == before.audit_head, f"audit chain grew: {what}"
        grew = {n: (c, after.counts.get(n)) for n, c in before.counts.items()
                if after.counts.get(n) != c}
        assert not grew, f"row counts changed (before, after): {grew}: {what}"
        changed = [n for n in before.tables if before.tables[n] != after.tables.get(n)]
        assert not changed, f"rows of {changed} changed: {what}"

    async def aclose(self) -> None:
        await self.db.aclose()


async def add_recording(client: TestClient, hearing_id: str, participant_id: str,
                        content: bytes) -> str:
    """A finished recording file in the hearing's record, as the recorder leaves one; its id.

    The bytes are not a WebM: what is served is the file, whatever it holds."""
    recordings = client.server.app[RECORDINGS]
    relative = f"recordings/{hearing_id}/{participant_id}-0.webm"
    path = recordings.data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    await recordings.file_started(uuid.UUID(hearing_id), uuid.UUID(participant_id), 0,
                                  relative, 0.0)
    await recordings.file_finished(relative, FileOutcome(duration=1.0, codecs="vp8"))
    files, _ = await recordings.of_hearing(uuid.UUID(hearing_id))
    return str(next(f.id for f in files if f.path == relative))

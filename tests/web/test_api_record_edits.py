"""The clerk's structural edits through the API: each a new version of the record, listed with
who made it; any version readable for comparison; a party may not edit."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.web.support import API, World, assert_error, call


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_edits_make_versions_the_court_reads_side_by_side(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    base = f"{API}/hearings/{world.hearing_id}/transcript"
    judge = bearer(world.judge_token)
    # A party's link may not edit the record.
    assert_error(await call(client, "POST", base + "/edits", json={
        "action": "delete", "line_ids": [world.segment_id]},
        headers=bearer(world.defendant_token)), 403, "access_denied")
    inserted = await call(client, "POST", base + "/edits", headers=judge, json={
        "action": "insert", "participant_id": world.defendant_id, "text": "我认罪。",
        "start": 4.0, "end": 5.0, "reason": "漏记"})
    assert inserted.status == 201, inserted.text
    assert inserted.json["version"] == 2
    assert [li["text"] for li in inserted.json["items"]] == ["现在开庭。", "我认罪。"]
    assert inserted.json["items"][1]["participant"] == "张某"
    first, second = inserted.json["items"]
    speaker = await call(client, "POST", base + "/edits", headers=admin, json={
        "action": "speaker", "line_ids": [second["id"]], "participant_id": world.judge_id})
    assert speaker.status == 201 and speaker.json["version"] == 3
    # Lines of an older version are not edited: the clerk edits what the record says now.
    assert_error(await call(client, "POST", base + "/edits", headers=admin, json={
        "action": "delete", "line_ids": [first["id"]]}), 422, "invalid", field="line_ids")
    first = speaker.json["items"][0]
    # A wrong edit is refused naming what is wrong, and makes no version.
    assert_error(await call(client, "POST", base + "/edits", headers=admin, json={
        "action": "merge", "line_ids": [first["id"]]}), 422, "invalid", field="line_ids")
    assert_error(await call(client, "POST", base + "/edits", headers=admin, json={
        "action": "split", "line_ids": [first["id"]], "at": 4000}), 422, "invalid", field="at")

    versions = await call(client, "GET", base + "/versions", headers=judge)
    assert [(v["version"], v["edit"], v["lines"]) for v in versions.json["items"]] == [
        (1, None, 1), (2, "insert", 2), (3, "speaker", 2)]
    assert versions.json["items"][1]["made_by"] == f"participant:{world.judge_id}"
    assert versions.json["items"][1]["reason"] == "漏记"
    # Any version can be read, to compare two side by side; the newest by default.
    newest = await call(client, "GET", base, headers=judge)
    assert newest.json["version"] == 3
    assert [li["participant_id"] for li in newest.json["items"]] == [world.judge_id] * 2
    old = await call(client, "GET", base, headers=judge, params={"version": "1"})
    assert old.status == 200 and [li["text"] for li in old.json["items"]] == ["现在开庭。"]
    assert_error(await call(client, "GET", base, headers=judge, params={"version": "9"}),
                 404, "not_found", field="version")
    for bad in ("0", "abc", "1.5", ""):
        assert_error(await call(client, "GET", base, headers=judge, params={"version": bad}),
                     422, "invalid", field="version")

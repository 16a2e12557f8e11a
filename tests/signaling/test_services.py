"""Sealing a closed hearing through a real server and real aiortc participants: the seal
waits for every file of the hearing, and what it seals verifies."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from courtrooms import anchor
from courtrooms.integrity import verify_record
from media.recording import ParticipantRecorder, RecordingFile
from tests.signaling.conftest import LiveHearing
from tests.signaling.test_recording import (
    audit_actions,
    auto_hearing,  # noqa: F401  (a fixture)
    command,
    join_all,
)
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def slow_departures(monkeypatch: pytest.MonkeyPatch, participant_id: str, delay_s: float) -> None:
    """The participant's recorder takes `delay_s` longer to finish its file (a slow disk, a
    long last cluster): their departure is still finishing it when the hearing closes."""
    finish = ParticipantRecorder.aclose

    async def slow(self: ParticipantRecorder, *args: Any, **kwargs: Any) -> RecordingFile:
        if self.participant_id == participant_id:
            await asyncio.sleep(delay_s)
        return await finish(self, *args, **kwargs)

    monkeypatch.setattr(ParticipantRecorder, "aclose", slow)


async def sealed_actions(client: Any, hearing: LiveHearing, admin: dict[str, str],
                         until: set[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        events = await audit_actions(client, hearing, admin)
        if until <= {e["action"] for e in events}:
            return events
        assert time.monotonic() < deadline, [e["action"] for e in events]
        await asyncio.sleep(0.2)


async def leave_and_close(hearing: LiveHearing, participants: list[Any]) -> None:
    judge, lawyer = await join_all(hearing, participants, "judge", "lawyer")
    await command(judge, "open", "open")
    await command(judge, "start", "in_session")
    await asyncio.sleep(2.0)
    # The lawyer hangs up and the judge closes at once: the lawyer's file is still being
    # finished by their departure when the media room has closed.
    await lawyer.close()
    await judge.send({"type": "command", "action": "close"})
    await judge.wait_for(lambda: judge.closed_code == 4000, 30)


async def verify(client: Any, settings: Any) -> list[str]:
    hub = client.server.app[HUB]
    # The chain's head checkpointed, as the server does within checkpoint_interval_seconds
    # (signed seals without any checkpoint are a finding of their own).
    head = await anchor.head(hub.registry.db)
    assert head is not None
    signer = anchor.load_or_create_key(settings.signing_key)
    anchor.CheckpointLog(settings.checkpoints).append(
        anchor.Checkpoint.make(signer, head.seq, head.hash, hub.registry.clock()))
    report = await verify_record(hub.registry.db, settings.data_dir, settings.signing_key,
                                 settings.checkpoints)
    assert report.chain.ok
    return [f.message for f in report.findings]


async def test_sealing_waits_for_a_departure_still_finishing_its_file(
    auto_hearing, participants, client, admin, settings, monkeypatch  # noqa: F811
):
    hearing = auto_hearing
    slow_departures(monkeypatch, hearing.ids["lawyer"], 2.0)
    await leave_and_close(hearing, participants)
    events = await sealed_actions(client, hearing, admin,
                                  {"recording.sealed", "transcript.sealed"})
    actions = [e["action"] for e in events]
    completed = [e for e in events if e["action"] == "recording.complete"]
    assert {e["data"]["path"].rsplit("/", 1)[-1][8:] for e in completed} == {
        f"{hearing.ids['lawyer']}.webm", f"{hearing.ids['judge']}.webm"}
    # Sealed once, after both files were finished; nothing was left unfinished.
    assert actions.count("recording.sealed") == 1
    assert "recording.unfinished_at_seal" not in actions
    last_complete = len(actions) - 1 - actions[::-1].index("recording.complete")
    assert last_complete < actions.index("recording.sealed")
    [seal] = [e for e in events if e["action"] == "recording.sealed"]
    # Sealed by who closed the hearing, with exactly what was sealed.
    judge = f"participant:{hearing.ids['judge']}"
    assert (seal["actor"], seal["data"]["sealed_by"]) == (judge, judge)
    assert seal["data"]["files"] == 2
    assert all(f["status"] == "complete" for f in seal["data"]["manifest"]["files"])
    assert "signature" in seal["data"]
    assert await verify(client, settings) == []


async def test_a_file_that_never_finishes_in_time_is_audited_and_sealed_when_it_does(
    auto_hearing, participants, client, admin, settings, monkeypatch  # noqa: F811
):
    hearing = auto_hearing
    client.server.app[HUB].services.files_wait_s = 0.5
    slow_departures(monkeypatch, hearing.ids["lawyer"], 4.0)
    await leave_and_close(hearing, participants)
    events = await sealed_actions(client, hearing, admin,
                                  {"recording.unfinished_at_seal", "recording.complete"})
    [note] = [e for e in events if e["action"] == "recording.unfinished_at_seal"]
    assert [hearing.ids["lawyer"] in p for p in note["data"]["paths"]] == [True]
    # The late file is sealed again when it finishes, the chain showing both seals.
    deadline = time.monotonic() + 30
    while len([e for e in events if e["action"] == "recording.sealed"]) < 2:
        assert time.monotonic() < deadline, [e["action"] for e in events]
        await asyncio.sleep(0.2)
        events = await audit_actions(client, hearing, admin)
    first, second = [e for e in events if e["action"] == "recording.sealed"]
    assert {f["status"] for f in first["data"]["manifest"]["files"]} == {"complete",
                                                                         "recording"}
    assert {f["status"] for f in second["data"]["manifest"]["files"]} == {"complete"}
    assert "finished after the seal" in second["data"]["reason"]
    assert await verify(client, settings) == []
    rows, _ = await client.server.app[HUB].recordings.of_hearing(uuid.UUID(hearing.id))
    assert {r.status.value for r in rows if r.kind == "participant"} == {"complete"}

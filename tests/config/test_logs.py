"""Log lines: JSON objects naming the hearing and participant, or the human text format."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config import SettingsError, load_settings
from config.logs import (
    HEARING_ID,
    PARTICIPANT_ID,
    JsonFormatter,
    hearing_context,
    log_handler,
)
from tests.clients import HearingClient
from tests.conftest import FakeClock
from tests.signaling.conftest import schedule

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<logger>\S+): (?P<message>.*)$"
)


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing JSON lines to a buffer."""
    stream = io.StringIO()
    logger = logging.getLogger(f"tingshen.test.{uuid.uuid4().hex[:8]}")
    handler = log_handler("json", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_lines_name_the_session_hearing_and_participant(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    hearing_id, participant_id = str(uuid.uuid4()), str(uuid.uuid4())

    async def in_a_task() -> None:
        logger.info("a task the session started")

    async def in_the_hearing() -> None:
        logger.info("the hearing's own work")

    async def session() -> None:
        logger.info("before the join")
        HEARING_ID.set(hearing_id)  # what ParticipantSession.run does once the join is granted
        PARTICIPANT_ID.set(participant_id)
        logger.warning("joined %s", "now")
        await asyncio.create_task(in_a_task())
        await asyncio.create_task(in_the_hearing(), context=hearing_context(hearing_id))

    await asyncio.create_task(session())
    logger.info("another connection")

    before, joined, task, hearing, other = lines(stream)
    assert before == {"time": before["time"], "level": "INFO", "logger": logger.name,
                      "message": "before the join"}
    assert joined["level"] == "WARNING" and joined["message"] == "joined now"
    assert joined["hearing_id"] == hearing_id and joined["participant_id"] == participant_id
    assert task["hearing_id"] == hearing_id and task["participant_id"] == participant_id
    assert hearing["hearing_id"] == hearing_id and "participant_id" not in hearing
    assert "hearing_id" not in other and "participant_id" not in other
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", joined["time"])


def test_json_line_carries_the_exception_and_caller_given_ids(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    try:
        raise ValueError("the answer could not be applied: 原因")
    except ValueError:
        logger.exception("message from participant failed", extra={"participant_id": "p-7"})
    (entry,) = lines(stream)
    assert entry["level"] == "ERROR" and entry["participant_id"] == "p-7"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: the answer could not be applied: 原因")
    assert "\n" not in stream.getvalue().rstrip("\n")  # one record, one line


def test_text_format_is_unchanged() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tingshen.test.text")
    handler = log_handler("text", stream)
    logger.addHandler(handler)
    logger.propagate = False
    token = PARTICIPANT_ID.set("p-1")
    try:
        logger.warning("participant %s is not reading; closing", "p-1")
    finally:
        PARTICIPANT_ID.reset(token)
        logger.removeHandler(handler)
    line = stream.getvalue().rstrip("\n")
    match = TEXT_LINE.match(line)
    assert match, line
    assert match["level"] == "WARNING" and match["logger"] == "tingshen.test.text"
    assert match["message"] == "participant p-1 is not reading; closing"


def test_auto_is_text_at_a_terminal_and_json_otherwise() -> None:
    piped = io.StringIO()
    assert isinstance(log_handler("auto", piped).formatter, JsonFormatter)
    assert not isinstance(log_handler("text", piped).formatter, JsonFormatter)
    leader, follower = os.openpty()
    with open(follower, "w") as terminal:
        handler = log_handler("auto", terminal)
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        assert TEXT_LINE.match(handler.format(record))
    os.close(leader)


def test_a_process_logs_json_lines_to_a_pipe() -> None:
    code = ("from config.logs import configure_logging; import logging; "
            "configure_logging('info', 'auto'); logging.getLogger('tingshen').info('started'); "
            "logging.getLogger('tingshen').debug('not at info')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    (line,) = result.stderr.splitlines()
    entry = json.loads(line)
    assert entry["logger"] == "tingshen" and entry["message"] == "started"


def test_log_format_setting() -> None:
    assert load_settings(environ={}).log_format == "auto"
    assert load_settings(environ={"TINGSHEN_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="TINGSHEN_LOG_FORMAT"):
        load_settings(environ={"TINGSHEN_LOG_FORMAT": "xml"})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_real_session_logs_with_its_ids(
    client: TestClient, admin: dict[str, str], clock: FakeClock
) -> None:
    """aiortc logs each peer's connection state from tasks started by that participant's
    answer: their lines name the participant and the hearing."""
    hearing = await schedule(client, admin, clock, auto_admit=True)
    stream = io.StringIO()
    aiortc_log = logging.getLogger("aiortc.rtcpeerconnection")
    handler = log_handler("json", stream)
    level = aiortc_log.level
    aiortc_log.addHandler(handler)
    aiortc_log.setLevel(logging.DEBUG)
    judge = HearingClient(hearing.base_url, "judge")
    lawyer = HearingClient(hearing.base_url, "lawyer")
    try:
        await judge.join(hearing.tokens["judge"])
        await lawyer.join(hearing.tokens["lawyer"])
        await judge.wait_for(lambda: judge.frames_from(hearing.ids["lawyer"], "audio") > 5, 30)
        await lawyer.wait_for(lambda: lawyer.frames_from(hearing.ids["judge"], "audio") > 5, 30)
    finally:
        aiortc_log.removeHandler(handler)
        aiortc_log.setLevel(level)
        await judge.close()
        await lawyer.close()
    connected = [e for e in lines(stream)
                 if "connectionState connecting -> connected" in e["message"]]
    # The server's peers, one per participant, name their participant; the clients' peers
    # (same process, no session context) name nobody.
    server_side = [e for e in connected if "participant_id" in e]
    assert {e["participant_id"] for e in server_side} == {
        hearing.ids["judge"], hearing.ids["lawyer"]}
    assert {e["hearing_id"] for e in server_side} == {hearing.id}
    assert len(connected) - len(server_side) == 2

"""Log lines for people (text) or for log collectors (JSON), with the hearing and participant
each line concerns.

Signaling sets `HEARING_ID` and `PARTICIPANT_ID` once a participant is known; asyncio tasks
started afterwards inherit them, so every line logged on their behalf names them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["auto", "text", "json"]

HEARING_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hearing_id", default=None
)
PARTICIPANT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "participant_id", default=None
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("hearing_id", "participant_id")


def hearing_context(hearing_id: str) -> contextvars.Context:
    """The context for a hearing's own tasks: its id and no participant's. Such a task may be
    started while one participant's message is handled; it must not log as theirs."""
    context = contextvars.copy_context()
    context.run(HEARING_ID.set, hearing_id)
    context.run(PARTICIPANT_ID.set, None)
    return context


class ContextFilter(logging.Filter):
    """Puts the current hearing and participant on each record (unless the caller gave them
    with `extra=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "hearing_id"):
            record.hearing_id = HEARING_ID.get()
        if not hasattr(record, "participant_id"):
            record.participant_id = PARTICIPANT_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, the hearing and participant
    when known, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def resolve_format(log_format: LogFormat, stream: TextIO) -> Literal["text", "json"]:
    """`auto`: text for a person at a terminal, JSON for a collector (systemd, containers)."""
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def log_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to `stream` (stderr) in `log_format`."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    if resolve_format(log_format, stream) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Set up the root logger for a command (left alone when something already did)."""
    logging.basicConfig(level=level.upper(), handlers=[log_handler(log_format)])

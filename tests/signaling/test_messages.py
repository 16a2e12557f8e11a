"""The protocol's parser on its own: what JSON allows but no frame or message may be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signaling.errors import SignalingError
from signaling.messages import (
    KNOWN_TYPES,
    MAX_MESSAGE_BYTES,
    Join,
    Ping,
    error,
    parse,
    ref_of,
)
from tests.fuzz.run import fuzz


def refused(raw: str | bytes) -> SignalingError:
    with pytest.raises(SignalingError) as caught:
        parse(raw)
    return caught.value


def sendable(reply: dict[str, object]) -> bytes:
    return json.dumps(reply, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("raw", [
    "[" * 100_000 + "]" * 100_000,
    '{"type": "ping", "ref": ' + '{"a": ' * 20_000 + "1" + "}" * 20_000 + "}",
])
def test_json_nested_too_deeply_is_refused_not_raised(raw: str) -> None:
    e = refused(raw)
    assert (e.code, e.field) == ("invalid", None) and "nested" in e.message
    assert ref_of(raw) is None


@pytest.mark.parametrize(("raw", "field"), [
    ('{"type": "ping", "ref": "\\ud800"}', "ref"),
    ('{"type": "join", "token": "a\\udfffb"}', "token"),
    ('{"type": "ping", "\\udbff": 1}', None),
])
def test_half_a_surrogate_pair_is_refused_and_never_echoed(raw: str, field: str | None) -> None:
    e = refused(raw)
    assert e.code == "invalid" and (field is None or e.field == field)
    # The reply a session sends can be framed: no lone surrogate is echoed back.
    assert ref_of(raw) is None
    sendable(error(e.code, e.message, e.field, ref_of(raw)))


def test_an_error_naming_text_no_frame_can_carry_is_still_sendable() -> None:
    reply = error("invalid", "ping: \ud800: unknown field", "\ud800")
    assert b"\\ud800" in sendable(reply)


@pytest.mark.parametrize("version", ["true", "1.0", '"1"', "2", "0"])
def test_the_protocol_version_is_the_integer_1(version: str) -> None:
    e = refused('{"type": "join", "token": "t", "v": ' + version + "}")
    assert (e.code, e.field) == ("invalid", "v")
    assert not e.message.startswith("join: v: Value error")
    assert parse('{"type": "join", "token": "t", "v": 1}') == Join(type="join", token="t")


def test_the_size_limit_counts_bytes_not_characters() -> None:
    # 100,000 characters of Chinese are 300,000 bytes: over the limit.
    e = refused(json.dumps({"type": "ping", "ref": "审" * 100_000}, ensure_ascii=False))
    assert e.code == "too_large"
    assert parse('{"type": "ping", "ref": "审判"}') == Ping(type="ping", ref="审判")
    assert MAX_MESSAGE_BYTES < 300_000


SEEDS = [json.dumps(m, ensure_ascii=False).encode() for m in (
    {"type": "join", "token": "x" * 43}, {"type": "answer", "sdp": "v=0\r\n"},
    {"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdp_mid": "0"},
    {"type": "consult", "action": "request", "with": "p"}, {"type": "present",
                                                            "exhibit_id": None, "page": 2},
    {"type": "command", "action": "admit", "participant_id": "p", "ref": "审"},
)] + [json.dumps({"type": t}).encode() for t in KNOWN_TYPES]


def test_parse_under_coverage_guided_fuzzing(tmp_path: Path) -> None:
    """tests/fuzz/fuzz_messages.py: every input is a message or a sendable error."""
    assert fuzz("fuzz_messages", 20_000, tmp_path, SEEDS, max_seconds=90) > 0

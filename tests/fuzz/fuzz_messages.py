"""Coverage-guided fuzzing (atheris) of `signaling.messages.parse`, as the socket uses it.

For any input: `parse` returns a message or raises `SignalingError`; the reply the session
would send (the error with the echoed `ref`, or a pong) encodes as UTF-8, so a frame can carry
it; and a message accepted reads back the same from its own JSON.

    python -m tests.fuzz.fuzz_messages -runs=20000 CORPUS_DIR
"""

from __future__ import annotations

import json
import sys
from typing import Any

import atheris
import pydantic  # noqa: F401  (imported before instrumenting: only our module is traced)

with atheris.instrument_imports(include=["signaling"]):
    from signaling.errors import SignalingError
    from signaling.messages import KNOWN_TYPES, error, parse, ref_of


def raw_of(data: bytes) -> str | bytes:
    """The frame's text four ways: bytes as sent, any code points, nesting, a typed message."""
    fdp = atheris.FuzzedDataProvider(data)
    way = fdp.ConsumeIntInRange(0, 3)
    if way == 0:
        return fdp.ConsumeBytes(atheris.ALL_REMAINING)
    if way == 1:
        return fdp.ConsumeUnicode(atheris.ALL_REMAINING)
    if way == 2:
        depth = fdp.ConsumeIntInRange(0, 20_000)
        opener, closer = fdp.PickValueInList([("[", "]"), ('{"a":', "}")])
        inner = fdp.ConsumeUnicode(atheris.ALL_REMAINING) or "1"
        return '{"type": "ping", "ref": ' + opener * depth + inner + closer * depth + "}"
    message: dict[str, Any] = {"type": fdp.PickValueInList(list(KNOWN_TYPES))}
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        key = fdp.PickValueInList(["ref", "token", "device_key", "v", "sdp", "candidate",
                                   "sdp_mid", "sdp_mline_index", "muted", "raised", "off",
                                   "sharing", "action", "with", "exhibit_id", "page",
                                   "participant_id", fdp.ConsumeUnicode(8)])
        kind = fdp.ConsumeIntInRange(0, 5)
        value: Any = [None, fdp.ConsumeBool(), fdp.ConsumeInt(8), fdp.ConsumeRegularFloat(),
                      fdp.ConsumeUnicode(40), [fdp.ConsumeUnicode(4)]][kind]
        message[key] = value
    return json.dumps(message, ensure_ascii=fdp.ConsumeBool())


def test_one_input(data: bytes) -> None:
    raw = raw_of(data)
    try:
        message = parse(raw)
    except SignalingError as e:
        reply = error(e.code, e.message, e.field, ref_of(raw))
    else:
        reply = {"type": "pong", "ref": message.ref}
        again = parse(message.model_dump_json(by_alias=True))
        assert again == message, (raw, message, again)
    json.dumps(reply, ensure_ascii=False).encode("utf-8")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

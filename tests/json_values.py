"""What the fuzz suites need to know of JSON values, shared by the API and protocol fuzzers."""

from __future__ import annotations

import json
from typing import Any


def json_type(value: Any) -> str:
    """The JSON Schema type of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def is_json(raw: str | bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True

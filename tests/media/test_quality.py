"""Grading a participant's connection for the judge's console."""

from __future__ import annotations

import pytest

from media.quality import grade


@pytest.mark.parametrize(
    ("connection", "rtt", "loss", "expected"),
    [
        ("connected", 40.0, 0.0, "good"),
        ("connected", 250.0, 0.0, "fair"),
        ("connected", 40.0, 2.0, "fair"),
        ("connected", 40.0, 8.0, "poor"),
        ("connected", 600.0, 0.0, "poor"),
        ("connected", None, None, "unknown"),
        ("connecting", 40.0, 0.0, "unknown"),
        ("failed", None, None, "poor"),
        ("disconnected", 40.0, 0.0, "poor"),
    ],
)
def test_grade(connection, rtt, loss, expected):
    assert grade(connection, rtt, loss) == expected

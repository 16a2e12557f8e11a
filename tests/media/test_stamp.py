"""The stamp's text: the clock's stretches of one offset, and user text that reaches ffmpeg's
drawtext (a case number, a caption) drawn exactly as given, whatever it holds. Escaping is
checked by ffmpeg itself: hostile text drawn through each escaping must give the very pixels
of the same text read from a file with expansion off."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from media.filtergraph import _value, chinese_font
from media.stamp import ClockSpan, clock_spans, literal, one_line

HOSTILE = [
    "(2026)京0105刑初1024号",
    "%{pts}",
    "%{eif:1/0:d}",
    "%{localtime}",
    "100%",
    "%",
    "\\",
    "a\\%{pts}b",
    "\\\\%%{{",
    "'",
    "a'b'c",
    "x:y\\:z",
    "[out];color=red[x]",
    "a,b;c",
    "':fontsize=300:text='x",
    "\\':fontcolor=red:x=0'",
    "(2026)京0105刑初1024号';%{pts:gmtime:0}\\n:[vout]",
]
STRIP = (480, 40)


def draw(*, text: str | None = None, textfile: Path | None = None,
         expansion: str = "none") -> np.ndarray:
    """One grey frame of `STRIP` with white text at a fixed place, as the composite draws it
    (options escaped by `_value`, inside a filter graph)."""
    options = {"fontfile": str(chinese_font())}
    if text is not None:
        options["text"] = text
    if textfile is not None:
        options["textfile"] = str(textfile)
    options |= {"expansion": expansion, "fontcolor": "white", "fontsize": "20", "x": "4",
                "y": "10"}
    graph = (f"color=c=black:s={STRIP[0]}x{STRIP[1]}:r=25:d=0.04,format=gray,drawtext="
             + ":".join(f"{k}={_value(v)}" for k, v in options.items()) + "[out]")
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-filter_complex", graph,
         "-map", "[out]", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
        capture_output=True, check=True,
    )
    return np.frombuffer(result.stdout, np.uint8).reshape(STRIP[1], STRIP[0])


def as_file(tmp_path: Path, text: str, name: str = "text.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_is_drawn_as_given(hostile, tmp_path):
    reference = draw(textfile=as_file(tmp_path, hostile))
    assert reference.max() > 200  # something was drawn
    # As an option value in the graph (what the composite does with paths and expressions).
    assert np.array_equal(draw(text=hostile), reference)
    # In a file read with expansion on (what the clock's text is).
    expanded = draw(textfile=as_file(tmp_path, literal(hostile), "literal.txt"),
                    expansion="normal")
    assert np.array_equal(expanded, reference)


def test_user_text_becomes_one_printable_line():
    assert one_line("(2026)京0105\n刑初\t1024号\x00\x1b[31m  ") == "(2026)京0105 刑初 1024号[31m"
    assert one_line("\n\r\t") == ""


BEIJING = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def test_beijing_time_is_one_stretch_eight_hours_ahead():
    origin = datetime(2026, 11, 23, 1, 31, 5, 500_000, tzinfo=UTC).timestamp()
    assert clock_spans(origin, 7200.0, BEIJING) == [
        ClockSpan((0.0, 7200.0), origin + 8 * 3600, "北京时间")
    ]
    text = clock_spans(origin, 1.0, BEIJING)[0].text()
    assert text == f"%{{pts:gmtime:{origin + 28800:.6f}:%Y-%m-%d %H\\:%M\\:%S}} 北京时间"


def test_a_daylight_saving_change_mid_hearing_starts_a_new_stretch():
    change = datetime(2026, 10, 25, 1, 0, 0, tzinfo=UTC).timestamp()  # 03:00 CEST -> 02:00 CET
    origin = change - 5400.25
    spans = clock_spans(origin, 3 * 3600.0, BERLIN)
    assert spans == [
        ClockSpan((0.0, 5400.25), origin + 7200, "UTC+02:00"),
        ClockSpan((5400.25, 3 * 3600.0), origin + 3600, "UTC+01:00"),
    ]
    # A hearing that ends before the change, or starts after it, has one stretch.
    assert len(clock_spans(origin, 5400.0, BERLIN)) == 1
    assert len(clock_spans(change, 3600.0, BERLIN)) == 1

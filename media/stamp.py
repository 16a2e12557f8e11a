"""What the review composite carries burned into its picture: the case number and the court's
wall clock (《关于人民法院庭审录音录像的若干规定》 art. 4: a synchronized time on the recording).

The clock is drawn by ffmpeg's `drawtext` from the frame's own timestamp: composite time `t`
shows the wall-clock instant `origin + t` in the court's zone, e.g. "2026-11-23 09:31:07
北京时间". The zone's offset is worked out here, once per stretch of the timeline it holds
for (a daylight-saving change mid-hearing starts a new stretch), so ffmpeg needs no zone data.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from config.timezone import zone_label

CLOCK_FORMAT = r"%Y-%m-%d %H\:%M\:%S"  # strftime, with drawtext's ':' escaped
CLOCK_SAMPLE = "2026-11-23 09:31:07"  # as wide as any clock reading
_SCAN_S = 3_600  # offsets change at most once in this long (daylight saving: twice a year)


@dataclass(frozen=True)
class Stamp:
    """The case number, and the wall-clock instant (Unix seconds) at time 0 of the hearing
    timeline (None: no clock), shown in `zone`."""

    case_number: str
    origin: float | None
    zone: ZoneInfo


@dataclass(frozen=True)
class ClockSpan:
    """A stretch of the timeline over which the zone's offset holds."""

    window: tuple[float, float]  # start, end in composite time
    shift: float  # add to composite time: seconds since the epoch, read as UTC, show local time
    label: str  # 北京时间, or the offset (UTC+02:00)

    def text(self) -> str:
        """drawtext's text, to be read with `expansion=normal`."""
        return f"%{{pts:gmtime:{self.shift:.6f}:{CLOCK_FORMAT}}} {literal(self.label)}"


def one_line(text: str) -> str:
    """One line of printable text: drawtext breaks lines at newlines, and control characters
    would show as missing-glyph boxes."""
    return " ".join("".join(c for c in text if c.isprintable() or c.isspace()).split())


def literal(text: str) -> str:
    """`text` shown as it is by drawtext with `expansion=normal`: `%` would start a function
    (`%{...}`) and `\\` escapes the next character."""
    return text.replace("\\", "\\\\").replace("%", "\\%")


def clock_spans(origin: float, end: float, zone: ZoneInfo) -> list[ClockSpan]:
    """The clock over composite time 0..`end` for a timeline that starts at `origin`."""
    changes = [0.0]
    t, offset = 0.0, _offset(origin, zone)
    while t < end:
        step = min(float(_SCAN_S), end - t)
        later = _offset(origin + t + step, zone)
        if later != offset:
            # The first second with the new offset (zones change on whole seconds).
            low, high = math.floor(origin + t), math.ceil(origin + t + step)
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if _offset(middle, zone) == offset else (low, middle)
            changes.append(high - origin)
            offset = later
        t += step
    spans = []
    for start, stop in itertools.pairwise([*changes, end]):
        if stop <= start:
            continue
        moment = datetime.fromtimestamp(origin + start, UTC)
        spans.append(ClockSpan((start, stop), origin + _offset(origin + start, zone),
                               zone_label(zone, moment)))
    return spans


def _offset(instant: float, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(instant, UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0

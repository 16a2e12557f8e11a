"""The court's local time: what every page, document, export and CLI line shows. Times are kept
in UTC inside the data; they are turned into the court's time only where people read them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

# Zones Chinese readers call Beijing time (北京时间).
BEIJING = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "Asia/Urumqi",
                     "PRC", "Asia/Chungking"})


def zone_label(zone: ZoneInfo, moment: datetime, language: str = "zh") -> str:
    """How a reader names the zone: 北京时间 (Beijing time) in China, else its UTC offset."""
    if zone.key in BEIJING and moment.astimezone(zone).utcoffset() is not None:
        return "Beijing time" if language == "en" else "北京时间"
    offset = moment.astimezone(zone).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` (aware, any zone) in the court's zone."""
    return moment.astimezone(zone)


def local_text(moment: datetime, zone: ZoneInfo, language: str = "zh") -> str:
    """`2026-11-23 18:00 北京时间`: a time as a court reads it on a line of its own."""
    return f"{local(moment, zone):%Y-%m-%d %H:%M} {zone_label(zone, moment, language)}"

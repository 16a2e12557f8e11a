"""court-time.js, the staff pages' calendar on the court's clock, in real Chromium: days,
weeks and hours in court zones with daylight saving (the reader's computer in another zone),
around the transitions, including those at midnight (Cairo, Beirut), where the day starts at
01:00."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Route

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
ORIGIN = "http://court.test"


async def court_time(browser: Browser, zone: str, script: str, arg: Any = None) -> Any:
    """Runs `script` (a function of the module and `arg`) in a page whose court is in `zone`
    and whose computer is in Tokyo."""
    context = await browser.new_context(timezone_id="Asia/Tokyo")
    try:
        async def serve(route: Route) -> None:
            path = route.request.url.removeprefix(ORIGIN)
            if path == "/static/labels.js":
                body, kind = f"export const TIME_ZONE = {zone!r};", "text/javascript"
            elif path == "/static/court-time.js":
                body, kind = (STATIC / "court-time.js").read_text(), "text/javascript"
            else:
                body, kind = "<!doctype html><title>court time</title>", "text/html"
            await route.fulfill(body=body, content_type=kind)

        await context.route(f"{ORIGIN}/**", serve)
        page = await context.new_page()
        await page.goto(f"{ORIGIN}/")
        return await page.evaluate(
            f"async (arg) => {{ const c = await import('/static/court-time.js');"
            f" return ({script})(c, arg); }}", arg)
    finally:
        await context.close()


WEEK = """(c, monday) => {
  const start = c.courtInstant(...monday);
  return {
    monday: c.toLocalInput(c.mondayOf(c.courtInstant(monday[0], monday[1], monday[2] + 6, 12))),
    days: [0, 1, 2, 3, 4, 5, 6, 7].map((i) => c.toLocalInput(c.courtDay(start, i))),
    eight: [0, 1, 2, 3, 4, 5, 6].map((i) => c.toLocalInput(c.atHour(c.courtDay(start, i), 8))),
  };
}"""


@pytest.mark.parametrize(("zone", "monday"), [
    ("Africa/Cairo", (2026, 4, 20)),  # Friday the 24th begins at 01:00 (DST at midnight)
    ("Asia/Beirut", (2026, 3, 23)),  # Sunday the 29th begins at 01:00
    ("America/New_York", (2026, 3, 2)),  # Sunday the 8th: 02:00 → 03:00
    ("America/New_York", (2026, 10, 26)),  # Sunday 1 November: 02:00 → 01:00
    ("Europe/Berlin", (2026, 3, 23)),
    ("Asia/Shanghai", (2026, 11, 23)),
])
async def test_a_week_has_seven_days_each_on_its_date(browser, zone, monday):
    week = await court_time(browser, zone, WEEK, list(monday))
    dates = [(date(*monday) + timedelta(days=i)).isoformat() for i in range(8)]
    # Each day starts at its own midnight (01:00 where midnight is skipped), on its date, and
    # the calendar's 8:00 row is 8:00 that day.
    for i, day in enumerate(week["days"]):
        assert day[:10] == dates[i] and day[11:] in ("00:00", "01:00"), (i, week)
    assert week["eight"] == [f"{d}T08:00" for d in dates[:7]], week
    assert week["monday"] == f"{dates[0]}T00:00", week


async def test_a_time_skipped_by_daylight_saving_lands_after_the_jump(browser):
    """Whichever side of UTC the zone is on (the search used to oscillate and stop on the
    side its parity gave: before the jump east of Greenwich)."""
    skipped = """(c) => [c.toLocalInput(c.courtInstant(2026, 3, 8, 2, 30)),
                         c.toLocalInput(c.courtInstant(2026, 3, 29, 2, 30)),
                         c.toLocalInput(c.courtInstant(2026, 4, 24, 0, 0))]"""
    assert (await court_time(browser, "America/New_York", skipped))[0] == "2026-03-08T03:30"
    assert (await court_time(browser, "Europe/Berlin", skipped))[1] == "2026-03-29T03:30"
    assert (await court_time(browser, "Africa/Cairo", skipped))[2] == "2026-04-24T01:00"
    # A time that exists is found exactly; one that repeats (autumn) is its first occurrence.
    exact = """(c) => [c.courtInstant(2026, 3, 8, 8, 0).toISOString(),
                       c.courtInstant(2026, 11, 1, 1, 30).toISOString(),
                       c.fromLocalInput("2026-03-08T01:59").toISOString()]"""
    assert await court_time(browser, "America/New_York", exact) == [
        "2026-03-08T12:00:00.000Z", "2026-11-01T05:30:00.000Z", "2026-03-08T06:59:00.000Z"]

"""Fire times against a reference crontab implementation (croniter) over a whole year.

Weekday numbering (Sunday = 0 or 7), ranges, steps, lists, names, and the rule that a day
matches when either a restricted day of the month or a restricted weekday does.  Days with a
DST change are left out: firehook's rule for the gap and the repeated hour (scheduler/cron.py,
tests/test_cron.py) is its own, and croniter's differs there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from firehook.scheduler.cron import CronError, CronSchedule

ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Europe/London")

EXPRESSIONS = (
    "0 9 * * 1-5",
    "30 8 * * MON-FRI",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 12 * * 0-3",
    "0 12 * * 0-6/2",
    "15 6 * * */2",
    "0 18 * * 1/2",
    "0 7 * * 5-1",
    "0 7 * * 6-7",
    "0 7 * * sat,sun",
    "0 7 * * Sun,3,5",
    "0 0 1 * 1",
    "0 6 13 * 5",
    "0 0 1,15 * wed",
    "0 10 1-7 * 1",
    "0 4 */3 * *",
    "0 4 */3 * 0",
    "0 22 * JAN-MAR *",
    "45 23 * * 1-7/3",
    "*/30 9-17 * * 1-5",
    "0 0 31 * *",
    "30 0 12 * * 1",  # six fields: seconds first
)

YEAR_START = datetime(2026, 1, 1)
YEAR_END = datetime(2027, 1, 1)


def dst_days(zone: ZoneInfo) -> set[date]:
    """Local dates on which the zone's offset changes."""
    out = set()
    day = YEAR_START.date()
    while day < YEAR_END.date():
        begin = datetime(day.year, day.month, day.day, tzinfo=zone)
        end = (begin + timedelta(days=1)).replace(tzinfo=zone)
        if begin.utcoffset() != end.utcoffset():
            out.add(day)
        day += timedelta(days=1)
    return out


def reference(expr: str, zone: ZoneInfo) -> list[datetime]:
    it = croniter(expr, YEAR_START.replace(tzinfo=zone), second_at_beginning=True)
    out = []
    end = YEAR_END.replace(tzinfo=zone)
    for _ in range(20_000):
        tick = it.get_next(datetime)
        if tick >= end:
            return out
        out.append(tick)
    raise AssertionError("croniter gave more ticks than the test expects")


@pytest.mark.parametrize("tz", ZONES)
def test_a_year_of_fire_times_matches_croniter(tz: str) -> None:
    zone = ZoneInfo(tz)
    skip = dst_days(zone)
    for expr in EXPRESSIONS:
        cron = CronSchedule(expr, tz)
        end = YEAR_END.replace(tzinfo=zone)
        ours: list[datetime] = []
        tick: datetime | None = YEAR_START.replace(tzinfo=zone)
        while tick is not None and len(ours) < 20_000:
            tick = cron.next_after(tick)
            if tick is None or tick >= end:
                break
            ours.append(tick)
        got = [t.astimezone(UTC) for t in ours if t.date() not in skip]
        want = [t.astimezone(UTC) for t in reference(expr, zone) if t.date() not in skip]
        assert want, expr
        assert got == want, f"{expr} in {tz}"


@pytest.mark.parametrize(
    ("expr", "weekdays"),
    [
        ("0 0 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 0 * * 0-6/2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 0 * * 0-3", {"Sun", "Mon", "Tue", "Wed"}),
        ("0 0 * * 7", {"Sun"}),
        ("0 0 * * MON-FRI", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 0 * * 5-1", {"Fri", "Sat", "Sun", "Mon"}),
    ],
)
def test_weekdays_count_from_sunday(expr: str, weekdays: set[str]) -> None:
    ticks = CronSchedule(expr, "UTC").upcoming(datetime(2026, 11, 1, tzinfo=UTC), 28)
    assert {t.strftime("%a") for t in ticks} == weekdays


def test_a_day_of_month_and_a_weekday_fire_when_either_matches() -> None:
    ticks = CronSchedule("0 0 1 * 1", "UTC").upcoming(datetime(2026, 11, 25, tzinfo=UTC), 3)
    # Tuesday the 1st of December, and the Mondays around it
    assert [t.date().isoformat() for t in ticks] == ["2026-11-30", "2026-12-01", "2026-12-07"]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 * * 8", "weekday 8 is out of range"),
        ("0 0 * * 1-9", "weekday 9 is out of range"),
        ("0 0 * * */0", "step '0'"),
        ("0 0 * * funday", "'funday' is not a weekday"),
    ],
)
def test_bad_weekdays_say_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule(expr, "UTC")

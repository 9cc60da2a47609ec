"""Cron maths in tables: fields (with the leading seconds field), weekdays, zones, DST."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firehook.scheduler.cron import CronError, CronSchedule


def ticks(expr: str, tz: str, after: str, n: int) -> list[str]:
    start = datetime.fromisoformat(after)
    return [t.isoformat() for t in CronSchedule(expr, tz).upcoming(start, n)]


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [
        # five fields: minute hour day month weekday
        (
            "0 20 * * *",
            "Asia/Shanghai",
            "2026-11-29T12:00:00+00:00",
            ["2026-11-30T20:00:00+08:00", "2026-12-01T20:00:00+08:00"],
        ),
        (
            "0 20 * * *",
            "Asia/Shanghai",
            "2026-11-29T11:59:59+00:00",
            ["2026-11-29T20:00:00+08:00", "2026-11-30T20:00:00+08:00"],
        ),
        (
            "*/15 * * * *",
            "UTC",
            "2026-01-01T00:07:00+00:00",
            ["2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00"],
        ),
        (
            "5 4 1 * *",
            "UTC",
            "2026-01-15T00:00:00+00:00",
            ["2026-02-01T04:05:00+00:00", "2026-03-01T04:05:00+00:00"],
        ),
        # weekdays count from Sunday = 0 (7 is Sunday too), as in crontab
        (
            "0 9 * * 1-5",
            "UTC",
            "2026-11-27T10:00:00+00:00",  # a Friday
            ["2026-11-30T09:00:00+00:00", "2026-12-01T09:00:00+00:00"],
        ),
        (
            "0 9 * * 0",
            "UTC",
            "2026-11-27T10:00:00+00:00",
            ["2026-11-29T09:00:00+00:00", "2026-12-06T09:00:00+00:00"],
        ),
        (
            "0 9 * * 7",
            "UTC",
            "2026-11-27T10:00:00+00:00",
            ["2026-11-29T09:00:00+00:00", "2026-12-06T09:00:00+00:00"],
        ),
        (
            "0 9 * * sat,sun",
            "UTC",
            "2026-11-27T10:00:00+00:00",
            ["2026-11-28T09:00:00+00:00", "2026-11-29T09:00:00+00:00"],
        ),
        # six fields: a leading seconds field
        (
            "*/2 * * * * *",
            "UTC",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-01T00:00:02+00:00", "2026-01-01T00:00:04+00:00", "2026-01-01T00:00:06+00:00"],
        ),
        (
            "30 * * * * *",
            "UTC",
            "2026-01-01T00:00:30+00:00",
            ["2026-01-01T00:01:30+00:00", "2026-01-01T00:02:30+00:00"],
        ),
        (
            "0,20,40 0 12 * * *",
            "Europe/Berlin",
            "2026-06-01T00:00:00+00:00",
            ["2026-06-01T12:00:00+02:00", "2026-06-01T12:00:20+02:00", "2026-06-01T12:00:40+02:00"],
        ),
        # the first of the month after a DST change (APScheduler 3.11 alone skips April 1st)
        (
            "0 0 1 * *",
            "America/New_York",
            "2026-03-01T17:00:00+00:00",
            ["2026-04-01T00:00:00-04:00", "2026-05-01T00:00:00-04:00"],
        ),
        # a zone with a half-hour offset
        (
            "0 9 * * *",
            "Asia/Kolkata",
            "2026-01-01T00:00:00+00:00",
            ["2026-01-01T09:00:00+05:30", "2026-01-02T09:00:00+05:30"],
        ),
    ],
)
def test_fire_times(expr: str, tz: str, after: str, expected: list[str]) -> None:
    assert ticks(expr, tz, after, len(expected)) == expected


# DST: see scheduler/cron.py and the README for the rules these rows pin down.
@pytest.mark.parametrize(
    ("case", "expr", "tz", "after", "expected"),
    [
        (
            "gap, fixed time: 02:30 does not exist; runs once, at 03:30 summer time",
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00:00+00:00",
            ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        (
            "gap, hourly: the missing hour has no tick, no hour has two",
            "0 * * * *",
            "Europe/Berlin",
            "2026-03-28T23:30:00+00:00",
            ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
        ),
        (
            "overlap, fixed time: 02:30 happens twice; runs in the first pass only",
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T12:00:00+00:00",
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        (
            "overlap, hourly: each pass is a real hour, both run",
            "30 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:00:00+00:00",
            [
                "2026-10-25T01:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-25T03:30:00+01:00",
            ],
        ),
        (
            "overlap, every 20 s: no second is skipped or repeated",
            "*/20 * * * * *",
            "Europe/Berlin",
            "2026-10-25T00:59:20+00:00",
            ["2026-10-25T02:59:40+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:00:20+01:00"],
        ),
        (
            "gap, New York: 02:30 on the second Sunday of March runs at 03:30 EDT",
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00+00:00",
            ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        (
            "overlap, New York: 01:30 on the first Sunday of November runs once",
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00+00:00",
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        (
            "overlap, New York, every 30 minutes: the repeated hour runs twice",
            "*/30 * * * *",
            "America/New_York",
            "2026-11-01T04:45:00+00:00",
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:00:00-05:00",
            ],
        ),
    ],
)
def test_daylight_saving_time(
    case: str, expr: str, tz: str, after: str, expected: list[str]
) -> None:
    got = ticks(expr, tz, after, len(expected))
    # compare instants: isoformat of a gap time keeps the wall time it was asked for
    assert [datetime.fromisoformat(t) for t in got] == [
        datetime.fromisoformat(t) for t in expected
    ], case


def test_ticks_are_strictly_increasing_through_a_whole_dst_year() -> None:
    cron = CronSchedule("*/30 * * * *", "Europe/Berlin")
    found = cron.upcoming(datetime(2026, 1, 1, tzinfo=UTC), 365 * 48 - 2)
    utc = [t.astimezone(UTC) for t in found]
    assert utc == sorted(set(utc))
    # one day with 23 hours (46 ticks), one with 25 (the repeated hour twice: 50 ticks)
    per_day: dict[str, int] = {}
    for t in found:
        per_day[t.date().isoformat()] = per_day.get(t.date().isoformat(), 0) + 1
    assert per_day["2026-03-29"] == 46
    assert per_day["2026-10-25"] == 50


def test_start_and_end_dates_bound_the_ticks_in_the_schedule_zone() -> None:
    cron = CronSchedule(
        "0 20 * * *",
        "Asia/Shanghai",
        start_date=datetime(2026, 12, 1),
        end_date=datetime(2026, 12, 3, 23, 0),
    )
    got = cron.upcoming(datetime(2026, 11, 1, tzinfo=UTC), 10)
    assert [t.isoformat() for t in got] == [
        "2026-12-01T20:00:00+08:00",
        "2026-12-02T20:00:00+08:00",
        "2026-12-03T20:00:00+08:00",
    ]


@pytest.mark.parametrize(
    ("expr", "tz", "message"),
    [
        ("* * * *", "UTC", "has 4 fields"),
        ("* * * * * * *", "UTC", "has 7 fields"),
        ("61 * * * *", "UTC", "61"),
        ("* * * * 8", "UTC", "weekday 8 is out of range"),
        ("0 20 * * *", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expr: str, tz: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule(expr, tz)

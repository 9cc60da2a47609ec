"""Cron expressions: 5 fields, or 6 with a leading seconds field, computed by APScheduler 3.

Daylight saving time (tested in ``tests/test_cron.py``, documented in the README):

* spring forward (a local hour does not exist): a tick whose wall time falls in the gap runs
  once, at the instant that wall time has with the offset before the change (02:30 in
  Europe/Berlin on the last Sunday of March runs at 03:30 CEST); when that instant is another
  tick too (``0 * * * *``: 02:00 would be 03:00), it is one tick.
* fall back (a local hour happens twice): a schedule whose hour field is ``*`` runs in both
  passes, since each pass is a real hour; a schedule at fixed hours (``30 2 * * *``) runs in
  the first pass only, as Vixie cron does, so a daily job never runs twice in one day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from firehook.config.errors import ConfigError

__all__ = ["CronError", "CronSchedule", "parse_cron", "parse_timezone"]


class CronError(ConfigError):
    """A cron expression or time zone that cannot be used."""


def parse_timezone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai"
        ) from None


def parse_cron(
    expr: str,
    timezone: str,
    *,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
) -> BaseTrigger:
    """``"0 20 * * *"`` or ``"*/2 * * * * *"`` (seconds first) in ``timezone``, as in crontab.

    Weekdays count from Sunday = 0 (7 is Sunday too).  When both the day of the month and
    the weekday are restricted (neither is ``*``), a day matches when either does
    (``0 0 1 * 1``: the 1st of each month and every Monday), as crontab does.
    ``start_date`` and ``end_date`` without an offset are read in ``timezone``.
    """
    tz = parse_timezone(timezone)
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise CronError(
            f"cron {expr!r} has {len(fields)} fields; expected 5 (minute hour day month weekday)"
            " or 6 (second first)"
        )
    second = fields[0] if len(fields) == 6 else "0"
    minute, hour, day, month, day_of_week = fields[-5:]
    weekdays = _crontab_weekdays(expr, day_of_week)

    def cron(day: str, day_of_week: str) -> CronTrigger:
        return _CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            timezone=tz,
            start_date=start_date,
            end_date=end_date,
        )

    try:
        if day != "*" and day_of_week != "*":
            return OrTrigger([cron(day, "*"), cron("*", weekdays)])
        return cron(day, weekdays)
    except ValueError as e:
        raise CronError(f"cron {expr!r}: {e}") from None


_MICRO = timedelta(microseconds=1)
_HOUR_FIELD = CronTrigger.FIELD_NAMES.index("hour")


class _CronTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 has no types
    """APScheduler 3.11's CronTrigger, moving to a later day on the wall clock.

    When no value of a field fits, APScheduler 3.11 moves to the next day, month or year by
    adding the wall-clock difference in UTC: across a DST change that lands an hour off, and
    the hour no longer matches, so the whole day is skipped (``0 0 1 * *`` in New York from
    March 1st skipped April 1st; ``0 0 * * 1`` skipped the Monday after the change).  Moves
    of an hour or less stay in UTC (each pass of a repeated hour is a real hour).
    """

    def _increment_field_value(self, dateval: datetime, fieldnum: int) -> tuple[datetime, int]:
        moved, field = super()._increment_field_value(dateval, fieldnum)
        if not 0 <= field < _HOUR_FIELD or moved.utcoffset() == dateval.utcoffset():
            return moved, field
        wall = dateval.replace(tzinfo=None) + (moved.astimezone(UTC) - dateval.astimezone(UTC))
        # a wall time in a gap becomes the instant it has with the offset before the change
        return wall.replace(tzinfo=self.timezone).astimezone(UTC).astimezone(self.timezone), field


class CronSchedule:
    """The ticks of one cron expression in one zone, with the DST rules above."""

    def __init__(
        self,
        expr: str,
        timezone: str,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> None:
        self.expr = expr
        self.trigger = parse_cron(expr, timezone, start_date=start_date, end_date=end_date)
        self.tz = parse_timezone(timezone)
        hour = expr.split()[-4]
        self.every_hour = hour in ("*", "*/1")

    def next_after(self, after: datetime) -> datetime | None:
        """The first tick strictly after ``after`` (aware), in the schedule's zone; None: none."""
        # step in UTC: adding to a local time in the repeated hour would lose its fold
        cursor = after.astimezone(UTC)
        while True:
            tick: datetime | None = self.trigger.get_next_fire_time(None, cursor + _MICRO)
            if tick is None or self.every_hour or not _second_pass(tick):
                return tick
            cursor = tick.astimezone(UTC)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        out: list[datetime] = []
        tick: datetime | None = after
        while len(out) < count and tick is not None:
            tick = self.next_after(tick)
            if tick is not None:
                out.append(tick)
        return out


def _second_pass(tick: datetime) -> bool:
    """True for a local time in the second pass of a repeated hour (fall back)."""
    return tick.fold == 1 and tick.replace(fold=0).utcoffset() != tick.utcoffset()


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_weekdays(expr: str, field: str) -> str:
    """A crontab weekday field as APScheduler 3 names (it counts from Monday = 0).

    Lists, ranges (``1-5``, ``MON-FRI``, ``5-1`` wraps over the weekend), steps (``*/2``,
    ``0-6/2``, ``1/2`` = ``1-6/2``), names and numbers 0-7 (0 and 7 are Sunday).
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"cron {expr!r}: weekday step {step_text!r} is not a number > 0")
            step = int(step_text)
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _weekday(expr, a), _weekday(expr, b)
            if last < first:  # wraps over the end of the week: 5-1 is Fri..Mon
                last += 7
        else:
            first = _weekday(expr, span)
            last = 6 if slash and first < 7 else first
        days.update(d % 7 for d in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(expr: str, token: str) -> int:
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    if not token.isdigit():
        raise CronError(f"cron {expr!r}: {token!r} is not a weekday (0-7 or sun..sat)")
    n = int(token)
    if not 0 <= n <= 7:
        raise CronError(f"cron {expr!r}: weekday {n} is out of range 0-7")
    return n

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
) -> CronTrigger:
    """``"0 20 * * *"`` or ``"*/2 * * * * *"`` (seconds first) in ``timezone``.

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
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_crontab_weekdays(day_of_week),
            timezone=tz,
            start_date=start_date,
            end_date=end_date,
        )
    except ValueError as e:
        raise CronError(f"cron {expr!r}: {e}") from None


_MICRO = timedelta(microseconds=1)


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
        self.tz = self.trigger.timezone
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


def _crontab_weekdays(field: str) -> str:
    """Cron counts weekdays 0-6 from Sunday (7 is Sunday too); APScheduler 3 from Monday."""
    if not any(ch.isdigit() for ch in field):
        return field
    out = []
    for part in field.split(","):
        step = ""
        if "/" in part:
            part, step = part.split("/", 1)
            step = "/" + step
        if "-" in part:
            a, b = part.split("-", 1)
            out.append(f"{_dow(a)}-{_dow(b)}{step}")
        else:
            out.append(f"{_dow(part)}{step}")
    return ",".join(out)


def _dow(token: str) -> str:
    if not token.isdigit():
        return token
    n = int(token)
    if not 0 <= n <= 7:
        raise CronError(f"weekday {n} is out of range 0-7")
    return ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")[n]

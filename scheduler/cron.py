"""Cron expressions: 5 fields, or 6 with a leading seconds field, computed by APScheduler 3."""

from __future__ import annotations

from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from config.errors import ConfigError

__all__ = ["CronError", "parse_cron", "parse_timezone"]


class CronError(ConfigError):
    """A cron expression or time zone that cannot be used."""


def parse_timezone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai"
        ) from None


def parse_cron(expr: str, timezone: str) -> CronTrigger:
    """``"0 20 * * *"`` or ``"*/2 * * * * *"`` (seconds first) in ``timezone``."""
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
        )
    except ValueError as e:
        raise CronError(f"cron {expr!r}: {e}") from None


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

"""Durations written the way people write them: ``30m``, ``5s``, ``1h30m``, ``250ms``.

ISO 8601 durations (``PT30S``, ``P1DT2H``; weeks, days, hours, minutes, seconds, without
years or months, whose length varies) are accepted too, so that what an editor's JSON Schema
check allows (:data:`DURATION_SCHEMA`) and what ``firehook apply`` accepts agree.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from firehook.config.errors import ConfigError

__all__ = ["DURATION_SCHEMA", "Duration", "format_duration", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_NUM = r"\d+(?:\.\d+)?"
_ISO = re.compile(
    rf"P(?:(?P<w>{_NUM})W)?(?:(?P<d>{_NUM})D)?"
    rf"(?:T(?=\d)(?:(?P<h>{_NUM})H)?(?:(?P<m>{_NUM})M)?(?:(?P<s>{_NUM})S)?)?"
)
_ISO_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
# what parse_duration accepts, for editors: "30s", "1h30m", "250ms", "10", "PT30S"
_PATTERN = (
    rf"^ *(?:{_NUM} *|(?:{_NUM} *(?:ms|s|m|h|d) *)+"
    rf"|P(?!$)(?:{_NUM}W)?(?:{_NUM}D)?(?:T(?=\d)(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?)$"
)
DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": _PATTERN, "examples": ["30s", "5m", "1h30m", "PT30S"]},
        {"type": "number", "minimum": 0, "description": "seconds"},
    ],
    "description": "a duration: 30s, 5m, 1h30m, 250ms, 2d, a number of seconds, or ISO 8601",
}
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


def parse_duration(text: str | float | int | timedelta) -> timedelta:
    """Parse ``"1h30m"``, ``"5s"``, ``"250ms"`` or a number of seconds into a timedelta."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ConfigError(f"expected a duration such as 30s or 5m, got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ConfigError(f"a duration cannot be negative: {text!r}")
        return timedelta(seconds=text)
    cleaned = text.strip().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        return timedelta(seconds=float(cleaned))
    try:
        iso = _ISO.fullmatch(cleaned)
        if iso is not None and cleaned != "P":
            units = {_ISO_UNITS[k]: float(v) for k, v in iso.groupdict().items() if v is not None}
            return timedelta(**units)
        parts = _PART.findall(cleaned)
        if not cleaned or "".join(n + u for n, u in parts) != cleaned:
            raise ConfigError(f"expected a duration such as 30s, 5m or 1h30m, got {text!r}")
        return sum((float(n) * _UNITS[u] for n, u in parts), timedelta())
    except OverflowError:
        raise ConfigError(f"a duration too long to use: {text[:40]!r}") from None


def format_duration(value: timedelta) -> str:
    """Short human form: ``1.5 ms``, ``2.30 s``, ``5m``."""
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda v: f"{v.total_seconds():g}s", return_type=str),
    WithJsonSchema(DURATION_SCHEMA),
]
"""A ``timedelta`` field that also accepts ``30s``, ``5m``, ``1h30m`` or seconds."""

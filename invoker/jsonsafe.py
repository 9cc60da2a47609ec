"""What every JSON value crossing into firehook must be: parseable, storable, bounded.

One caller must never stop the engine. Every input path (an HTTP body, an event, a hook,
the CLI's ``--data``, a function's result) checks its value here, so that a value the
store or the pool cannot hold is refused with a clear reason instead of failing later,
somewhere shared (a completion batch, a pool process, the consumer's batch).

The limits (docs/operations.md, "Limits on data"):

- nesting: at most :data:`MAX_DEPTH` containers inside each other;
- numbers: finite (no NaN or Infinity); integers of at most :data:`MAX_INT_DIGITS` digits;
- strings: no NUL character (PostgreSQL's ``jsonb`` cannot hold ``\\u0000``) and no lone
  surrogate (not UTF-8).

This module imports only the standard library: the pool's child process uses it.
Functions here raise :class:`ValueError` (as :func:`json.loads` does); each boundary
translates it into its own error (a 400, exit 2, ``invalid_params``, ``execution_failed``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "loads", "problem", "storable_text"]

MAX_DEPTH = 64
"""Containers (objects, arrays) inside each other; deeper values are refused."""

MAX_INT_DIGITS = 4300
"""Python's own limit for int/str conversion (``sys.get_int_max_str_digits()`` default)."""

# an int of more than MAX_INT_DIGITS decimal digits has more bits than this
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_INT_BITS = math.ceil(MAX_INT_DIGITS * math.log2(10))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (only finite numbers are accepted)")


def loads(data: str | bytes) -> Any:
    """Parse JSON and check the value (:func:`problem`); ValueError names what is wrong."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text: {e.reason} at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # int digits over Python's limit, or one of our constants
        text = str(e)
        if "integer string conversion" in text:
            text = f"a number has more than {MAX_INT_DIGITS} digits"
        raise ValueError(text) from None
    reason = problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored and passed on as JSON, or None if it can.

    Walks the value without recursion, so any depth is safe to check.  Types that JSON has
    no form for are left to :func:`json.dumps` (the caller encodes anyway).
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:
                return f"JSON nested deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                reason = next(filter(None, map(_scalar_problem, item)), None)
                if reason is not None:
                    return reason
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
            continue
        reason = _scalar_problem(item)
        if reason is not None:
            return reason
    return None


def _scalar_problem(item: Any) -> str | None:
    if isinstance(item, str):
        return _string_problem(item)
    if isinstance(item, bool):
        return None
    if isinstance(item, int) and item.bit_length() > _MAX_INT_BITS:  # str() of it would raise
        return f"a number has more than {MAX_INT_DIGITS} digits"
    if isinstance(item, float) and not math.isfinite(item):
        return f"{item!r} is not a JSON number (only finite numbers are accepted)"
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a string holds a NUL character (\\u0000), which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a string holds a lone surrogate (not valid Unicode text)"
    return None


def storable_text(text: str) -> str:
    """``text`` made storable: NUL as the visible escape ``\\u0000``, lone surrogates as U+FFFD.

    For what a run produced and must be recorded whatever it holds (its captured log, an
    error message or stack); input values are refused instead (:func:`problem`).
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if not text.isascii() and _string_problem(text) is not None:
        text = _SURROGATE.sub("\ufffd", text)
    return text

""":func:`jsonsafe.problem`'s verdict at the C encoder's speed, for values on every run's path.

``problem()`` walks a value in Python: several times :func:`json.dumps` on the small params
and results of a trivial run, paid twice per run (params in the pool, the result in its
process).  :func:`encode` and :func:`problem` let the C encoder find what it can (NaN and
Infinity, integers over Python's digit limit, circular or absurdly deep values fail it) and
walk the value only when that fails or the text it wrote could hide a problem: containers
nested more than :data:`jsonsafe.MAX_DEPTH` deep, an escaped NUL, a lone surrogate, a run of digits
past :data:`jsonsafe.MAX_INT_DIGITS`.  So a value is refused exactly when ``problem()``
refuses it, with its reason.

Standard library only (with ``jsonsafe``): the pool's processes import it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from firehook.invoker import jsonsafe

__all__ = ["Refused", "encode", "problem"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # json.dumps with these
# arguments builds a new encoder on every call
_LONG_DIGITS = re.compile(rf"\d{{{jsonsafe.MAX_INT_DIGITS + 1}}}")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


class Refused(ValueError):
    """The value breaks the limits of :mod:`jsonsafe`; the message says how."""


def encode(value: Any) -> str:
    """``value`` as JSON (``ensure_ascii=False``); :class:`Refused` when ``problem()``
    refuses it, the encoder's own error (``TypeError``, ...) for a type JSON cannot hold."""
    try:
        text = _ENCODER.encode(value)
    except Exception:  # TypeError, ValueError, RecursionError, a default() that raised
        reason = jsonsafe.problem(value)
        if reason is not None:
            raise Refused(reason) from None
        raise
    if _suspicious(text):
        reason = jsonsafe.problem(value)
        if reason is not None:
            raise Refused(reason)
    return text


def problem(value: Any) -> str | None:
    """What :func:`jsonsafe.problem` answers, mostly at the encoder's speed."""
    if value is None:
        return None
    try:
        encode(value)
    except Refused as e:
        return str(e)
    except Exception:  # a type JSON has no form for: left to the caller, as problem() does
        return None
    return None


def _suspicious(text: str) -> bool:
    if text.count("[") + text.count("{") > jsonsafe.MAX_DEPTH and _too_deep(text):
        return True
    if "\\u0000" in text:
        return True
    if (
        len(text) > jsonsafe.MAX_INT_DIGITS
        and not 0 < sys.get_int_max_str_digits() <= jsonsafe.MAX_INT_DIGITS
        and _LONG_DIGITS.search(text) is not None
    ):  # under Python's own digit limit the encoder already refused such an int
        return True
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False


def _too_deep(text: str) -> bool:
    """Whether the encoder's ``text`` nests more than MAX_DEPTH containers, at the regex
    engine's speed: a wide value has many brackets but few levels.  Outside strings its
    brackets are exactly its containers; each pass takes away the innermost level."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(jsonsafe.MAX_DEPTH):
        brackets = _INNERMOST.sub("", brackets)
        if not brackets:
            return False
    return True

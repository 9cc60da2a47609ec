"""Rule conditions: compiled once at ``apply`` (errors name the path), evaluated per event.

A condition is ``{all: [...]}``, ``{any: [...]}``, or a leaf:

- ``{field: status, op: "=", value: unpaid}``: ``field`` is a dotted path into ``after``
  (into ``before`` when there is no ``after``: a delete), or starts with ``before.``/``after.``;
- ``{changed: status}``: the field differs between ``before`` and ``after``;
- ``{becomes: {status: cancelled}}``: each field has that value after and did not before.

Operators: ``= != < <= > >=`` (values of one kind; a number never equals a string),
``in``/``not_in`` (a list), ``contains`` (a list or string field), ``exists``/``isempty``
(true or false), ``range`` ([low, high], inclusive), ``regex`` (at most 200 characters;
each match is cut off after 50 ms and counts as no match).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import regex

from firehook.config.errors import ConfigError

__all__ = ["OPS", "Condition", "ConditionError", "compile_when"]

OPS = (
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not_in",
    "contains",
    "exists",
    "isempty",
    "range",
    "regex",
)
REGEX_MAX = 200
REGEX_TIMEOUT = 0.05
_MISSING = object()

Check = Callable[[Mapping[str, Any]], tuple[bool, str]]


class ConditionError(ConfigError):
    """A condition that cannot be compiled; ``field`` says where, the message why."""

    def __init__(self, message: str) -> None:
        field, _, reason = message.partition(": ")
        super().__init__(message)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Condition:
    """A compiled ``when``; ``check(data)`` answers (matched, reason)."""

    check: Check

    def __call__(self, data: Mapping[str, Any]) -> tuple[bool, str]:
        return self.check(data)


def compile_when(when: Mapping[str, Any] | None, where: str = "when") -> Condition:
    if when is None:
        return Condition(lambda _d: (True, "no condition"))
    return Condition(_compile(when, where))


def _compile(node: Any, where: str) -> Check:
    if not isinstance(node, Mapping):
        raise ConditionError(
            f"{where}: expected a mapping (all/any, or field/op/value), got {node!r}"
        )
    keys = set(node)
    if keys in ({"all"}, {"any"}):
        (kind,) = keys
        items = node[kind]
        if not isinstance(items, list) or not items:
            raise ConditionError(f"{where}.{kind}: expected a non-empty list of conditions")
        parts = [_compile(c, f"{where}.{kind}[{i}]") for i, c in enumerate(items)]
        return _all(parts) if kind == "all" else _any(parts)
    if keys == {"changed"}:
        return _changed(_path(node["changed"], f"{where}.changed"))
    if keys == {"becomes"}:
        return _becomes(node["becomes"], f"{where}.becomes")
    if "field" in keys:
        return _leaf(node, where)
    raise ConditionError(
        f"{where}: expected all, any, changed, becomes or field/op/value; got {sorted(keys)}"
    )


def _all(parts: list[Check]) -> Check:
    def check(data: Mapping[str, Any]) -> tuple[bool, str]:
        for part in parts:
            ok, why = part(data)
            if not ok:
                return False, why
        return True, "all conditions hold"

    return check


def _any(parts: list[Check]) -> Check:
    def check(data: Mapping[str, Any]) -> tuple[bool, str]:
        reasons = []
        for part in parts:
            ok, why = part(data)
            if ok:
                return True, why
            reasons.append(why)
        return False, "none of: " + "; ".join(reasons)

    return check


def _path(value: Any, where: str) -> tuple[str | None, list[str]]:
    if not isinstance(value, str) or not value or any(not p for p in value.split(".")):
        raise ConditionError(f"{where}: expected a field path such as status or address.city")
    parts = value.split(".")
    if parts[0] in ("before", "after") and len(parts) > 1:
        return parts[0], parts[1:]
    return None, parts


def _lookup(data: Mapping[str, Any], side: str | None, parts: list[str]) -> Any:
    if side is None:
        side = "after" if data.get("after") is not None else "before"
    node: Any = data.get(side)
    for p in parts:
        if isinstance(node, Mapping) and p in node:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            return _MISSING
    return node


def _changed(path: tuple[str | None, list[str]]) -> Check:
    _, parts = path
    name = ".".join(parts)

    def check(data: Mapping[str, Any]) -> tuple[bool, str]:
        before = _lookup(data, "before", parts)
        after = _lookup(data, "after", parts)
        if before != after:
            return True, f"{name} changed"
        return False, f"{name} did not change"

    return check


def _becomes(value: Any, where: str) -> Check:
    if not isinstance(value, Mapping) or not value:
        raise ConditionError(
            f"{where}: expected a mapping of field to value, e.g. {{status: cancelled}}"
        )
    targets = [(_path(k, f"{where}.{k}")[1], k, v) for k, v in value.items()]

    def check(data: Mapping[str, Any]) -> tuple[bool, str]:
        for parts, name, wanted in targets:
            if not _same(_lookup(data, "after", parts), wanted):
                return False, f"{name} is not {wanted!r} after the change"
            if _same(_lookup(data, "before", parts), wanted):
                return False, f"{name} was {wanted!r} already"
        return True, "became " + ", ".join(f"{n}={w!r}" for _, n, w in targets)

    return check


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps kinds apart: 1 == 1.0, but 1 != "1" and True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (
        isinstance(a, str) and isinstance(b, str)
    )


def _leaf(node: Mapping[str, Any], where: str) -> Check:
    extra = set(node) - {"field", "op", "value"}
    if extra:
        raise ConditionError(f"{where}: unknown key(s) {sorted(extra)}; expected field, op, value")
    side, parts = _path(node["field"], f"{where}.field")
    name = node["field"]
    op = node.get("op", "=")
    if op not in OPS:
        raise ConditionError(
            f"{where}.op: unknown operator {op!r}; expected one of {', '.join(OPS)}"
        )
    if "value" not in node and op not in ("exists", "isempty"):
        raise ConditionError(f"{where}.value: operator {op!r} needs a value")
    value = node.get("value", True)
    test = _operator(op, value, f"{where}.value")

    def check(data: Mapping[str, Any]) -> tuple[bool, str]:
        actual = _lookup(data, side, parts)
        if test(actual):
            return True, f"{name} {op} {value!r}"
        shown = "missing" if actual is _MISSING else repr(actual)
        return False, f"{name} is {shown}, wanted {op} {value!r}"

    return check


def _operator(op: str, value: Any, where: str) -> Callable[[Any], bool]:  # noqa: C901
    if op in ("=", "!="):
        negate = op == "!="
        return lambda a: (a is not _MISSING and _same(a, value)) != negate
    if op in ("<", "<=", ">", ">="):
        if not _comparable(value, value) or value is None:
            raise ConditionError(f"{where}: {op!r} compares numbers or strings, got {value!r}")
        cmp: Callable[[Any, Any], bool] = {
            "<": operator.lt,
            "<=": operator.le,
            ">": operator.gt,
            ">=": operator.ge,
        }[op]
        return lambda a: _comparable(a, value) and bool(cmp(a, value))
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise ConditionError(f"{where}: {op!r} needs a list, got {value!r}")
        negate = op == "not_in"
        return lambda a: (a is not _MISSING and any(_same(a, v) for v in value)) != negate
    if op == "contains":
        return lambda a: (
            (isinstance(a, str) and isinstance(value, str) and value in a)
            or (isinstance(a, list) and any(_same(x, value) for x in a))
        )
    if op in ("exists", "isempty"):
        if not isinstance(value, bool):
            raise ConditionError(f"{where}: {op!r} takes true or false, got {value!r}")
        if op == "exists":
            return lambda a: (a is not _MISSING and a is not None) == value
        return lambda a: (a is _MISSING or a is None or a in ("", [], {})) == value
    if op == "range":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(_comparable(v, value[0]) for v in value)
        ):
            raise ConditionError(f"{where}: 'range' needs [low, high] of numbers or strings")
        low, high = value
        return lambda a: _comparable(a, low) and low <= a <= high
    # regex
    if not isinstance(value, str) or len(value) > REGEX_MAX:
        raise ConditionError(f"{where}: 'regex' needs a pattern of at most {REGEX_MAX} characters")
    try:
        pattern = regex.compile(value)
    except regex.error as e:
        raise ConditionError(f"{where}: invalid regex {value!r}: {e}") from None

    def match(a: Any) -> bool:
        if not isinstance(a, str):
            return False
        try:
            return pattern.search(a[:10_000], timeout=REGEX_TIMEOUT) is not None
        except TimeoutError:
            return False

    return match

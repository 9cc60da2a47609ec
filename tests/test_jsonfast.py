"""invoker/_jsonfast.py gives jsonsafe.problem()'s verdict, reason included, on every value."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator

import pytest

from firehook.invoker import _jsonfast, jsonsafe


def nested(depth: int, make: type = list) -> object:
    value: object = make()
    for _ in range(depth):
        value = [value] if make is list else {"k": value}
    return value


def circular() -> object:
    value: list[object] = []
    value.append(value)
    return value


VALUES = {
    "scalars": [None, True, 1, 1.5, "text", "é ☃"],
    "small-order": {"order": {"id": 42, "items": [{"sku": "a", "n": 1}] * 5}},
    "depth-63": nested(63),  # 64 containers: the limit
    "depth-64": nested(64),
    "depth-64-dicts": nested(64, dict),
    "depth-900": nested(900),
    "depth-5000": nested(5000),
    "circular": circular(),
    "wide-shallow": [[] for _ in range(500)],  # many brackets, depth 2
    "brackets-in-strings": ["[" * 200 + "{" * 200],
    "deep-with-closing-brackets-in-strings": nested(70, dict) | {"s": '"]}' * 100},
    "wide-with-escaped-quotes": [{"q": 'a\\"[{'} for _ in range(100)],
    "nan": [1, float("nan")],
    "infinity": {"x": float("inf")},
    "nan-key": {float("nan"): 1},
    "nul": ["a\x00b"],
    "nul-key": {"a\x00": 1},
    "escaped-nul-text": ["\\u0000"],  # six characters, not a NUL
    "surrogate": ["\ud800"],
    "surrogate-key": {"\udcff": 1},
    "digits-4300": 10**4299,
    "digits-5000": [10**4999],
    "digits-in-a-string": "1" * 5000,
    "tuple": (1, (2, 3)),
    "set": {1, 2},  # no JSON form: left to the encoder
    "datetime": [dt.datetime(2026, 1, 1)],
    "set-and-nan": [{1}, float("nan")],
}


@pytest.mark.parametrize("name", VALUES)
def test_fast_problem_agrees_with_jsonsafe(name: str) -> None:
    value = VALUES[name]
    assert _jsonfast.problem(value) == jsonsafe.problem(value)


@pytest.fixture
def unlimited_int_digits() -> Iterator[None]:
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # as a function may do: then json.dumps writes any int
    yield
    sys.set_int_max_str_digits(before)


@pytest.mark.usefixtures("unlimited_int_digits")
def test_a_long_integer_is_refused_when_the_encoder_would_write_it() -> None:
    value = {"n": 10**4999}
    assert _jsonfast.problem(value) == jsonsafe.problem(value) is not None


def test_encode_writes_json_and_says_why_it_refuses() -> None:
    assert json.loads(_jsonfast.encode({"a": ["é", 1]})) == {"a": ["é", 1]}
    with pytest.raises(_jsonfast.Refused, match="nested deeper than 64"):
        _jsonfast.encode(nested(100))
    with pytest.raises(TypeError, match="set"):
        _jsonfast.encode({1})

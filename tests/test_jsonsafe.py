"""The JSON limits every input path shares (invoker/jsonsafe.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firehook.invoker.jsonsafe import MAX_DEPTH, MAX_INT_DIGITS, loads, problem


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (nested(MAX_DEPTH + 1), "nested deeper than"),
        (nested(100_000), "nested deeper than"),
        ('{"a": ' * 5000 + "1" + "}" * 5000, "nested deeper than"),
        ("9" * 5000, f"more than {MAX_INT_DIGITS} digits"),
        ('{"n": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ('"a\\u0000b"', "NUL character"),
        ('{"k\\u0000": 1}', "NUL character"),
        ('"\\ud800"', "lone surrogate"),
        ("{", "not JSON"),
        (b"\xff\xfe\xfa", "not"),
    ],
)
def test_refused_with_a_clear_reason(text: str | bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        loads(text)


def test_the_limits_themselves_are_accepted() -> None:
    assert loads(nested(MAX_DEPTH)) is not None
    assert loads("9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)
    assert loads('"caf\\u00e9 \\ud83d\\ude00"') == "café 😀"


def test_problem_walks_values_of_any_depth_without_recursing() -> None:
    value: list[object] = []
    for _ in range(200_000):
        value = [value]
    assert problem(value) == f"JSON nested deeper than {MAX_DEPTH} levels"
    assert problem({"x": [1.5, float("nan")]}) is not None
    assert problem(10**5000) == f"a number has more than {MAX_INT_DIGITS} digits"
    assert problem(("a", "\udcff")) == "a string holds a lone surrogate (not valid Unicode text)"
    assert problem({"ok": [1, "two", None, True, {"three": 3.0}]}) is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
            children,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@given(json_values)
def test_every_storable_value_round_trips(value: object) -> None:
    assert problem(value) is None
    assert loads(json.dumps(value)) == value


def test_storable_text_escapes_nul_and_replaces_lone_surrogates() -> None:
    from firehook.invoker.jsonsafe import storable_text

    assert storable_text("a\x00b\udcffc é 😀") == "a\\u0000b\ufffdc é 😀"
    assert storable_text("plain") == "plain"
    assert problem(storable_text("\x00\ud800" * 3)) is None

"""Rule conditions: every operator in a table, paths, changed/becomes, and compile errors."""

from __future__ import annotations

from typing import Any

import pytest

from firehook.triggers.conditions import ConditionError, compile_when

ROW = {
    "status": "unpaid",
    "amount": 120,
    "price": 9.5,
    "tags": ["vip", "new"],
    "note": "",
    "address": {"city": "Shanghai", "zip": "200000"},
    "coupon": None,
    "email": "ann@example.com",
}
DATA = {"table": "orders", "event": "on_update", "before": {**ROW, "status": "new"}, "after": ROW}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("status", "=", "unpaid", True),
        ("status", "=", "paid", False),
        ("amount", "=", 120.0, True),
        ("amount", "=", "120", False),  # a number never equals a string
        ("status", "!=", "paid", True),
        ("status", "!=", "unpaid", False),
        ("missing", "!=", "x", True),
        ("amount", "<", 200, True),
        ("amount", "<", 120, False),
        ("amount", "<=", 120, True),
        ("amount", ">", 100, True),
        ("amount", ">", "100", False),  # mixed kinds never compare
        ("price", ">=", 9.5, True),
        ("status", ">", "a", True),  # strings compare as strings
        ("status", "in", ["unpaid", "new"], True),
        ("status", "in", ["paid"], False),
        ("missing", "in", ["x"], False),
        ("status", "not_in", ["paid", "cancelled"], True),
        ("status", "not_in", ["unpaid"], False),
        ("tags", "contains", "vip", True),
        ("tags", "contains", "gold", False),
        ("email", "contains", "@example.com", True),
        ("amount", "contains", 1, False),
        ("coupon", "exists", False, True),
        ("status", "exists", True, True),
        ("missing", "exists", True, False),
        ("note", "isempty", True, True),
        ("status", "isempty", True, False),
        ("missing", "isempty", True, True),
        ("tags", "isempty", False, True),
        ("amount", "range", [100, 200], True),
        ("amount", "range", [121, 200], False),
        ("status", "range", [1, 2], False),
        ("email", "regex", r"^[a-z]+@example\.com$", True),
        ("email", "regex", r"^bob@", False),
        ("amount", "regex", "1", False),  # regex needs a string field
        ("address.city", "=", "Shanghai", True),
        ("address.country", "exists", True, False),
        ("before.status", "=", "new", True),
        ("after.status", "=", "unpaid", True),
    ],
)
def test_operator(field: str, op: str, value: Any, expected: bool) -> None:
    matched, reason = compile_when({"all": [{"field": field, "op": op, "value": value}]})(DATA)
    assert matched is expected, reason


def test_all_any_and_reasons() -> None:
    cond = compile_when(
        {
            "all": [
                {"field": "amount", "op": ">", "value": 100},
                {"any": [{"field": "status", "op": "=", "value": "paid"}, {"changed": "status"}]},
            ]
        }
    )
    assert cond(DATA)[0]
    ok, reason = compile_when({"all": [{"field": "status", "op": "=", "value": "paid"}]})(DATA)
    assert not ok and reason == "status is 'unpaid', wanted = 'paid'"


def test_changed_and_becomes() -> None:
    assert compile_when({"changed": "status"})(DATA)[0]
    assert not compile_when({"changed": "amount"})(DATA)[0]
    assert compile_when({"becomes": {"status": "unpaid"}})(DATA)[0]
    already = {**DATA, "before": ROW}
    ok, reason = compile_when({"becomes": {"status": "unpaid"}})(already)
    assert not ok and "already" in reason


@pytest.mark.parametrize(
    ("before", "after", "becomes", "changed"),
    [
        ("paid", "shipped", False, True),  # another change of the field: not "becomes"
        ("paid", "cancelled", True, True),
        ("cancelled", "cancelled", False, False),
        ("cancelled", "paid", False, True),
        ("unpaid", "unpaid", False, False),
    ],
)
def test_becomes_holds_only_for_the_transition_to_its_value(
    before: str, after: str, becomes: bool, changed: bool
) -> None:
    data = {**DATA, "before": {**ROW, "status": before}, "after": {**ROW, "status": after}}
    assert compile_when({"becomes": {"status": "cancelled"}})(data)[0] is becomes
    assert compile_when({"changed": "status"})(data)[0] is changed


def test_becomes_with_two_fields_needs_both_to_become_their_values() -> None:
    cond = compile_when({"becomes": {"status": "cancelled", "coupon": "refund"}})
    both = {**DATA, "after": {**ROW, "status": "cancelled", "coupon": "refund"}}
    one = {**DATA, "after": {**ROW, "status": "cancelled"}}
    assert cond(both)[0] is True
    assert cond(one)[0] is False


def test_a_delete_reads_the_row_before() -> None:
    deleted = {"table": "orders", "event": "on_delete", "before": ROW, "after": None}
    assert compile_when({"field": "status", "op": "=", "value": "unpaid"})(deleted)[0]


def test_no_condition_always_matches() -> None:
    assert compile_when(None)(DATA) == (True, "no condition")


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"all": []}, "when.all: expected a non-empty list"),
        ({"all": [{"field": "a", "op": "~", "value": 1}]}, "when.all[0].op: unknown operator '~'"),
        ({"field": "a", "op": "in", "value": 1}, "when.value: 'in' needs a list"),
        ({"field": "a", "op": "range", "value": [1]}, "'range' needs [low, high]"),
        ({"field": "a", "op": "exists", "value": "yes"}, "'exists' takes true or false"),
        ({"field": "a", "op": "regex", "value": "("}, "invalid regex"),
        ({"field": "a", "op": "regex", "value": "a" * 201}, "at most 200 characters"),
        ({"field": "a", "op": "<", "value": None}, "compares numbers or strings"),
        ({"field": "a", "op": "="}, "needs a value"),
        ({"field": "a..b", "op": "=", "value": 1}, "expected a field path"),
        ({"field": "a", "op": "=", "value": 1, "valu": 2}, "unknown key(s) ['valu']"),
        ({"becomes": []}, "expected a mapping of field to value"),
        ({"sometimes": 1}, "expected all, any, changed, becomes or field/op/value"),
        ("status = paid", "expected a mapping"),
    ],
)
def test_mistakes_are_caught_when_compiled_with_their_path(when: Any, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_when(when)
    assert message in str(info.value)


def test_a_slow_regex_is_cut_off_and_counts_as_no_match() -> None:
    cond = compile_when({"field": "s", "op": "regex", "value": r"^(a|aa)+$"})
    data = {"after": {"s": "a" * 5000 + "b"}}
    assert cond(data)[0] is False

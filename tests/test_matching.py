"""Which rules an event fires: ``changed`` and ``becomes`` on updates, and hook rules.

Each case asserts the match itself (which rules planned a run), not only a reason text: a
``becomes`` that behaved like ``changed`` fired on paid -> shipped, and nothing noticed.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from firehook.config.loader import parse_config
from firehook.config.rules import Rules
from firehook.triggers.events import CloudEvent, change_event, hook_event
from firehook.triggers.matching import Matcher

RULES = """
version: 1
triggers:
  - name: becomes-cancelled
    on: {table: orders, events: [on_create, on_update]}
    when: {becomes: {status: cancelled}}
    invoke: refund
  - name: status-changed
    on: {table: orders, events: [on_create, on_update]}
    when: {changed: status}
    invoke: audit
  - name: city-becomes-paris
    on: {table: orders, events: [on_update]}
    when: {becomes: {address.city: Paris}}
    invoke: audit
  - name: paid-hook
    on: {hook: payment-ok}
    invoke: refund
"""
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    cfg = parse_config(textwrap.dedent(RULES)).config
    rules = Rules(version=1, triggers=list(cfg.triggers))
    return Matcher(lambda: rules)


def fired(matcher: Matcher, event: CloudEvent) -> set[str]:
    planned, _ = matcher.match(event, NOW)
    return {p.request.source for p in planned if p.request.source is not None}


def update(before: dict[str, Any], after: dict[str, Any]) -> CloudEvent:
    return change_event("orders", "on_update", before=before, after=after)


@pytest.mark.parametrize(
    ("before", "after", "becomes", "changed"),
    [
        ({"status": "paid"}, {"status": "shipped"}, False, True),  # another change of the field
        ({"status": "paid"}, {"status": "cancelled"}, True, True),  # the transition to the target
        ({"status": "cancelled"}, {"status": "cancelled"}, False, False),  # already the target
        ({"status": "cancelled", "n": 1}, {"status": "cancelled", "n": 2}, False, False),
        ({"status": "cancelled"}, {"status": "refunded"}, False, True),  # away from the target
        ({"status": "paid", "n": 1}, {"status": "paid", "n": 2}, False, False),  # another field
        ({}, {"status": "cancelled"}, True, True),  # the field appears with the target value
        ({"status": "cancelled"}, {}, False, True),  # the field disappears
        ({"status": 1}, {"status": 1.0}, False, False),  # 1 and 1.0 are one number
        ({"status": "1"}, {"status": 1}, False, True),  # a number never equals a string
    ],
)
def test_becomes_fires_only_on_the_transition_to_its_value_and_changed_on_any_change(
    matcher: Matcher, before: dict[str, Any], after: dict[str, Any], becomes: bool, changed: bool
) -> None:
    got = fired(matcher, update(before, after))
    assert ("becomes-cancelled" in got) is becomes, got
    assert ("status-changed" in got) is changed, got


def test_becomes_on_a_created_record_fires_when_it_is_created_with_the_value(
    matcher: Matcher,
) -> None:
    created = change_event("orders", "on_create", after={"status": "cancelled"})
    assert fired(matcher, created) == {"becomes-cancelled", "status-changed"}
    created = change_event("orders", "on_create", after={"status": "paid"})
    assert fired(matcher, created) == {"status-changed"}


@pytest.mark.parametrize(
    ("before", "after", "fires"),
    [
        ({"address": {"city": "Lyon"}}, {"address": {"city": "Paris"}}, True),
        ({"address": {"city": "Lyon"}}, {"address": {"city": "Nice"}}, False),
        ({"address": {"city": "Paris"}}, {"address": {"city": "Paris", "zip": "75001"}}, False),
        ({"address": None}, {"address": {"city": "Paris"}}, True),
    ],
)
def test_becomes_on_a_nested_field(
    matcher: Matcher, before: dict[str, Any], after: dict[str, Any], fires: bool
) -> None:
    assert ("city-becomes-paris" in fired(matcher, update(before, after))) is fires


def test_a_hook_rule_fires_only_on_events_from_the_hook_route(matcher: Matcher) -> None:
    """The hook route publishes type firehook.hook from source "webhook"; the same type and
    subject from any other source (a source key's holder, say) must not fire the rule."""
    assert fired(matcher, hook_event("payment-ok", {"amount": 5})) == {"paid-hook"}
    forged = CloudEvent(
        id="f1", source="shop", type="firehook.hook", subject="payment-ok", data={"amount": 5}
    )
    planned, skipped = matcher.match(forged, NOW)
    assert planned == []
    assert [s.trigger for s in skipped] == [None]
    assert "source 'shop'" in skipped[0].reason
    assert fired(matcher, hook_event("payment-ok", {"amount": 5}, source="shop")) == set()

"""Which rules an event matches, and the runs it asks for (keyed so redelivery adds nothing)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firehook.config.model import OnHook, TriggerSpec
from firehook.config.rules import Rules
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.event import EventType
from firehook.triggers.conditions import Condition, compile_when
from firehook.triggers.events import HOOK_SOURCE, HOOK_TYPE, CloudEvent

__all__ = ["Matcher", "Planned", "Skipped"]


@dataclass(frozen=True, slots=True)
class Planned:
    """One run to enqueue for one (rule, event)."""

    request: InvokeRequest
    due_at: datetime | None
    key: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A rule that listens to this event but did not fire, or an event no rule listens to."""

    trigger: str | None
    reason: str


def run_key(trigger: TriggerSpec, event: CloudEvent, when: datetime) -> str:
    """The idempotency key: per event, per cool-down window, or once ever."""
    freq = trigger.frequency
    if freq.mode == "once":
        return f"trigger:{trigger.name}:once"
    if freq.mode == "cooldown" and freq.cooldown is not None:
        window = math.floor(when.timestamp() / freq.cooldown.total_seconds())
        return f"trigger:{trigger.name}:window:{window}"
    return f"trigger:{trigger.name}:{event.id}"


class Matcher:
    """Matches events against the current rules; conditions compiled once per rules version."""

    def __init__(self, rules: Callable[[], Rules]) -> None:
        self._rules = rules
        self._compiled: tuple[int, dict[str, Condition]] = (-1, {})

    def _conditions(self, rules: Rules) -> dict[str, Condition]:
        if self._compiled[0] != rules.version:
            self._compiled = (rules.version, {t.name: compile_when(t.when) for t in rules.triggers})
        return self._compiled[1]

    def match(self, event: CloudEvent, now: datetime) -> tuple[list[Planned], list[Skipped]]:
        rules = self._rules()
        conditions = self._conditions(rules)
        change = event.change
        if change is not None:
            data: dict[str, Any] = change.model_dump(mode="json")
            listening = [
                t
                for t in rules.triggers
                if not isinstance(t.on, OnHook)
                and t.on.table == change.table
                and change.event in t.on.events
            ]
            view = data
        elif event.type != HOOK_TYPE or event.source != HOOK_SOURCE:
            # only the hook route (which checks the hook's secret) produces hook events
            return [], [
                Skipped(
                    None,
                    f"{event.type} event from source {event.source!r}: hook rules take only "
                    f"events from the hook route (source {HOOK_SOURCE!r})",
                )
            ]
        else:
            hook = event.subject
            listening = [
                t for t in rules.triggers if isinstance(t.on, OnHook) and t.on.hook == hook
            ]
            data = event.data if isinstance(event.data, dict) else {"body": event.data}
            view = {"before": None, "after": data}
        if not listening:
            return [], [Skipped(None, f"no rule listens to {event.routing_key}")]
        planned: list[Planned] = []
        skipped: list[Skipped] = []
        when = event.time or now
        for trig in listening:
            if not trig.enabled:
                skipped.append(Skipped(trig.name, "the rule is disabled"))
                continue
            ok, reason = conditions[trig.name](view)
            if not ok:
                skipped.append(Skipped(trig.name, f"filtered out: {reason}"))
                continue
            request = InvokeRequest(
                trig.invoke,
                {**data, **trig.params},
                event_type=EventType.TRIGGER.value,
                source=trig.name,
                note=f"event {event.id} from {event.source}",
            )
            due = now + trig.delay if trig.delay else None
            planned.append(Planned(request, due, run_key(trig, event, when)))
        return planned, skipped

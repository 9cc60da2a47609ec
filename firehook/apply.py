"""``firehook apply``: validate a config file against every part, then write it in one go.

Structure and types are checked by the config loader; here the checks that need the other
parts: each rule's function exists in the functions folder, each condition compiles, each
cron expression and time zone parses.  Both run on the whole file, so one report lists
every mistake (a typo in one trigger does not hide a bad cron elsewhere).  Any problem:
nothing is applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firehook.config import Settings
from firehook.config.loader import ConfigFileError, Draft, Problem, load_draft
from firehook.config.rules import Diff, RulesStore
from firehook.invoker.registry import Registry
from firehook.scheduler.cron import CronError, parse_cron
from firehook.triggers.conditions import ConditionError, compile_when

__all__ = ["apply_file", "check_config"]


def _items(data: dict[str, Any], section: str) -> list[tuple[str, dict[str, Any]]]:
    """``("triggers[0]", {...})`` for each mapping in a section that is a list."""
    items = data.get(section)
    if not isinstance(items, list):
        return []
    return [(f"{section}[{i}]", it) for i, it in enumerate(items) if isinstance(it, dict)]


def _part_problems(draft: Draft, registry: Registry, settings: Settings) -> list[Problem]:
    """What the other parts find, on every rule whose fields have the right types."""
    problems: list[Problem] = []
    known = set(registry.names())
    triggers, schedules = _items(draft.data, "triggers"), _items(draft.data, "schedules")
    for where, item in triggers + schedules:
        name = item.get("invoke")
        if isinstance(name, str) and name not in known:
            message = f"no function {name!r} in {registry.folder}/"
            problems.append(draft.problem(f"{where}.invoke", message))
    for where, item in triggers:
        when = item.get("when")
        if isinstance(when, dict):
            try:
                compile_when(when, f"{where}.when")
            except ConditionError as e:
                problems.append(draft.problem(e.field, e.reason))
    for where, item in schedules:
        cron, tz = item.get("cron"), item.get("timezone")
        if not isinstance(cron, str) or not isinstance(tz, str | None):
            continue
        try:
            parse_cron(cron, tz or settings.timezone)
        except CronError as e:
            field = f"{where}.{'timezone' if 'time zone' in str(e) else 'cron'}"
            problems.append(draft.problem(field, str(e)))
    return problems


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def check_config(draft: Draft, registry: Registry, settings: Settings) -> None:
    """Raise :class:`ConfigFileError` listing every problem of the file, in file order."""
    problems = list(draft.problems)
    problems.extend(
        found
        for found in _part_problems(draft, registry, settings)
        if not any(_overlaps(found.field, p.field) for p in draft.problems if p.field)
    )
    if problems:
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigFileError(problems)


def apply_file(
    path: Path,
    store: RulesStore,
    registry: Registry,
    settings: Settings,
    *,
    prune: bool = False,
    dry_run: bool = False,
) -> tuple[Diff, int]:
    """Validate ``path`` and write it (unless ``dry_run``); the diff and the rules version."""
    draft = load_draft(path)
    check_config(draft, registry, settings)
    config = draft.loaded().config
    if dry_run:
        return store.plan(config, prune), store.version()
    return store.apply(config, str(path), prune)

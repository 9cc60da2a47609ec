"""``firehook apply``: validate a config file against every part, then write it in one go.

Structure and types are checked by the config loader; here the checks that need the other
parts: each rule's function exists in the functions folder, each condition compiles, each
cron expression and time zone parses.  Any problem: nothing is applied.
"""

from __future__ import annotations

from pathlib import Path

from firehook.config import Settings
from firehook.config.loader import ConfigFileError, LoadedConfig, Problem, load_config
from firehook.config.rules import Diff, RulesStore
from firehook.invoker.registry import Registry
from firehook.scheduler.cron import CronError, parse_cron
from firehook.triggers.conditions import ConditionError, compile_when

__all__ = ["apply_file", "check_config"]


def check_config(loaded: LoadedConfig, registry: Registry, settings: Settings) -> None:
    """Raise :class:`ConfigFileError` listing every problem the parts find."""
    cfg = loaded.config
    problems: list[Problem] = []
    known = set(registry.names())
    targets = [(f"triggers[{i}]", t.invoke) for i, t in enumerate(cfg.triggers)]
    targets += [(f"schedules[{i}]", s.invoke) for i, s in enumerate(cfg.schedules)]
    for where, name in targets:
        if name not in known:
            message = f"no function {name!r} in {registry.folder}/"
            problems.append(loaded.problem(f"{where}.invoke", message))
    for i, trig in enumerate(cfg.triggers):
        try:
            compile_when(trig.when, f"triggers[{i}].when")
        except ConditionError as e:
            problems.append(loaded.problem(e.field, e.reason))
    for i, sched in enumerate(cfg.schedules):
        try:
            parse_cron(sched.cron, sched.timezone or settings.timezone)
        except CronError as e:
            field = f"schedules[{i}].{'timezone' if 'time zone' in str(e) else 'cron'}"
            problems.append(loaded.problem(field, str(e)))
    if problems:
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
    loaded = load_config(path)
    check_config(loaded, registry, settings)
    if dry_run:
        return store.plan(loaded.config, prune), store.version()
    return store.apply(loaded.config, str(path), prune)

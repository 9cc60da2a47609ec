"""The rules store: functions' options, triggers and schedules applied from config files.

Every apply that changes something bumps the rules version (one row per version, with what
changed); each rule records the version that last changed it.  Running roles read the
rules through :class:`RulesView`, which reloads when the version moves (checked every few
seconds), so an apply reaches them without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, Engine, Table, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

from firehook.config.db import UTCDateTime, utcnow, write_tx
from firehook.config.errors import DatabaseError
from firehook.config.functions import FunctionOptions
from firehook.config.model import ConfigFile, ScheduleSpec, TriggerSpec

__all__ = ["Diff", "Rules", "RulesStore", "RulesView"]

log = logging.getLogger(__name__)

KINDS = ("function", "trigger", "schedule")


class Rule(SQLModel, table=True):
    __tablename__ = "rule"

    kind: str = Field(primary_key=True, max_length=16)
    name: str = Field(primary_key=True, max_length=100)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    version: int
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RuleVersion(SQLModel, table=True):
    __tablename__ = "rule_version"

    version: int = Field(primary_key=True)
    applied_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    source: str = Field(max_length=500)
    changes: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


rule_t: Table = Rule.__table__  # type: ignore[attr-defined]
version_t: Table = RuleVersion.__table__  # type: ignore[attr-defined]
_MAX_VERSION = select(func.coalesce(func.max(version_t.c.version), 0))


@dataclass(frozen=True)
class Diff:
    added: list[tuple[str, str]] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # in the store, not in the file
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def lines(self) -> list[str]:
        out = [f"+ {k} {n}" for k, n in self.added]
        out += [f"~ {k} {n}" for k, n in self.changed]
        out += [f"- {k} {n}" for k, n in self.removed]
        out += [f"  {k} {n} (not in the file; kept, use --prune to remove)" for k, n in self.kept]
        return out

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged"
        )


@dataclass(frozen=True)
class Rules:
    """One version of every rule, parsed."""

    version: int = 0
    functions: dict[str, FunctionOptions] = field(default_factory=dict)
    triggers: list[TriggerSpec] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)


def _specs(cfg: ConfigFile) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name, opts in cfg.functions.items():
        out[("function", name)] = opts.model_dump(mode="json", exclude_none=True)
    for trig in cfg.triggers:
        out[("trigger", trig.name)] = trig.model_dump(mode="json", by_alias=True)
    for sched in cfg.schedules:
        out[("schedule", sched.name)] = sched.model_dump(mode="json")
    return out


class RulesStore:
    """Rules in the database, applied and read in whole versions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(_MAX_VERSION).scalar_one())

    def plan(self, cfg: ConfigFile, prune: bool = False) -> Diff:
        with self.engine.connect() as conn:
            rows = conn.execute(select(rule_t.c.kind, rule_t.c.name, rule_t.c.spec)).all()
        current = {(k, n): spec for k, n, spec in rows}
        return self._diff(current, _specs(cfg), prune)

    @staticmethod
    def _diff(
        current: dict[tuple[str, str], dict[str, Any]],
        wanted: dict[tuple[str, str], dict[str, Any]],
        prune: bool,
    ) -> Diff:
        added = sorted(k for k in wanted if k not in current)
        changed = sorted(k for k in wanted if k in current and current[k] != wanted[k])
        missing = sorted(k for k in current if k not in wanted)
        unchanged = sum(1 for k in wanted if k in current and current[k] == wanted[k])
        return Diff(added, changed, missing if prune else [], [] if prune else missing, unchanged)

    def apply(self, cfg: ConfigFile, source: str, prune: bool = False) -> tuple[Diff, int]:
        """Write the file's rules in one transaction; returns the diff and the new version."""
        wanted = _specs(cfg)
        try:
            with write_tx(self.engine) as conn:
                rows = conn.execute(select(rule_t.c.kind, rule_t.c.name, rule_t.c.spec)).all()
                diff = self._diff({(k, n): s for k, n, s in rows}, wanted, prune)
                version = int(conn.execute(_MAX_VERSION).scalar_one()) + 1
                if diff.empty:
                    return diff, version - 1
                now = utcnow()
                for kind, name in diff.removed + diff.changed:
                    conn.execute(delete(rule_t).where(rule_t.c.kind == kind, rule_t.c.name == name))
                new = diff.added + diff.changed
                if new:
                    conn.execute(
                        rule_t.insert(),
                        [
                            {
                                "kind": k,
                                "name": n,
                                "spec": wanted[(k, n)],
                                "version": version,
                                "updated_at": now,
                            }
                            for k, n in new
                        ],
                    )
                changes = {
                    "added": [list(x) for x in diff.added],
                    "changed": [list(x) for x in diff.changed],
                    "removed": [list(x) for x in diff.removed],
                }
                conn.execute(
                    version_t.insert(),
                    {
                        "version": version,
                        "applied_at": now,
                        "source": source[:500],
                        "changes": changes,
                    },
                )
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not apply the rules: {e}") from e
        log.info("applied rules version %d from %s: %s", version, source, diff.summary())
        return diff, version

    def updated_at(self, kind: str) -> dict[str, datetime]:
        """When each rule of ``kind`` was last added or changed."""
        query = select(rule_t.c.name, rule_t.c.updated_at).where(rule_t.c.kind == kind)
        with self.engine.connect() as conn:
            return {row[0]: row[1] for row in conn.execute(query)}

    def load(self) -> Rules:
        with self.engine.connect() as conn:
            version = int(conn.execute(_MAX_VERSION).scalar_one())
            query = select(rule_t.c.kind, rule_t.c.name, rule_t.c.spec)
            rows = conn.execute(query.order_by(rule_t.c.kind, rule_t.c.name)).all()
        functions: dict[str, FunctionOptions] = {}
        triggers: list[TriggerSpec] = []
        schedules: list[ScheduleSpec] = []
        for kind, name, spec in rows:
            if kind == "function":
                functions[name] = FunctionOptions.model_validate(spec)
            elif kind == "trigger":
                triggers.append(TriggerSpec.model_validate(spec))
            elif kind == "schedule":
                schedules.append(ScheduleSpec.model_validate(spec))
        return Rules(version, functions, triggers, schedules)


class RulesView:
    """The current rules, reloaded when the stored version moves (checked every ``refresh``)."""

    def __init__(self, store: RulesStore, refresh: timedelta = timedelta(seconds=2)) -> None:
        self.store = store
        self.refresh = refresh
        self._rules = Rules()
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> Rules:
        now = time.monotonic()
        if now - self._checked < self.refresh.total_seconds():
            return self._rules
        with self._lock:
            if now - self._checked < self.refresh.total_seconds():
                return self._rules
            try:
                if self.store.version() != self._rules.version:
                    self._rules = self.store.load()
                    log.info("loaded rules version %d", self._rules.version)
            except (SQLAlchemyError, DatabaseError) as e:
                log.warning(
                    "could not refresh the rules (keeping version %d): %s", self._rules.version, e
                )
            self._checked = now
            return self._rules

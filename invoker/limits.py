"""Cluster-wide limits per function: ``max_concurrency`` and ``rate`` (runs started per second).

Runs of a limited function are claimed apart from the others, one function at a time, in a
transaction that first locks the function's row in ``function_limit`` (so every worker of the
cluster takes its turn), counts the function's executing runs, refills its token bucket
(``rate`` tokens a second, at most one second's worth banked), and claims no more than both
allow.  Runs held back stay ``waiting`` with the reason in their ``note``; this process does
not try the function again until a slot or a token is expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, DateTime, Float, String, Table, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from firehook.config.functions import FunctionOptions
from firehook.invoker.records import invocation_table as t

__all__ = ["Limiter", "function_limit"]

function_limit = Table(
    "function_limit",
    SQLModel.metadata,
    Column("function", String(255), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("refilled_at", DateTime(timezone=True), nullable=False),
)

CONCURRENCY_RECHECK = timedelta(milliseconds=200)  # a slot frees when a run finishes: look again
IDLE_RECHECK = timedelta(milliseconds=50)  # nothing was due: do not ask on every loop


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Limiter:
    """Claims runs of limited functions; ``claim_stmt(function, n)`` claims ``n`` of them."""

    def __init__(self, limits: Callable[[], Mapping[str, FunctionOptions]], pg: bool) -> None:
        self.limits = limits
        self.pg = pg
        self._not_before: dict[str, datetime] = {}

    def limited(self) -> dict[str, FunctionOptions]:
        return {name: o for name, o in self.limits().items() if o.limited}

    def not_before(self, function: str, due: datetime | None) -> datetime | None:
        """When this process will look at a run of ``function`` due at ``due``."""
        wait = self._not_before.get(function)
        return due if due is None or wait is None else max(due, wait)

    def claim(
        self,
        conn: Connection,
        function: str,
        options: FunctionOptions,
        wanted: int,
        now: datetime,
        claim: Callable[[Connection, int], list[Any]],
    ) -> list[Any]:
        """In ``conn``'s transaction: claim up to ``wanted`` runs of ``function`` within limits."""
        if self._not_before.get(function, now) > now:
            return []
        tokens = self._lock_bucket(conn, function, options, now)
        allowed, reason, retry = wanted, None, CONCURRENCY_RECHECK
        if options.max_concurrency is not None:
            running = conn.execute(
                select(func.count()).where(t.c.status == "executing", t.c.function == function)
            ).scalar_one()
            if running + allowed > options.max_concurrency:
                allowed = max(0, options.max_concurrency - running)
                reason = f"max_concurrency {options.max_concurrency} reached"
        if options.rate is not None and tokens < allowed:
            allowed = int(tokens)
            reason = f"rate {options.rate:g}/s reached"
            retry = timedelta(seconds=(1 - (tokens - allowed)) / options.rate)
        rows = claim(conn, allowed) if allowed > 0 else []
        if options.rate is not None:
            conn.execute(
                update(function_limit)
                .where(function_limit.c.function == function)
                .values(tokens=tokens - len(rows), refilled_at=now)
            )
        if (
            reason is not None
            and len(rows) == allowed
            and self._note_held_back(conn, function, now, reason, wanted - allowed)
        ):
            self._not_before[function] = now + retry
        elif not rows:
            self._not_before[function] = now + IDLE_RECHECK
        else:
            self._not_before.pop(function, None)
        return rows

    def _lock_bucket(
        self, conn: Connection, function: str, options: FunctionOptions, now: datetime
    ) -> float:
        """Lock the function's row (the turn of this worker); returns the tokens after refill."""
        cap = max(1.0, options.rate or 1.0)
        insert = (postgresql.insert if self.pg else sqlite.insert)(function_limit)
        conn.execute(
            insert.values(function=function, tokens=cap, refilled_at=now).on_conflict_do_nothing()
        )
        query = select(function_limit.c.tokens, function_limit.c.refilled_at).where(
            function_limit.c.function == function
        )
        tokens, refilled = conn.execute(query.with_for_update() if self.pg else query).one()
        if options.rate is None:
            return math.inf
        elapsed = max(0.0, (now - _aware(refilled)).total_seconds())
        return float(min(cap, tokens + elapsed * options.rate))

    def _note_held_back(
        self, conn: Connection, function: str, now: datetime, reason: str, count: int
    ) -> bool:
        """Put the wait on record on the next due runs held back; False if none are due."""
        next_due = (
            select(t.c.id)
            .where(t.c.status == "waiting", t.c.function == function, t.c.due_at <= now)
            .order_by(t.c.due_at, t.c.id)
            .limit(max(1, min(count, 1000)))
        )
        ids = list(conn.execute(next_due).scalars())
        if not ids:
            return False
        note = f"throttled: {reason} at {now.isoformat(timespec='seconds')}"
        conn.execute(
            update(t)
            .where(t.c.id.in_(ids), or_(t.c.note.is_(None), t.c.note.not_like("%throttled:%")))
            .values(note=func.coalesce(t.c.note + "; ", "") + note)
        )
        return True

"""Ticks on record: the key and params of a tick, skipped ticks, and each schedule's last tick.

A tick's run is an invocation keyed ``schedule:<name>:<scheduled time, UTC>``.  A tick that
does not run (misfire skipped or coalesced, ``max_instances`` reached, function missing) is
an invocation too, finished at once (``cancelled`` or ``execution_rejected``) with a ``note``
saying why, under the same key, so no scheduler can fire that tick later.

``schedule_state`` keeps the newest tick each schedule has dealt with.  It is where a
scheduler that starts after all were down resumes from; it survives retention deleting old
runs, and it only moves forward (several schedulers write it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

from firehook.config.db import UTCDateTime, is_sqlite, utcnow, write_tx
from firehook.config.errors import DatabaseError
from firehook.config.model import ScheduleSpec
from firehook.invoker.envelope import Status
from firehook.invoker.event import EventType
from firehook.invoker.records import invocation_table, new_job_id

__all__ = ["ScheduleState", "StateStore", "record_ticks", "tick_data", "tick_key", "tick_row"]


class ScheduleState(SQLModel, table=True):
    """The newest tick of a schedule that was run or put on record as not run."""

    __tablename__ = "schedule_state"

    name: str = Field(primary_key=True, max_length=100)
    last_tick: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


state_t: Table = ScheduleState.__table__  # type: ignore[attr-defined]


def tick_key(name: str, tick: datetime) -> str:
    """``schedule:nightly-lottery:2026-11-29T12:00:00Z`` (the tick in UTC, to the second)."""
    return f"schedule:{name}:{tick.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def tick_data(spec: ScheduleSpec, tick: datetime) -> dict[str, Any]:
    """The run's params (the function's ``event.data``): the schedule's params + the tick."""
    return {
        **spec.params,
        "subject": "timer",
        "name": spec.name,
        "scheduled_time": tick.isoformat(),  # in the schedule's zone, with its offset
    }


def tick_row(
    spec: ScheduleSpec,
    tick: datetime,
    now: datetime,
    status: Status,
    note: str,
    *,
    key: str | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An invocation row for a tick that is not run, finished at ``now``."""
    job_id = new_job_id()
    return {
        "id": job_id,
        "root_id": job_id,
        "function": spec.invoke,
        "event_type": EventType.TIMER.value,
        "source": spec.name,
        "idempotency_key": key or tick_key(spec.name, tick),
        "status": status.value,
        "attempt": 1,
        "max_attempts": 1,
        "timeout_ms": 0,
        "params": tick_data(spec, tick),
        "error": error,
        "created_at": now,
        "due_at": tick.astimezone(UTC),
        "finished_at": now,
        "duration_ms": 0.0,
        "note": note,
    }


def record_ticks(engine: Engine, rows: Sequence[dict[str, Any]]) -> int:
    """Insert not-run ticks; a key already there (another scheduler) is left as it is."""
    if not rows:
        return 0
    dialect = sqlite if is_sqlite(engine) else postgresql
    stmt = dialect.insert(invocation_table).on_conflict_do_nothing(
        index_elements=["function", "idempotency_key"]
    )
    try:
        with write_tx(engine) as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(stmt, list(rows[start : start + 1000]))
    except SQLAlchemyError as e:
        raise DatabaseError(f"could not record skipped ticks: {e}") from e
    return len(rows)


class StateStore:
    """Reads and moves forward each schedule's last tick."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, names: Iterable[str] | None = None) -> dict[str, datetime]:
        query = select(state_t.c.name, state_t.c.last_tick)
        if names is not None:
            query = query.where(state_t.c.name.in_(list(names)))
        try:
            with self.engine.connect() as conn:
                return {row[0]: row[1] for row in conn.execute(query)}
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not read the schedules' state: {e}") from e

    def advance(self, ticks: Mapping[str, datetime]) -> None:
        """Set each schedule's last tick to the later of the stored one and the given one."""
        if not ticks:
            return
        now = utcnow()
        rows = [
            {"name": n, "last_tick": t.astimezone(UTC), "updated_at": now}
            for n, t in sorted(ticks.items())
        ]
        stmt = _sqlite_upsert() if is_sqlite(self.engine) else _pg_upsert()
        try:
            with write_tx(self.engine) as conn:
                conn.execute(stmt, rows)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not save the schedules' state: {e}") from e


def _sqlite_upsert() -> Any:
    ins = sqlite.insert(state_t)
    later = func.max(state_t.c.last_tick, ins.excluded.last_tick)
    return ins.on_conflict_do_update(
        index_elements=["name"], set_={"last_tick": later, "updated_at": ins.excluded.updated_at}
    )


def _pg_upsert() -> Any:
    ins = postgresql.insert(state_t)
    later = func.greatest(state_t.c.last_tick, ins.excluded.last_tick)
    return ins.on_conflict_do_update(
        index_elements=["name"], set_={"last_tick": later, "updated_at": ins.excluded.updated_at}
    )

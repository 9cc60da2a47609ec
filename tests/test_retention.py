"""Retention on real SQLite and the real PostgreSQL: only finished runs past their age go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from firehook.config.settings import RetentionSettings, Settings
from firehook.invoker.records import invocation_table as inv
from firehook.invoker.records import new_job_id
from firehook.scheduler.retention import Retention

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def run(status: str, age_days: float, *, finished_days: float | None = None) -> dict[str, Any]:
    job_id = new_job_id()
    created = NOW - timedelta(days=age_days)
    finished = None
    if status not in ("waiting", "executing"):
        finished = NOW - timedelta(days=age_days if finished_days is None else finished_days)
    return {
        "id": job_id,
        "root_id": job_id,
        "function": "hello",
        "event_type": "timer",
        "status": status,
        "created_at": created,
        "due_at": created,
        "finished_at": finished,
        "note": f"{status} {age_days}",
    }


def notes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(inv.c.note)).scalars())


def test_finished_runs_past_the_age_of_their_status_are_deleted_in_batches(
    engine: Engine,
) -> None:
    rows = [
        run("fulfilled", 8),  # past 7 days: goes
        run("fulfilled", 6),
        run("cancelled", 8),  # goes
        run("execution_failed", 8),  # failures are kept 30 days
        run("execution_failed", 31),  # goes
        run("dead", 31),  # goes
        run("waiting", 100),  # never: not finished
        run("executing", 100),  # never
        run("fulfilled", 10, finished_days=1),  # created long ago, finished yesterday: kept
    ]
    rows += [run("fulfilled", 9 + i / 10) for i in range(5)]  # five more that go
    with engine.begin() as conn:
        conn.execute(inv.insert(), rows)
    retention = Retention(engine, RetentionSettings(batch_size=2), clock=lambda: NOW)
    deleted = retention.sweep()
    assert deleted == {"fulfilled": 6, "cancelled": 1, "execution_failed": 1, "dead": 1}
    assert notes(engine) == {
        "fulfilled 6",
        "execution_failed 8",
        "waiting 100",
        "executing 100",
        "fulfilled 10",
    }
    assert retention.deleted_total == 9
    assert retention.sweep() == {}  # nothing more
    assert retention.deleted == {"fulfilled": 6, "cancelled": 1, "execution_failed": 1, "dead": 1}


def test_an_age_of_zero_keeps_that_status_forever(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(inv.insert(), [run("fulfilled", 400), run("dead", 400)])
    settings = RetentionSettings(dead="0")
    assert Retention(engine, settings, clock=lambda: NOW).sweep() == {"fulfilled": 1}
    assert notes(engine) == {"dead 400"}


def test_retention_ages_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREHOOK_RETENTION__FULFILLED", "1d")
    monkeypatch.setenv("FIREHOOK_RETENTION__EXECUTION_FAILED", "90d")
    monkeypatch.setenv("FIREHOOK_RETENTION__BATCH_SIZE", "500")
    s = Settings().retention
    assert s.fulfilled == timedelta(days=1)
    assert s.execution_failed == timedelta(days=90)
    assert s.batch_size == 500
    assert s.ages()["cancelled"] == timedelta(days=7)

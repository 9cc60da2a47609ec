"""The queue's statements keep their plans on a freshly filled table (PostgreSQL).

Right after a burst PostgreSQL's statistics still describe the quiet time before it.  The claim must
still walk ``ix_invocation_ready`` in order and stop at its limit (not sort the backlog), and
the completion must find each run by its primary key (not scan the leased index).  Each test
captures the statement the queue really sends and asks PostgreSQL for its plan.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from firehook.config import RetryPolicy
from firehook.config.settings import InvokerSettings
from firehook.invoker.dispatch import Dispatcher, InvokeRequest
from firehook.invoker.pool import Pool
from firehook.invoker.queue import Completion, Queue
from firehook.invoker.registry import Registry
from firehook.invoker.store import InvocationStore

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True),  # PostgreSQL only
]


@pytest.fixture
def filled(engine: Engine, pool: Pool, functions_dir: Path) -> Queue:
    queue = Queue(engine)
    dispatcher = Dispatcher(
        Registry(functions_dir), pool, InvocationStore(engine), InvokerSettings(), queue=queue
    )
    # a quiet period the statistics remember: 500 runs, all finished, then ANALYZE ...
    dispatcher.enqueue_many([(InvokeRequest("hello", {"i": -1}), None, None)] * 500)
    claimed = queue.claim("w0", 500, timedelta(seconds=30))
    now = datetime.now(UTC)
    queue.complete(
        "w0",
        [Completion(c, 1, None, "", now, timedelta()) for c in claimed],
        lambda _: RetryPolicy(),
    )
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE invocation")
    # ... then a burst they know nothing of
    for start in range(0, 3000, 1000):
        dispatcher.enqueue_many(
            [(InvokeRequest("hello", {"i": i}), None, f"k{i}") for i in range(start, start + 1000)]
        )
    return queue


def captured(engine: Engine) -> list[tuple[str, Any]]:
    """Start recording the statements ``engine`` sends."""
    seen: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def grab(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if not statement.startswith("EXPLAIN"):
            seen.append((statement, params))

    return seen


def plan_of(engine: Engine, seen: list[tuple[str, Any]], marker: str) -> str:
    """The plan of the last statement containing ``marker``, in a transaction that first
    replays the statements the queue sent before it (the settings it made for the plan)."""
    at = max(i for i, (statement, _) in enumerate(seen) if marker in statement)
    with engine.connect() as conn, conn.begin() as tx:
        for statement, params in seen[:at]:
            if statement.lstrip().upper().startswith(("SELECT", "SET")):
                conn.exec_driver_sql(statement, params)
        statement, params = seen[at]
        rows = conn.exec_driver_sql("EXPLAIN " + statement, params).scalars().all()
        tx.rollback()
    return "\n".join(rows)


def test_the_claim_walks_the_ready_index_instead_of_sorting_the_backlog(
    filled: Queue, engine: Engine
) -> None:
    with engine.connect() as conn:
        oldest = conn.exec_driver_sql(
            "SELECT id FROM invocation WHERE status = 'waiting' ORDER BY due_at, id LIMIT 32"
        ).scalars()
        expected = list(oldest)
    seen = captured(engine)
    claimed = filled.claim("w1", 32, timedelta(seconds=30))
    assert [c.id for c in claimed] == expected  # the oldest due first
    shown = plan_of(engine, seen, "FOR NO KEY UPDATE SKIP LOCKED")
    assert "Index Scan using ix_invocation_ready" in shown, shown
    assert "Sort" not in shown, shown


def test_the_completion_finds_each_run_by_its_primary_key(filled: Queue, engine: Engine) -> None:
    claimed = filled.claim("w1", 32, timedelta(seconds=30))
    seen = captured(engine)
    now = datetime.now(UTC)
    done = [Completion(c, {"ok": True}, None, "", now, timedelta(milliseconds=1)) for c in claimed]
    assert filled.complete("w1", done, lambda _name: RetryPolicy()) == []
    shown = plan_of(engine, seen, "jsonb_to_recordset")
    assert "invocation_pkey" in shown, shown
    assert "ix_invocation_leased" not in shown, shown

"""Retry jitter: each retry waits its back-off spread by up to ``jitter`` either way.

firehook's only jitter is the retry policy's (schedules fire on their tick, with no jitter);
it is drawn from ``random`` for each retry, not seeded per run or key.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from firehook.config import RetryPolicy, WorkerSettings
from firehook.config.functions import FunctionOptions
from firehook.config.settings import InvokerSettings
from firehook.invoker.dispatch import Dispatcher, InvokeRequest
from firehook.invoker.pool import Pool
from firehook.invoker.queue import Queue
from firehook.invoker.records import invocation_table as inv
from firehook.invoker.registry import Registry
from firehook.invoker.store import InvocationStore
from firehook.invoker.worker import Worker


def test_the_delay_stays_within_its_jitter_and_spreads() -> None:
    policy = RetryPolicy(backoff="10s", max_backoff="10m", jitter=0.2)
    rng = random.Random(7)
    for retry, base in ((1, 10.0), (2, 20.0), (3, 40.0), (10, 600.0)):
        waits = [policy.delay(retry, rng).total_seconds() for _ in range(200)]
        assert all(base * 0.8 <= w <= base * 1.2 for w in waits), retry
        assert min(waits) < base < max(waits)  # both ways
        assert len(set(waits)) > 150  # spread, not a few values
    no_jitter = RetryPolicy(backoff="10s", jitter=0)
    assert {no_jitter.delay(2, rng) for _ in range(20)} == {timedelta(seconds=20)}


def test_retries_of_many_runs_are_due_spread_over_the_jitter_window(
    engine: Engine, pool: Pool, functions_dir: Path
) -> None:
    now = datetime.now(UTC)
    policy = RetryPolicy(attempts=2, backoff="10s", jitter=0.5)
    dispatcher = Dispatcher(
        Registry(functions_dir),
        pool,
        InvocationStore(engine),
        InvokerSettings(),
        queue=Queue(engine, clock=lambda: now),
        options_for=lambda _name: FunctionOptions(retry=policy),
    )
    worker = Worker(dispatcher, WorkerSettings(lease="30s"), name="jitter-worker")
    dispatcher.enqueue_many([(InvokeRequest("boom"), None, None) for _ in range(20)])
    assert worker.run_due() == 20
    with engine.connect() as conn:
        query = select(inv.c.due_at).where(inv.c.attempt == 2, inv.c.status == "waiting")
        waits = [(due - now).total_seconds() for due in conn.execute(query).scalars()]
    assert len(waits) == 20
    assert all(5.0 <= w <= 15.0 for w in waits)
    assert len(set(waits)) > 10 and min(waits) < 10 < max(waits)

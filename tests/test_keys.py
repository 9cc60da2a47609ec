"""Idempotency keys on real SQLite and the real PostgreSQL: scoped to their function, given up
by runs that ended without success, kept by ticks and triggers, and ``once`` kept through
retention (the rule: invoker/keys.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from firehook.config import RetryPolicy, WorkerSettings
from firehook.config.functions import FunctionOptions
from firehook.config.model import TriggerSpec
from firehook.config.settings import InvokerSettings, RetentionSettings
from firehook.invoker.dispatch import Dispatcher, InvokeRequest
from firehook.invoker.envelope import NotCancellable
from firehook.invoker.pool import Pool
from firehook.invoker.queue import Queue
from firehook.invoker.records import invocation_table as inv
from firehook.invoker.registry import Registry
from firehook.invoker.store import InvocationStore
from firehook.invoker.worker import Worker
from firehook.scheduler.retention import Retention
from firehook.scheduler.ticks import tick_key
from firehook.triggers.events import change_event
from firehook.triggers.matching import run_key
from tests.clock import FakeClock


@dataclass
class Rig:
    clock: FakeClock
    dispatcher: Dispatcher
    worker: Worker
    store: InvocationStore
    engine: Engine

    def enqueue(self, function: str, key: str, **kw: object) -> tuple[str, bool]:
        queued = self.dispatcher.enqueue(InvokeRequest(function, **kw), key=key)  # type: ignore[arg-type]
        return queued.job_id, queued.created

    def holder(self, function: str, key: str) -> list[str]:
        with self.engine.connect() as conn:
            query = select(inv.c.id).where(inv.c.function == function, inv.c.idempotency_key == key)
            return list(conn.execute(query).scalars())


POLICIES = {"boom": FunctionOptions(retry=RetryPolicy(attempts=2, backoff="1s", jitter=0))}


@pytest.fixture
def rig(engine: Engine, pool: Pool, functions_dir: Path) -> Iterator[Rig]:
    clock = FakeClock()
    store = InvocationStore(engine)
    dispatcher = Dispatcher(
        Registry(functions_dir),
        pool,
        store,
        InvokerSettings(),
        queue=Queue(engine, clock=clock),
        default_retry=RetryPolicy(attempts=1),
        options_for=lambda name: POLICIES.get(name, FunctionOptions()),
    )
    worker = Worker(dispatcher, WorkerSettings(lease="30s"), name="test-worker")
    yield Rig(clock, dispatcher, worker, store, engine)


def test_a_key_belongs_to_its_function(rig: Rig) -> None:
    cancel_job, created = rig.enqueue("hello", "order-42")
    assert created
    echo_job, created = rig.enqueue("echo", "order-42")
    assert created and echo_job != cancel_job  # not the other function's run
    assert rig.enqueue("echo", "order-42") == (echo_job, False)
    with pytest.raises(NotCancellable, match=r"several functions \(echo, hello\)"):
        rig.dispatcher.cancel(key="order-42")
    assert rig.dispatcher.cancel(key="order-42", function="echo") == [echo_job]
    assert rig.store.get(cancel_job).status == "waiting"  # type: ignore[union-attr]


def test_a_cancelled_run_gives_its_key_to_the_next_call(rig: Rig) -> None:
    first, _ = rig.enqueue("hello", "order-42")
    assert rig.dispatcher.cancel(key="order-42") == [first]
    second, created = rig.enqueue("hello", "order-42")
    assert created and second != first
    assert rig.enqueue("hello", "order-42") == (second, False)  # the new run holds it now
    old = rig.store.get(first)
    assert old is not None and old.status == "cancelled" and old.idempotency_key is None
    assert f"key order-42 given up to run {second}" in (old.note or "")
    assert rig.holder("hello", "order-42") == [second]
    assert rig.dispatcher.cancel(key="order-42") == [second]


def test_which_outcomes_keep_a_key(rig: Rig) -> None:
    # succeeded: the key dedupes for as long as the run is kept
    done, _ = rig.enqueue("hello", "paid")
    assert rig.worker.run_due() == 1
    assert rig.enqueue("hello", "paid") == (done, False)
    # failed without retries left: given up
    failed, _ = rig.enqueue("boom", "once-bad")
    with rig.engine.begin() as conn:  # as if its retries were used up
        conn.execute(inv.update().where(inv.c.id == failed).values(status="execution_failed"))
    again, created = rig.enqueue("boom", "once-bad")
    assert created and again != failed
    rig.dispatcher.cancel(again)
    # being retried (first attempt "retrying", the next one waiting): held; dead: given up
    boom, _ = rig.enqueue("boom", "flaky")
    assert rig.worker.run_due() == 1
    assert rig.store.get(boom).status == "retrying"  # type: ignore[union-attr]
    assert rig.enqueue("boom", "flaky") == (boom, False)
    rig.clock.advance(timedelta(seconds=5))
    assert rig.worker.run_due() == 1  # the second and last attempt fails: dead
    retried, created = rig.enqueue("boom", "flaky")
    assert created and retried != boom


def test_many_callers_after_a_cancel_make_one_new_run(rig: Rig) -> None:
    first, _ = rig.enqueue("hello", "k")
    rig.dispatcher.cancel(first)
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda _: rig.enqueue("hello", "k"), range(16)))
    assert len({job for job, _ in results}) == 1 and first not in {job for job, _ in results}
    assert sum(created for _, created in results) == 1
    assert len(rig.holder("hello", "k")) == 1


def test_a_tick_and_a_triggered_event_keep_their_key_whatever_the_outcome(rig: Rig) -> None:
    key = tick_key("nightly", datetime(2026, 12, 1, 12, tzinfo=UTC))
    tick, _ = rig.enqueue("hello", key, event_type="timer", source="nightly")
    rig.dispatcher.cancel(tick)  # a skipped tick is on record as cancelled, too
    assert rig.enqueue("hello", key, event_type="timer", source="nightly") == (tick, False)
    event_key = "trigger:audit:0190abc"
    run, _ = rig.enqueue("hello", event_key, event_type="trigger", source="audit")
    rig.dispatcher.cancel(run)
    assert rig.enqueue("hello", event_key, event_type="trigger", source="audit") == (run, False)


def test_a_once_trigger_stays_fired_after_retention(rig: Rig) -> None:
    spec = TriggerSpec.model_validate(
        {"name": "welcome", "on": {"table": "signups"}, "invoke": "hello", "frequency": "once"}
    )
    every = TriggerSpec.model_validate(
        {"name": "audit", "on": {"table": "signups"}, "invoke": "hello"}
    )
    ev = change_event("signups", "on_create", after={"id": 1})
    once_key = run_key(spec, ev, rig.clock.now)
    first, _ = rig.enqueue("hello", once_key, event_type="trigger", source="welcome")
    audit, _ = rig.enqueue("hello", run_key(every, ev, rig.clock.now), event_type="trigger")
    assert rig.worker.run_due() == 2
    later = rig.clock.now + timedelta(days=400)
    deleted = Retention(rig.engine, RetentionSettings(), clock=lambda: later).sweep()
    assert deleted == {"fulfilled": 1}  # the audit run went, the once marker stayed
    assert rig.store.get(audit) is None and rig.store.get(first) is not None
    ev2 = change_event("signups", "on_create", after={"id": 2})
    again = rig.enqueue("hello", run_key(spec, ev2, later), event_type="trigger", source="welcome")
    assert again == (first, False)

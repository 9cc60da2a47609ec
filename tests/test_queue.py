"""The queue on real SQLite and the real PostgreSQL: due times, keys, cancel, retries, replay.

Time is controlled: the queue's clock is a FakeClock the tests move forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from firehook.config import RetryPolicy, WorkerSettings
from firehook.config.functions import FunctionOptions
from firehook.config.settings import InvokerSettings
from firehook.invoker.dispatch import Dispatcher, InvokeRequest
from firehook.invoker.envelope import FunctionNotFound, InvalidParams, JobNotFound, NotCancellable
from firehook.invoker.pool import Pool
from firehook.invoker.queue import Completion, Queue
from firehook.invoker.registry import Registry
from firehook.invoker.store import InvocationFilter, InvocationStore
from firehook.invoker.worker import Worker
from tests.clock import FakeClock


@dataclass
class Rig:
    clock: FakeClock
    dispatcher: Dispatcher
    worker: Worker
    store: InvocationStore

    def rows(self, root_id: str) -> list:
        rows = self.store.find(InvocationFilter(limit=1000))
        return sorted((r for r in rows if r.root_id == root_id), key=lambda r: r.attempt)


POLICIES = {
    "boom": FunctionOptions(
        retry=RetryPolicy(attempts=4, backoff="1s", max_backoff="3s", jitter=0),
        timeout=timedelta(seconds=2),
    ),
    "segfault": FunctionOptions(retry=RetryPolicy(attempts=3, backoff="1s", jitter=0)),
    "notJson": FunctionOptions(retry=RetryPolicy(attempts=3, retry_on=("deadline_exceeded",))),
}


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
        default_retry=RetryPolicy(attempts=2, backoff="5s", jitter=0),
        options_for=lambda name: POLICIES.get(name, FunctionOptions()),
    )
    worker = Worker(dispatcher, WorkerSettings(lease="30s"), name="test-worker")
    yield Rig(clock, dispatcher, worker, store)


def test_delayed_run_fires_after_its_due_time_and_not_before(rig: Rig) -> None:
    queued = rig.dispatcher.enqueue(
        InvokeRequest("hello", {"name": "later"}), delay=timedelta(minutes=30)
    )
    assert queued.created and queued.status == "waiting"
    rig.clock.advance(timedelta(minutes=29, seconds=59))
    assert rig.worker.run_due() == 0
    rig.clock.advance(timedelta(seconds=1))
    assert rig.worker.run_due() == 1
    row = rig.store.get(queued.job_id)
    assert row is not None and row.status == "fulfilled" and row.result == "hello later"
    assert row.due_at == queued.due_at


def test_run_at_a_time_with_an_offset(rig: Rig) -> None:
    at = (rig.clock.now + timedelta(hours=2)).astimezone(UTC)
    queued = rig.dispatcher.enqueue(InvokeRequest("hello"), at=at)
    assert queued.due_at == at
    with pytest.raises(InvalidParams, match="UTC offset"):
        rig.dispatcher.enqueue(InvokeRequest("hello"), at=at.replace(tzinfo=None))
    with pytest.raises(InvalidParams, match="not both"):
        rig.dispatcher.enqueue(InvokeRequest("hello"), at=at, delay=timedelta(1))


def test_due_runs_are_claimed_oldest_due_first(rig: Rig) -> None:
    late = rig.dispatcher.enqueue(InvokeRequest("hello"), delay=timedelta(seconds=20))
    early = rig.dispatcher.enqueue(InvokeRequest("hello"), delay=timedelta(seconds=10))
    rig.clock.advance(timedelta(seconds=30))
    claimed = rig.dispatcher.queue.claim("w", 10, timedelta(seconds=30))
    assert [c.id for c in claimed] == [early.job_id, late.job_id]


def test_unknown_function_and_bad_params_are_refused_at_enqueue(rig: Rig) -> None:
    with pytest.raises(FunctionNotFound):
        rig.dispatcher.enqueue(InvokeRequest("nope"))
    with pytest.raises(InvalidParams):
        rig.dispatcher.enqueue(InvokeRequest("hello", {1, 2}))
    assert rig.store.count() == 0


def test_an_idempotency_key_returns_the_first_run(rig: Rig) -> None:
    first = rig.dispatcher.enqueue(
        InvokeRequest("hello"), key="order-42", delay=timedelta(minutes=30)
    )
    second = rig.dispatcher.enqueue(InvokeRequest("hello", {"other": 1}), key="order-42")
    assert (second.job_id, second.created, second.due_at) == (first.job_id, False, first.due_at)
    other = rig.dispatcher.enqueue(InvokeRequest("hello"), key="order-43")
    assert other.created and other.job_id != first.job_id
    assert rig.store.count() == 2


def test_concurrent_enqueues_with_one_key_make_one_run(rig: Rig) -> None:
    with ThreadPoolExecutor(8) as ex:
        results = list(
            ex.map(lambda _: rig.dispatcher.enqueue(InvokeRequest("hello"), key="k"), range(16))
        )
    assert len({r.job_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert rig.store.count() == 1


def test_a_batch_with_repeated_and_known_keys_inserts_only_new_runs(rig: Rig) -> None:
    known = rig.dispatcher.enqueue(InvokeRequest("hello"), key="a")
    out = rig.dispatcher.enqueue_many(
        [
            (InvokeRequest("hello"), None, "a"),
            (InvokeRequest("hello"), None, "b"),
            (InvokeRequest("hello"), None, None),
        ]
    )
    assert [o.created for o in out] == [False, True, True]
    assert out[0].job_id == known.job_id
    assert rig.store.count() == 3


def test_cancel_stops_a_waiting_run_from_running(rig: Rig) -> None:
    queued = rig.dispatcher.enqueue(InvokeRequest("hello"), delay=timedelta(minutes=30))
    assert rig.dispatcher.cancel(queued.job_id) == [queued.job_id]
    rig.clock.advance(timedelta(hours=1))
    assert rig.worker.run_due() == 0
    row = rig.store.get(queued.job_id)
    assert row is not None and row.status == "cancelled"


def test_cancel_by_key_and_the_errors_of_cancel(rig: Rig) -> None:
    queued = rig.dispatcher.enqueue(
        InvokeRequest("hello"), key="order-7", delay=timedelta(minutes=1)
    )
    assert rig.dispatcher.cancel(key="order-7") == [queued.job_id]
    with pytest.raises(NotCancellable, match="is cancelled"):
        rig.dispatcher.cancel(queued.job_id)
    with pytest.raises(JobNotFound):
        rig.dispatcher.cancel("0" * 32)
    with pytest.raises(JobNotFound):
        rig.dispatcher.cancel(key="nobody")
    done = rig.dispatcher.enqueue(InvokeRequest("hello"))
    rig.worker.run_due()
    with pytest.raises(NotCancellable, match="is fulfilled"):
        rig.dispatcher.cancel(done.job_id)


def test_the_retry_ladder_ends_dead_with_growing_capped_back_off(rig: Rig) -> None:
    root = rig.dispatcher.enqueue(InvokeRequest("boom")).job_id
    for _ in range(4):
        rig.clock.advance(timedelta(seconds=10))
        assert rig.worker.run_due() == 1
    rig.clock.advance(timedelta(minutes=10))
    assert rig.worker.run_due() == 0  # no fifth attempt
    rows = rig.rows(root)
    assert [r.attempt for r in rows] == [1, 2, 3, 4]
    assert [r.status for r in rows] == ["retrying", "retrying", "retrying", "dead"]
    assert all(r.error is not None and r.error["type"] == "execution_failed" for r in rows)
    assert {r.max_attempts for r in rows} == {4} and {r.root_id for r in rows} == {root}
    waits = [(r.due_at - r.created_at).total_seconds() for r in rows[1:]]
    assert waits == pytest.approx([1, 2, 3], abs=0.01)  # 1s, 2s, then capped at 3s
    assert rows[0].note is not None and "attempt 2 of 4" in rows[0].note
    assert rows[3].timeout_ms == 2000  # the per-function timeout


def test_a_function_that_keeps_killing_its_worker_stops_at_dead(rig: Rig) -> None:
    root = rig.dispatcher.enqueue(InvokeRequest("segfault")).job_id
    for _ in range(5):
        rig.clock.advance(timedelta(seconds=10))
        rig.worker.run_due()
    assert [r.status for r in rig.rows(root)] == ["retrying", "retrying", "dead"]
    assert rig.rows(root)[-1].error["type"] == "worker_lost"


def test_errors_outside_retry_on_are_not_retried(rig: Rig) -> None:
    root = rig.dispatcher.enqueue(InvokeRequest("notJson")).job_id
    rig.worker.run_due()
    rig.clock.advance(timedelta(minutes=10))
    assert rig.worker.run_due() == 0
    assert [r.status for r in rig.rows(root)] == ["execution_failed"]


def test_an_expired_lease_is_taken_over_as_a_new_attempt(rig: Rig) -> None:
    queued = rig.dispatcher.enqueue(InvokeRequest("hello"))
    lost = rig.dispatcher.queue.claim("dead-worker", 10, timedelta(seconds=30))
    assert [c.id for c in lost] == [queued.job_id]
    rig.clock.advance(timedelta(seconds=29))
    assert rig.dispatcher.queue.take_over_expired(rig.dispatcher.retry_policy) == 0
    rig.clock.advance(timedelta(seconds=2))
    assert rig.dispatcher.queue.take_over_expired(rig.dispatcher.retry_policy) == 1
    rig.clock.advance(timedelta(seconds=6))  # the default policy's back-off is 5s
    assert rig.worker.run_due() == 1
    rows = rig.rows(queued.job_id)
    assert [(r.attempt, r.status) for r in rows] == [(1, "worker_lost"), (2, "fulfilled")]
    assert "dead-worker" in rows[0].error["message"]
    # the old owner comes back with a result: it is discarded, not recorded twice
    late = Completion(lost[0], "late", None, "", rig.clock.now, timedelta())
    assert rig.dispatcher.queue.complete("dead-worker", [late], rig.dispatcher.retry_policy) == [
        queued.job_id
    ]
    assert [r.status for r in rig.rows(queued.job_id)] == ["worker_lost", "fulfilled"]


def test_renew_keeps_a_lease_and_reports_lost_ones(rig: Rig) -> None:
    a = rig.dispatcher.enqueue(InvokeRequest("hello")).job_id
    q = rig.dispatcher.queue
    q.claim("w1", 10, timedelta(seconds=30))
    rig.clock.advance(timedelta(seconds=20))
    assert q.renew("w1", [a], timedelta(seconds=30)) == {a}
    rig.clock.advance(timedelta(seconds=20))  # 40s after the claim, 20s after the renewal
    assert q.take_over_expired(rig.dispatcher.retry_policy) == 0
    assert q.renew("someone-else", [a], timedelta(seconds=30)) == set()


def test_release_puts_runs_back_for_another_worker(rig: Rig) -> None:
    a = rig.dispatcher.enqueue(InvokeRequest("hello")).job_id
    q = rig.dispatcher.queue
    q.claim("w1", 10, timedelta(seconds=30))
    assert q.release("w1", [a]) == 1
    assert rig.worker.run_due() == 1
    row = rig.store.get(a)
    assert row is not None and row.status == "fulfilled" and row.attempt == 1


def test_replay_dry_run_changes_nothing_and_replay_queues_new_runs(rig: Rig) -> None:
    root = rig.dispatcher.enqueue(InvokeRequest("segfault", {"n": 1})).job_id
    for _ in range(3):
        rig.clock.advance(timedelta(seconds=10))
        rig.worker.run_due()
    before = rig.store.count()
    flt = InvocationFilter(function="segfault", status="dead")
    planned = rig.dispatcher.replay(flt=flt, dry_run=True)
    assert [(old.status, new) for old, new in planned] == [("dead", None)]
    assert rig.store.count() == before
    done = rig.dispatcher.replay(flt=flt)
    new_id = done[0][1]
    assert new_id is not None and rig.store.count() == before + 1
    new = rig.store.get(new_id)
    assert new is not None and new.status == "waiting" and new.params == {"n": 1}
    assert new.note == f"replay of {rig.rows(root)[-1].id}"
    with pytest.raises(JobNotFound):
        rig.dispatcher.replay(["f" * 32])


def test_next_due_tells_when_to_wake(rig: Rig) -> None:
    assert rig.dispatcher.queue.next_due() is None
    queued = rig.dispatcher.enqueue(InvokeRequest("hello"), delay=timedelta(seconds=42))
    assert rig.dispatcher.queue.next_due() == queued.due_at


def test_a_run_with_lone_surrogates_is_recorded_and_the_worker_goes_on(
    rig: Rig, functions_dir: Path
) -> None:
    (functions_dir / "surrogates.py").write_text(
        "def main(event):\n    print('x \\ud800')\n    return '\\ud800'\n"
    )
    root = rig.dispatcher.enqueue(InvokeRequest("surrogates")).job_id
    after = rig.dispatcher.enqueue(InvokeRequest("hello")).job_id
    assert rig.worker.run_due() == 2
    failed = rig.rows(root)[0]  # the first attempt (the default policy retries it)
    assert failed.status in ("retrying", "execution_failed")
    assert "lone surrogate" in failed.error["message"]
    assert failed.logs is not None and "x \\ud800" in failed.logs
    assert [r.status for r in rig.rows(after)] == ["fulfilled"]

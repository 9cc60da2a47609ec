"""Batches of runs handed to one pool process (``Pool.run_many``, used by the queue worker)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from firehook.invoker.envelope import ErrorType
from firehook.invoker.event import Event
from firehook.invoker.pool import Pool, PoolClosed, RunResult
from firehook.invoker.registry import Registry
from tests.conftest import kill_idle_workers

FIVE_S = timedelta(seconds=5)


def batch(
    pool: Pool, runs: list[tuple[str, object, timedelta]]
) -> tuple[list[RunResult | None], list[int]]:
    """Run ``runs`` as one batch; the results by index and the order they arrived in."""
    registry = Registry(pool.functions_dir)
    items = [
        (registry.get(name), Event(data=data, job_id=f"job-{i}"), limit)
        for i, (name, data, limit) in enumerate(runs)
    ]
    results: list[RunResult | None] = [None] * len(items)
    order: list[int] = []

    def on_result(index: int, result: RunResult) -> None:
        assert results[index] is None, f"run {index} answered twice"
        results[index] = result
        order.append(index)

    pool.run_many(items, on_result)
    return results, order


def value(result: RunResult | None) -> object:
    assert result is not None and result.error is None, result
    assert result.result_json is not None
    return json.loads(result.result_json)


def echoed(result: RunResult | None) -> object:
    answer = value(result)
    assert isinstance(answer, dict)
    return answer["data"]


def error_type(result: RunResult | None) -> ErrorType:
    assert result is not None and result.error is not None, result
    return result.error.type


def test_a_batch_runs_in_order_in_one_process_and_answers_each_run(pool: Pool) -> None:
    results, order = batch(pool, [("echo", {"n": i}, FIVE_S) for i in range(20)])
    assert order == list(range(20))
    assert [echoed(r) for r in results] == [{"n": i} for i in range(20)]
    assert [value(r)["job_id"] for r in results] == [f"job-{i}" for i in range(20)]
    started = [r.started_at for r in results if r is not None]
    assert started == sorted(started)
    assert pool.replaced == 0


def test_each_run_of_a_batch_has_its_own_time_limit(pool: Pool) -> None:
    # three runs of 0.4 s under a 1 s limit each: 1.2 s in all is not a deadline
    results, _ = batch(pool, [("sleepy", {"seconds": 0.4}, timedelta(seconds=1))] * 3)
    assert [value(r) for r in results] == ["slept"] * 3


def test_a_runaway_run_fails_alone_and_the_runs_behind_it_still_run(pool: Pool) -> None:
    t0 = time.monotonic()
    runs = [
        ("echo", 1, FIVE_S),
        ("spin", None, timedelta(seconds=1)),
        ("echo", 3, FIVE_S),
        ("echo", 4, FIVE_S),
    ]
    results, order = batch(pool, runs)
    assert 1.0 <= time.monotonic() - t0 < 4.0
    assert echoed(results[0]) == 1
    assert error_type(results[1]) is ErrorType.DEADLINE_EXCEEDED
    assert [echoed(results[2]), echoed(results[3])] == [3, 4]
    assert order == [0, 1, 2, 3]
    assert pool.replaced == 1


@pytest.mark.parametrize("name", ["exitOne", "segfault"])
def test_a_run_that_kills_its_process_is_lost_alone_and_the_rest_run_elsewhere(
    pool: Pool, name: str
) -> None:
    results, _ = batch(pool, [("echo", 1, FIVE_S), (name, None, FIVE_S), ("echo", 3, FIVE_S)])
    assert echoed(results[0]) == 1
    assert error_type(results[1]) is ErrorType.WORKER_LOST
    assert echoed(results[2]) == 3
    assert pool.replaced == 1


def test_a_process_that_died_while_idle_gets_no_batch(pool: Pool) -> None:
    kill_idle_workers(pool)
    results, _ = batch(pool, [("echo", i, FIVE_S) for i in range(3)])
    assert [echoed(r) for r in results] == [0, 1, 2]
    assert pool.replaced == 2


def test_recycling_counts_every_run_of_a_batch(functions_dir: Path) -> None:
    with Pool(functions_dir, size=1, max_tasks_per_worker=3) as p:
        results, _ = batch(p, [("echo", i, FIVE_S) for i in range(7)])
        assert [echoed(r) for r in results] == list(range(7))
        assert p.replaced == 2  # after runs 3 and 6: no process ran more than 3


def test_a_closed_pool_refuses_a_batch(functions_dir: Path) -> None:
    p = Pool(functions_dir, size=1)
    with pytest.raises(PoolClosed):
        batch(p, [("echo", 1, FIVE_S)])

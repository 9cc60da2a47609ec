"""Cluster-wide limits: ``max_concurrency`` and ``rate`` held over two worker processes on
PostgreSQL; runs held back wait (with the reason on record) instead of failing."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from firehook.app import App
from firehook.config import Settings
from firehook.config.loader import parse_config
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.store import InvocationFilter
from tests.roles import RoleProcess, role_env, wait_for

LIMITS = """
version: 1
functions:
  sleepy: {max_concurrency: 2}
  hello: {rate: 5}
"""


@pytest.fixture
def app(postgres_url: str, functions_dir: Path) -> Iterator[App]:
    fh = App(Settings(database_url=postgres_url, functions_dir=functions_dir)).open_db()
    fh.rules_store.apply(parse_config(textwrap.dedent(LIMITS)).config, "test")
    yield fh
    fh.close()


@pytest.fixture
def two_workers(app: App, postgres_url: str, functions_dir: Path, tmp_path: Path) -> Iterator[None]:
    env = role_env(postgres_url, functions_dir, FIREHOOK_INVOKER__POOL_SIZE="3")
    workers = [RoleProcess("worker", env, tmp_path) for _ in range(2)]
    yield
    for w in workers:
        assert w.stop() == 0


def runs(app: App, function: str) -> list:  # type: ignore[type-arg]
    return list(app.store.find(InvocationFilter(function=function, limit=1000)))


@pytest.mark.postgres
@pytest.mark.slow
def test_max_concurrency_holds_over_two_workers_and_held_back_runs_wait(
    app: App, two_workers: None
) -> None:
    for _ in range(12):
        app.dispatcher.enqueue(InvokeRequest("sleepy", {"seconds": 0.3}))
    wait_for(lambda: [r.status for r in runs(app, "sleepy")] == ["fulfilled"] * 12, 60, "runs")
    rows = runs(app, "sleepy")
    most = max_overlap(rows)
    notes = [r.note for r in rows if r.note and "throttled: max_concurrency 2 reached" in r.note]
    print(
        f"12 runs of 0.3 s, 6 process slots, max_concurrency 2: at most {most} at once, "
        f"{len(notes)} held back on record"
    )
    assert most == 2
    assert notes  # the wait is on record
    assert all(r.attempt == 1 for r in rows)  # held back, not failed and retried


@pytest.mark.postgres
@pytest.mark.slow
def test_a_rate_holds_over_two_workers(app: App, two_workers: None) -> None:
    for i in range(20):
        app.dispatcher.enqueue(InvokeRequest("hello", {"name": str(i)}))
    wait_for(lambda: [r.status for r in runs(app, "hello")] == ["fulfilled"] * 20, 60, "runs")
    starts = sorted(r.started_at for r in runs(app, "hello"))
    span = (starts[-1] - starts[0]).total_seconds()
    busiest = max(sum(1 for s in starts if a <= s < a + timedelta(seconds=1)) for a in starts)
    notes = [r.note for r in runs(app, "hello") if r.note and "rate 5/s" in r.note]
    print(
        f"20 runs at rate 5/s: first to last start {span:.2f}s, busiest second {busiest}, "
        f"{len(notes)} held back on record"
    )
    assert span >= 2.5  # 5 at once (one second banked), then 5 a second: 3 s
    assert busiest <= 10
    assert notes


def max_overlap(rows: list) -> int:  # type: ignore[type-arg]
    edges = sorted([(r.started_at, 1) for r in rows] + [(r.finished_at, -1) for r in rows])
    most = now = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        now += step
        most = max(most, now)
    return most


def test_limits_from_settings_hold_on_sqlite_too(tmp_path: Path, functions_dir: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'fh.db'}",
        functions_dir=functions_dir,
        functions={"sleepy": {"max_concurrency": 1}},
    )
    fh = App(settings, pool_size=3)
    try:
        fh.start_worker()
        for _ in range(4):
            fh.dispatcher.enqueue(InvokeRequest("sleepy", {"seconds": 0.2}))
        fh.dispatcher.enqueue(InvokeRequest("hello"))  # not limited: not held up
        wait_for(lambda: [r.status for r in runs(fh, "sleepy")] == ["fulfilled"] * 4, 30, "runs")
        assert max_overlap(runs(fh, "sleepy")) == 1
        hello = runs(fh, "hello")[0]
        assert hello.status == "fulfilled" and hello.note is None
    finally:
        fh.close()

"""The queue on PostgreSQL: enqueue rate, worker throughput, start latency.

Run: ``python benchmarks/queue.py [--n 100000] [--runs 10000]`` (PostgreSQL at
FIREHOOK_BENCH_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test;
it works in a scratch schema it drops afterwards).

(a) enqueue ``--n`` delayed runs, batched as a bulk producer would, and one by one, beside
    APScheduler 3 adding the same number of date jobs to its SQLAlchemy job store;
(b) ``--runs`` trivial runs due now, drained by 1 and then 2 ``firehook worker``
    processes: runs/s and enqueue-to-start latency p50/p99;
(c) 200 runs due in the same second, idle workers waiting: start lag p99.
Targets (issue 3): (a) at least 10x APScheduler, (b) at least 1,500 runs/s with 2 workers,
(c) under 1 s.
"""

from __future__ import annotations

import _pathfix  # noqa: F401  (first: this file's name shadows the stdlib's queue)

# isort: split
import argparse
import statistics
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from benchmarks._common import (
    header,
    pct,
    project,
    role_env,
    scratch_schema,
    start_role,
    stop_roles,
)
from firehook.app import App
from firehook.config import Settings, create_db_engine
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.store import InvocationFilter


def noop() -> None:
    """APScheduler's job target."""


def bench_enqueue(app: App, n: int, url: str) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    req = InvokeRequest("trivial", {"x": 1}, event_type="delayed")
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        app.dispatcher.enqueue_many([(req, due, None)] * min(1000, n - start))
    batched = n / (time.perf_counter() - t0)
    single_n = min(n, 5000)
    t0 = time.perf_counter()
    for _ in range(single_n):
        app.dispatcher.enqueue(req, at=due)
    single = single_n / (time.perf_counter() - t0)
    aps = apscheduler_rate(n, url)
    print(f"(a) enqueue {n:,} delayed runs, batches of 1000: {batched:,.0f} runs/s")
    print(f"    enqueue {single_n:,} delayed runs one by one:     {single:,.0f} runs/s")
    print(f"    APScheduler 3 SQLAlchemyJobStore add_job x{n:,}: {aps:,.0f} jobs/s")
    print(f"    ratio batched/APScheduler {batched / aps:.1f}x, one by one {single / aps:.1f}x")
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM invocation"))


def apscheduler_rate(n: int, url: str) -> float:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    engine = create_db_engine(url)
    store = SQLAlchemyJobStore(engine=engine, tablename="aps_bench_jobs")
    sched = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")
    sched.start(paused=True)
    run_date = datetime.now(UTC) + timedelta(days=1)
    t0 = time.perf_counter()
    for i in range(n):
        sched.add_job(noop, "date", run_date=run_date, id=f"job-{i}")
    rate = n / (time.perf_counter() - t0)
    sched.remove_all_jobs()
    sched.shutdown(wait=False)
    engine.dispose()
    return rate


def start_workers(count: int, env: dict[str, str], cwd: Path) -> list[subprocess.Popen[str]]:
    return [start_role("worker", env, cwd) for _ in range(count)]


def wait_fulfilled(app: App, n: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while app.store.count("fulfilled") < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {app.store.count('fulfilled')} of {n} fulfilled in {limit}s")
        time.sleep(0.2)


def bench_drain(app: App, runs: int, workers: int, env: dict[str, str], cwd: Path) -> None:
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM invocation"))
    req = InvokeRequest("trivial", {"x": 1}, event_type="cli")
    for start in range(0, runs, 1000):
        app.dispatcher.enqueue_many([(req, None, None)] * min(1000, runs - start))
    procs = start_workers(workers, env, cwd)
    wait_fulfilled(app, runs, 300)
    stop_roles(procs)
    rows = app.store.find(InvocationFilter(limit=runs + 10))
    first = min(r.started_at for r in rows if r.started_at)
    last = max(r.finished_at for r in rows if r.finished_at)
    lat = [(r.started_at - r.created_at).total_seconds() * 1000 for r in rows if r.started_at]
    rate = runs / (last - first).total_seconds()
    print(
        f"(b) {runs:,} runs due now, {workers} worker process(es): {rate:,.0f} runs/s; "
        f"enqueue-to-start p50 {statistics.median(lat):,.0f} ms, p99 {pct(lat, 0.99):,.0f} ms "
        "(the queue was filled first: this is backlog wait)"
    )


def bench_same_second(app: App, env: dict[str, str], cwd: Path) -> None:
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM invocation"))
    procs = start_workers(2, env, cwd)
    time.sleep(1.0)  # idle
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    req = InvokeRequest("trivial", {"x": 1}, event_type="delayed")
    app.dispatcher.enqueue_many([(req, due, None)] * 200)
    wait_fulfilled(app, 200, 60)
    stop_roles(procs)
    rows = app.store.find(InvocationFilter(limit=300))
    lag = [(r.started_at - r.due_at).total_seconds() * 1000 for r in rows if r.started_at]
    print(
        f"(c) 200 runs due in the same second, 2 idle workers: start lag p50 "
        f"{statistics.median(lag):.0f} ms, p99 {pct(lag, 0.99):.0f} ms, max {max(lag):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="delayed runs to enqueue in (a)")
    parser.add_argument("--runs", type=int, default=10_000, help="runs to drain in (b)")
    args = parser.parse_args()
    header("benchmarks/queue.py: the invocation table as a queue, on PostgreSQL")
    with scratch_schema() as (url, _dsn), project() as cwd:
        app = App(Settings(database_url=url, functions_dir=cwd / "functions")).open_db()
        env = role_env(url, cwd)
        bench_enqueue(app, args.n, url)
        for workers in (1, 2):
            bench_drain(app, args.runs, workers, env, cwd)
        bench_same_second(app, env, cwd)
        app.close()


if __name__ == "__main__":
    main()

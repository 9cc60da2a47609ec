"""The scheduler on PostgreSQL: 10,000 cron schedules, beside APScheduler 3 alone.

Run: ``python benchmarks/scheduler.py [--n 10000] [--group 200]`` (PostgreSQL at
FIREHOOK_BENCH_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test;
it works in a scratch schema it drops afterwards).  Takes about three minutes.

``--n`` schedules run every minute, spread over the seconds; ``--group`` of them share one
second.  Figures: time to ``firehook apply`` the file; the RSS of one ``firehook scheduler``
process holding them; the fire lag (run start, i.e. the worker's claim, minus the
scheduled time) p50/p99 of the group's runs, with one scheduler and ``--workers`` (2) workers,
and how far ahead of its due time the scheduler inserted each of them.
Then APScheduler 3 alone (BackgroundScheduler, MemoryJobStore, its thread pool) with the
same cron jobs in a child process: time to add them, RSS, and the lag of the group's jobs
(job function start minus scheduled time).  Targets (issue 6): fire lag p99 under 100 ms,
scheduler RSS under 300 MB.
"""

from __future__ import annotations

import _pathfix  # noqa: F401  (first: this file's name shadows firehook's scheduler package)

# isort: split
import argparse
import multiprocessing
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

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
from firehook.apply import apply_file
from firehook.config import Settings
from firehook.invoker.records import invocation_table as inv
from firehook.scheduler.cron import parse_cron


def rss_mb(pid: int) -> tuple[float, float]:
    """Current and peak resident set size of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def crons(n: int, group: int, second: int) -> list[str]:
    """``group`` schedules at ``second``, the others spread over the other seconds."""
    others = [s for s in range(60) if s != second]
    return [f"{second} * * * * *"] * group + [
        f"{others[i % len(others)]} * * * * *" for i in range(n - group)
    ]


def write_config(path: Path, expressions: list[str]) -> None:
    lines = ["version: 1", "schedules:"]
    for i, expr in enumerate(expressions):
        lines += [f"  - name: s{i:05d}", f'    cron: "{expr}"', "    invoke: trivial"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def next_at_second(second: int, after: datetime) -> datetime:
    t = after.replace(second=second, microsecond=0)
    return t if t > after else t + timedelta(minutes=1)


def bench_firehook(
    url: str, cwd: Path, n: int, group: int, second: int, workers: int, concurrency: int
) -> None:
    settings = Settings(database_url=url, functions_dir=cwd / "functions")
    app = App(settings).open_db()
    config = cwd / "firehook.yaml"
    write_config(config, crons(n, group, second))
    t0 = time.perf_counter()
    apply_file(config, app.rules_store, app.registry, settings)
    applied = time.perf_counter() - t0
    print(f"firehook: apply {n:,} schedules (load, validate, write): {applied:.2f} s")
    env = role_env(
        url,
        cwd,
        FIREHOOK_RETENTION__ENABLED="false",
        FIREHOOK_WORKER__CONCURRENCY=str(concurrency),
    )
    procs = [start_role(r, env, cwd) for r in ["scheduler"] + ["worker"] * workers]
    try:
        time.sleep(5)  # rules loaded, first ticks fired
        warm = datetime.now(UTC)
        tick = next_at_second(second, datetime.now(UTC) + timedelta(seconds=2))
        time.sleep(max(0.0, (tick - datetime.now(UTC)).total_seconds()) + 5)
        rss, peak = rss_mb(procs[0].pid)
        query = select(inv.c.due_at, inv.c.started_at, inv.c.created_at).where(
            inv.c.due_at == tick, inv.c.started_at.is_not(None)
        )
        with app.engine.connect() as conn:
            rows = conn.execute(query).all()
            minute = conn.execute(
                select(inv.c.due_at, inv.c.started_at).where(
                    inv.c.due_at >= warm,
                    inv.c.due_at < tick + timedelta(seconds=3),
                    inv.c.started_at.is_not(None),
                )
            ).all()
    finally:
        stop_roles(procs, wait=60)
    lag = [(r.started_at - r.due_at).total_seconds() * 1000 for r in rows]
    ahead = [(r.due_at - r.created_at).total_seconds() * 1000 for r in rows]
    all_lag = [(r.started_at - r.due_at).total_seconds() * 1000 for r in minute]
    print(f"firehook: scheduler process RSS {rss:.0f} MB (peak {peak:.0f} MB) with {n:,} schedules")
    print(
        f"firehook: the scheduler inserted those {len(ahead)} runs ahead of their due time by "
        f"min {min(ahead):.0f} ms, p50 {statistics.median(ahead):.0f} ms"
    )
    print(
        f"firehook: fire lag (claim by {workers} worker(s), concurrency "
        f"{concurrency or 'default'}) of the {len(lag)} runs due at {tick:%H:%M:%S}: "
        f"p50 {statistics.median(lag):.0f} ms, p99 {pct(lag, 0.99):.0f} ms, max {max(lag):.0f} ms"
    )
    print(
        f"firehook: fire lag of all {len(all_lag)} runs due from start-up + 5 s to then + 3 s: "
        f"p50 {statistics.median(all_lag):.0f} ms, p99 {pct(all_lag, 0.99):.0f} ms"
    )
    app.close()


def _aps_child(n: int, group: int, second: int, out: multiprocessing.Queue[object]) -> None:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    starts: list[float] = []

    def job(in_group: bool) -> None:
        if in_group:
            starts.append(time.time())

    base = rss_mb(os.getpid())[0]
    sched = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(20)},
        timezone="UTC",
    )
    expressions = crons(n, group, second)
    t0 = time.perf_counter()
    for i, expr in enumerate(expressions):
        sched.add_job(job, parse_cron(expr, "UTC"), args=[i < group], id=f"s{i:05d}")
    sched.start()
    added = time.perf_counter() - t0
    time.sleep(3)
    tick = next_at_second(second, datetime.now(UTC) + timedelta(seconds=2))
    time.sleep(max(0.0, (tick - datetime.now(UTC)).total_seconds()) + 5)
    rss, peak = rss_mb(os.getpid())
    sched.shutdown(wait=False)
    lag = [(s - tick.timestamp()) * 1000 for s in starts if s >= tick.timestamp() - 1]
    out.put((added, base, rss, peak, lag, tick))


def bench_apscheduler(n: int, group: int, second: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_aps_child, args=(n, group, second, out))
    child.start()
    added, base, rss, peak, lag, tick = out.get(timeout=180)  # type: ignore[misc]
    child.join(30)
    print(f"APScheduler 3 alone: add {n:,} cron jobs to a MemoryJobStore and start: {added:.2f} s")
    print(
        f"APScheduler 3 alone: process RSS {rss:.0f} MB (peak {peak:.0f} MB; {base:.0f} MB before)"
    )
    print(
        f"APScheduler 3 alone: lag of the {len(lag)} jobs due at {tick:%H:%M:%S}: "
        f"p50 {statistics.median(lag):.0f} ms, p99 {pct(lag, 0.99):.0f} ms, max {max(lag):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="schedules, every minute")
    parser.add_argument("--group", type=int, default=200, help="schedules sharing one second")
    parser.add_argument("--second", type=int, default=30, help="the group's second")
    parser.add_argument("--workers", type=int, default=2, help="firehook worker processes")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="runs a worker holds at once (0: default)"
    )
    args = parser.parse_args()
    header("benchmarks/scheduler.py: cron schedules on PostgreSQL, beside APScheduler 3 alone")
    with scratch_schema() as (url, _dsn), project() as cwd:
        bench_firehook(url, cwd, args.n, args.group, args.second, args.workers, args.concurrency)
    bench_apscheduler(args.n, args.group, args.second)


if __name__ == "__main__":
    main()

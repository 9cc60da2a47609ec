"""End to end: events/s from publish to a recorded success, firehook beside Celery and Dramatiq.

Run: ``python benchmarks/e2e.py [--n 5000] [--workers 1,2,4] [--rounds 3]`` (peers need
``pip install -e '.[bench]'``; RabbitMQ and PostgreSQL on 127.0.0.1).  ``--set
FIREHOOK_WORKER__BATCH_SIZE=32`` (repeatable) runs firehook's roles with other settings.

The same N event documents go through each setup on the same RabbitMQ and PostgreSQL:

- **firehook**: a ``firehook consumer`` and 1, 2 or 4 ``firehook worker`` processes (each with
  its default pool of 2 run processes); each event matches one rule, so the consumer queues
  one run in the invocation table and a worker runs a trivial ``main(event)`` and records
  the outcome: done means ``fulfilled`` in the invocation table.
- **Celery** (prefork 2, ``acks_late``) and **Dramatiq** (2 processes): the event is the task
  argument, and the task records it with one PostgreSQL insert: done means the row is there.

Two modes: ``live`` starts the workers, then publishes while they work (rate = N / time from
the first publish to the last record); ``filled`` publishes everything first, then starts
the workers (rate = (N-1) / time from the first record to the last, so start-up is not
counted).  Each case prints where the CPU went, which shows why more worker processes stop
helping on 2 cores.  The last lines give firehook's ratio against each peer in this run.
"""

from __future__ import annotations

import _pathfix  # noqa: F401  (first: benchmarks/queue.py shadows the stdlib)

# isort: split
import argparse
import os
import secrets
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, make_url, text

from benchmarks import _cpu
from benchmarks._common import (
    ORDER_RULE,
    PG,
    RABBIT,
    header,
    project,
    role_env,
    scratch_schema,
    start_role,
    stop_roles,
)
from benchmarks._peers import PEERS, PeerRun, consumers_on, delete_queues
from firehook.app import App
from firehook.config import Settings, create_db_engine
from firehook.config.loader import parse_config
from firehook.config.settings import TriggerSettings
from firehook.triggers.broker import Topology, connect
from firehook.triggers.events import CloudEvent, change_event
from firehook.triggers.publisher import Publisher

DEADLINE = 600.0


@dataclass
class Result:
    setup: str
    mode: str
    n: int
    rate: float
    publish_rate: float
    wall: float
    cpu: _cpu.Usage


def wait_done(n: int, count: Callable[[], int], what: str, procs: list[Any]) -> None:
    deadline = time.monotonic() + DEADLINE
    while (done := count()) < n:
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"{what}: a worker process exited ({p.returncode}) at {done}/{n}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: only {done} of {n} done in {DEADLINE:g} s")
        time.sleep(0.2)  # the end time comes from the records, not from this poll


def timed_publish(publish: Callable[[], None]) -> tuple[threading.Thread, list[float]]:
    """Publish in a thread (as an application would, beside the workers)."""
    spent: list[float] = []

    def run() -> None:
        t0 = time.perf_counter()
        publish()
        spent.append(time.perf_counter() - t0)

    thread = threading.Thread(target=run, name="publisher")
    thread.start()
    return thread, spent


def finish(
    setup: str,
    mode: str,
    n: int,
    bounds: tuple[float, float, float],
    spent: list[float],
    usage: _cpu.Usage,
) -> Result:
    start, first, last = bounds
    rate = n / (last - start) if mode == "live" else (n - 1) / max(last - first, 1e-9)
    publish_rate = n / spent[0] if spent and spent[0] > 0 else 0.0
    result = Result(setup, mode, n, rate, publish_rate, last - start, usage)
    print(
        f"{setup:<40} {mode:<6} {rate:>7,.0f} events/s  (publish {publish_rate:,.0f}/s, "
        f"{result.wall:.2f} s)\n    {usage.line()}",
        flush=True,
    )
    return result


# ---------------------------------------------------------------- firehook
def run_firehook(
    workers: int, mode: str, events: list[CloudEvent], overrides: dict[str, str] | None = None
) -> Result:
    n = len(events)
    setup = f"firehook: consumer + {workers} worker{'s' if workers > 1 else ''}"
    topo = Topology(
        exchange=f"bench.e2e.{secrets.token_hex(3)}", queue=f"bench.e2e.{secrets.token_hex(3)}"
    )
    with scratch_schema() as (db_url, _dsn), project() as cwd:
        triggers = TriggerSettings(exchange=topo.exchange, queue=topo.queue)
        settings = Settings(
            database_url=db_url,
            functions_dir=cwd / "functions",
            broker_url=RABBIT,
            triggers=triggers,
        )
        app = App(settings).open_db()
        app.rules_store.apply(parse_config(ORDER_RULE).config, "bench")
        with connect(RABBIT) as conn:
            topo.events_queue()(conn.default_channel).declare()
        env = role_env(
            db_url,
            cwd,
            FIREHOOK_BROKER_URL=RABBIT,
            FIREHOOK_TRIGGERS__EXCHANGE=topo.exchange,
            FIREHOOK_TRIGGERS__QUEUE=topo.queue,
            **(overrides or {}),
        )
        procs: list[subprocess.Popen[str]] = []
        publisher = Publisher(RABBIT, topo)
        try:
            thread, spent = None, []
            if mode == "filled":
                t0 = time.perf_counter()
                publisher.publish_many(events)
                spent = [time.perf_counter() - t0]
            before = _cpu.Snapshot.take()
            start = time.time()
            procs.append(start_role("consumer", env, cwd))
            procs.extend(start_role("worker", env, cwd) for _ in range(workers))
            if mode == "live":
                while consumers_on(RABBIT, topo.queue) < 1:
                    time.sleep(0.05)
                before = _cpu.Snapshot.take()
                start = time.time()
                thread, spent = timed_publish(lambda: publisher.publish_many(events) and None)
            wait_done(n, lambda: app.store.count("fulfilled"), setup, procs)
            after = _cpu.Snapshot.take()
            first, last = _bounds(
                app.engine, "SELECT min(finished_at), max(finished_at) FROM invocation"
            )
            if thread is not None:
                thread.join()
        finally:
            publisher.close()
            stop_roles(procs)
            app.close()
            delete_queues(RABBIT, [topo.queue, topo.dead_queue_name])
    roots = {p.pid for p in procs}
    consumer = {procs[0].pid}

    def classify(pid: int, name: str, table: dict[int, tuple[str, int, float]]) -> str | None:
        del name
        if pid == os.getpid():
            return "publisher"
        if _cpu.descends_from(pid, consumer, table):
            return "firehook consumer"
        if pid in roots:
            return "firehook worker roles"
        return "firehook pools" if _cpu.descends_from(pid, roots, table) else None

    usage = _cpu.usage(before, after, last - start, classify)
    return finish(setup, mode, n, (start, first, last), spent, usage)


def _bounds(engine: Engine, sql: str) -> tuple[float, float]:
    with engine.connect() as conn:
        lo, hi = conn.execute(text(sql)).one()
    return _ts(lo), _ts(hi)


def _ts(value: datetime | str) -> float:
    return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).timestamp()


# ---------------------------------------------------------------- peers
RUN_ID = secrets.token_hex(3)


def peer_queue(name: str) -> str:
    """One queue per peer for the whole process: its publishing module is imported once."""
    return f"bench.{name}.{RUN_ID}"


def run_peer(name: str, mode: str, events: list[CloudEvent]) -> Result:
    peer = PEERS[name]
    n = len(events)
    docs = [ev.model_dump(mode="json") for ev in events]
    with scratch_schema() as (db_url, dsn):
        engine = create_db_engine(db_url)
        with engine.begin() as conn:
            conn.execute(
                text("CREATE TABLE peer_run (seq integer NOT NULL, done_at timestamptz NOT NULL)")
            )
        run = PeerRun(peer, RABBIT, dsn, peer_queue(name), "peer_run")
        try:
            send = run.sender()

            def publish() -> None:
                for doc in docs:
                    send(doc)

            thread, spent = None, []
            if mode == "filled":
                t0 = time.perf_counter()
                publish()
                spent = [time.perf_counter() - t0]
                before = _cpu.Snapshot.take()
                start = time.time()
                run.start(wait_ready=False)
            else:
                run.start()
                before = _cpu.Snapshot.take()
                start = time.time()
                thread, spent = timed_publish(publish)

            def count() -> int:
                with engine.connect() as conn:
                    return int(conn.execute(text("SELECT count(*) FROM peer_run")).scalar_one())

            wait_done(n, count, peer.label, [run.proc])
            after = _cpu.Snapshot.take()
            first, last = _bounds(engine, "SELECT min(done_at), max(done_at) FROM peer_run")
            if thread is not None:
                thread.join()
            worker_pid = run.proc.pid if run.proc else -1
        finally:
            run.close()
            engine.dispose()

    def classify(pid: int, pname: str, table: dict[int, tuple[str, int, float]]) -> str | None:
        del pname
        if pid == os.getpid():
            return "publisher"
        return f"{name} workers" if _cpu.descends_from(pid, {worker_pid}, table) else None

    usage = _cpu.usage(before, after, last - start, classify)
    return finish(peer.label, mode, n, (start, first, last), spent, usage)


def summary(results: list[Result]) -> None:
    """Median over the rounds per setup and mode, and firehook's ratio to each peer."""
    print("\nsummary: events/s from publish to recorded success (median of the rounds)")
    modes = list(dict.fromkeys(r.mode for r in results))
    setups = list(dict.fromkeys(r.setup for r in results))
    median: dict[tuple[str, str], float] = {}
    for s in setups:
        for m in modes:
            rates = [r.rate for r in results if r.setup == s and r.mode == m]
            if rates:
                median[s, m] = statistics.median(rates)
    rounds = max(
        sum(1 for r in results if r.setup == s and r.mode == m) for s in setups for m in modes
    )
    print(f"{'setup':<40} " + " ".join(f"{m:>9}" for m in modes) + f"   ({rounds} round(s))")
    for s in setups:
        print(f"{s:<40} " + " ".join(f"{median.get((s, m), 0):>9,.0f}" for m in modes))
    for m in modes:
        ours = [s for s in setups if s.startswith("firehook") and (s, m) in median]
        if not ours:
            continue
        best = max(ours, key=lambda s: median[s, m])
        for p in setups:
            if not p.startswith("firehook") and (p, m) in median:
                ratio = median[best, m] / median[p, m]
                print(f"{m}: best firehook ({best}) / {p}: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000, help="events per case")
    parser.add_argument("--workers", default="1,2,4", help="firehook worker processes per case")
    parser.add_argument("--peers", default="celery,dramatiq", help="comma list, or 'none'")
    parser.add_argument("--modes", default="live,filled")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every case; medians")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIREHOOK_NAME=VALUE",
        help="a setting for firehook's roles, e.g. FIREHOOK_WORKER__BATCH_SIZE=32 (repeatable)",
    )
    args = parser.parse_args()
    overrides = dict(item.partition("=")[::2] for item in args.set)
    for name, value in overrides.items():
        if not name.startswith("FIREHOOK_") or not value:
            parser.error(f"--set takes FIREHOOK_NAME=VALUE, not {name}={value}")
    workers = [int(w) for w in args.workers.split(",") if w]
    peers = [p for p in args.peers.split(",") if p and p != "none"]
    for p in peers:
        if p not in PEERS:
            parser.error(f"unknown peer {p!r}; choose from {', '.join(PEERS)}")
        if not PEERS[p].installed():
            parser.error(f"{p} is not installed: pip install -e '.[bench]' (or --peers none)")
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in ("live", "filled") for m in modes):
        parser.error("--modes takes live and/or filled")
    header(f"benchmarks/e2e.py: {args.n} events -> {args.n} recorded runs, per setup and mode")
    where = f"{RABBIT.split('@')[-1]} and {make_url(PG).host}:{make_url(PG).port or 5432}"
    print(f"{os.cpu_count()} cores; RabbitMQ and PostgreSQL at {where}")
    events = [change_event("orders", "on_create", after={"id": i}) for i in range(args.n)]
    results: list[Result] = []
    try:
        for r in range(args.rounds):
            if args.rounds > 1:
                print(f"-- round {r + 1} of {args.rounds}", flush=True)
            for mode in modes:
                results.extend(run_firehook(w, mode, events, overrides) for w in workers)
                results.extend(run_peer(p, mode, events) for p in peers)
    finally:
        for p in peers:
            delete_queues(RABBIT, PEERS[p].queue_names(peer_queue(p)))
    summary(results)


if __name__ == "__main__":
    main()

"""Leases on PostgreSQL, counted by what functions did rather than by what was recorded:
two workers claiming at the same moment never execute one run twice, and a run longer than
its lease stays with its worker while that worker lives and goes to another once it is gone."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from firehook.app import App
from firehook.config import Settings
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.store import InvocationFilter
from tests.test_worker import RoleProcess, settings_env, wait_for

pytestmark = pytest.mark.postgres

LEDGER_FUNCTION = (
    "import os\n"
    "def main(event):\n"
    "    fd = os.open({ledger!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
    "    os.write(fd, f'{{event.job_id}} {{event.attempt}}\\n'.encode())\n"
    "    os.close(fd)\n"
    "    return event.attempt\n"
)


def test_two_workers_claiming_at_the_same_moment_execute_each_run_once(
    postgres_url: str, functions_dir: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    (functions_dir / "note.py").write_text(LEDGER_FUNCTION.format(ledger=str(ledger)))
    settings = Settings(
        database_url=postgres_url,
        functions_dir=functions_dir,
        # small claims, so that the two workers claim again and again side by side
        worker={"batch_size": 4, "concurrency": 4, "poll_interval": "100ms"},
    )
    apps = [App(settings, pool_size=2), App(settings, pool_size=2)]
    try:
        apps[0].open_db().dispatcher.enqueue_many(
            [(InvokeRequest("note", {"i": i}), None, None) for i in range(400)]
        )
        together = threading.Barrier(2, timeout=30)
        for fh in apps:
            fh.start()  # pools first: the claims below must not wait for a pool to start
            claim = fh.queue.claim
            first = threading.Event()

            def claim_together(
                *args: Any, _claim: Callable[..., Any] = claim, _first: threading.Event = first
            ) -> Any:
                if not _first.is_set():  # each worker's first claim waits for the other's
                    _first.set()
                    together.wait()
                return _claim(*args)

            fh.queue.claim = claim_together  # type: ignore[method-assign]
        for fh in apps:
            fh.worker.start()
        wait_for(lambda: apps[0].store.count("fulfilled") == 400, 120, "400 fulfilled runs")
        executions = Counter(line.split()[0] for line in ledger.read_text().splitlines())
        twice = {job: n for job, n in executions.items() if n > 1}
        assert not twice, f"{len(twice)} run(s) executed more than once"
        assert len(executions) == 400 and apps[0].store.count() == 400
        done = [fh.worker.completed for fh in apps]
        assert all(done) and sum(done) == 400, done  # both claimed, at the same time
    finally:
        for fh in apps:
            fh.close()


def test_a_run_longer_than_its_lease_stays_with_its_live_worker_and_moves_when_it_dies(
    postgres_url: str, functions_dir: Path, tmp_path: Path
) -> None:
    (functions_dir / "slowOnce.py").write_text(
        "import time\n"
        "def main(event):\n"
        "    if event.attempt == 1:\n"
        "        time.sleep(event.data['seconds'])\n"
        "    return event.attempt\n"
    )
    env = settings_env(postgres_url, functions_dir, FIREHOOK_WORKER__LEASE="1s")
    other = App(
        Settings(database_url=postgres_url, functions_dir=functions_dir, worker={"lease": "1s"})
    )
    owner = None
    try:
        long, doomed = other.open_db().dispatcher.enqueue_many(
            [
                (InvokeRequest("slowOnce", {"seconds": 5}), None, None),  # 5 leases
                (InvokeRequest("slowOnce", {"seconds": 60}), None, None),
            ]
        )
        owner = RoleProcess(env, tmp_path)  # one claim takes both (its pool has 2 processes)

        def executing(job_id: str) -> bool:
            row = other.store.get(job_id)
            return row is not None and row.status == "executing"

        wait_for(lambda: executing(long.job_id) and executing(doomed.job_id), 30, "both to run")
        sweeps: list[datetime] = []

        @event.listens_for(other.engine, "before_cursor_execute")
        def _sweep(_c: object, _cur: object, statement: str, *_rest: object) -> None:
            if statement.lstrip().startswith("WITH expired"):
                sweeps.append(datetime.now(UTC))

        other.start_worker()  # sweeps for expired leases about every second
        wait_for(lambda: not executing(long.job_id), 30, "the long run to end")
        first = other.store.get(long.job_id)
        assert first is not None and first.started_at is not None
        assert (first.status, first.attempt) == ("fulfilled", 1), (first.status, first.error)
        assert first.finished_at is not None
        lease = timedelta(seconds=1)
        past_lease = [s for s in sweeps if first.started_at + 2 * lease < s < first.finished_at]
        assert len(past_lease) >= 2, (sweeps, first.started_at, first.finished_at)
        assert executing(doomed.job_id)  # still its worker's
        os.killpg(owner.proc.pid, signal.SIGKILL)  # the worker and its pool: its machine died
        owner.proc.wait(10)
        wait_for(
            lambda: any(
                r.root_id == doomed.job_id and r.status == "fulfilled"
                for r in other.store.find(InvocationFilter())
            ),
            30,
            "the other worker to take the run over",
        )
        rows = sorted(
            (
                r
                for r in other.store.find(InvocationFilter())
                if r.root_id in (long.job_id, doomed.job_id)
            ),
            key=lambda r: (r.root_id != long.job_id, r.attempt),
        )
        assert [(r.root_id == long.job_id, r.attempt, r.status) for r in rows] == [
            (True, 1, "fulfilled"),
            (False, 1, "worker_lost"),
            (False, 2, "fulfilled"),
        ]
    finally:
        if owner is not None and owner.proc.poll() is None:
            os.killpg(owner.proc.pid, signal.SIGKILL)
            owner.proc.wait(10)
        if owner is not None and owner.proc.stdout is not None:
            owner.proc.stdout.close()
        other.close()

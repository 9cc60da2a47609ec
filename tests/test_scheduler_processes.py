"""Schedulers as users run them: ``firehook scheduler`` processes racing for the same ticks
(one SIGKILLed half way), and ``firehook apply`` reaching a running scheduler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from firehook.config import create_db_engine
from firehook.invoker.records import invocation_table as inv
from tests.test_worker import RoleProcess, settings_env, wait_for

FIREHOOK = [sys.executable, "-m", "firehook"]


@pytest.fixture
def schedulers(functions_dir: Path, tmp_path: Path) -> Iterator[Callable[..., RoleProcess]]:
    started: list[RoleProcess] = []

    def start(db_url: str, **extra: str) -> RoleProcess:
        env = settings_env(db_url, functions_dir, FIREHOOK_SCHEDULER__REFRESH="0.5s", **extra)
        p = RoleProcess(env, tmp_path, role="scheduler")
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)
        if p.proc.stdout is not None:
            p.proc.stdout.close()


def apply(db_url: str, functions_dir: Path, cwd: Path, yaml: str) -> None:
    (cwd / "firehook.yaml").write_text(yaml, encoding="utf-8")
    env = settings_env(db_url, functions_dir)
    done = subprocess.run(
        [*FIREHOOK, "apply", "firehook.yaml", "--prune"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def rows_of(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(inv).where(inv.c.source == name)
        return int(conn.execute(query).scalar_one())


EVERY_SECOND = """
version: 1
schedules:
  - name: race
    cron: "*/1 * * * * *"
    invoke: hello
"""


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("count", [2, 3])
def test_schedulers_racing_for_60_ticks_fire_each_exactly_once_even_when_one_is_killed(
    count: int,
    postgres_url: str,
    functions_dir: Path,
    tmp_path: Path,
    schedulers: Callable[..., RoleProcess],
) -> None:
    apply(postgres_url, functions_dir, tmp_path, EVERY_SECOND)
    engine = create_db_engine(postgres_url)
    try:
        procs = [schedulers(postgres_url) for _ in range(count)]
        wait_for(lambda: rows_of(engine, "race") >= 30, 45, "30 ticks")
        procs[0].stop(signal.SIGKILL)
        wait_for(lambda: rows_of(engine, "race") >= 62, 45, "60 more ticks")
        outs = [p.stop()[1] for p in procs[1:]]
        with engine.connect() as conn:
            rows = conn.execute(
                select(inv.c.due_at, inv.c.status, inv.c.idempotency_key)
                .where(inv.c.source == "race")
                .order_by(inv.c.due_at)
            ).all()
    finally:
        engine.dispose()
    due = [r.due_at for r in rows]
    assert len(due) >= 62
    assert len(set(due)) == len(due)  # one run per tick
    assert len({r.idempotency_key for r in rows}) == len(rows)
    # no tick lost, around the kill or anywhere else: one run for every second
    assert all(b - a == timedelta(seconds=1) for a, b in pairwise(due)), due
    assert {r.status for r in rows} == {"waiting"}  # none skipped as a misfire
    # the survivors really raced: each tried (nearly) every tick after it started
    for out in outs:
        summary = out.strip().splitlines()[-1]
        tried = int(summary.split("scheduler: ")[1].split(" run(s)")[0])
        assert tried >= 55, summary


@pytest.mark.timeout(60)
def test_an_applied_change_reaches_a_running_scheduler_within_seconds(
    db_url: str,
    engine: Engine,
    functions_dir: Path,
    tmp_path: Path,
    schedulers: Callable[..., RoleProcess],
) -> None:
    proc = schedulers(db_url)
    time.sleep(0.5)  # running, with no schedules
    started = time.monotonic()
    apply(db_url, functions_dir, tmp_path, EVERY_SECOND)
    wait_for(lambda: rows_of(engine, "race") > 0, 5, "the new schedule's first tick")
    added_after = time.monotonic() - started
    paused = EVERY_SECOND + "    enabled: false\n"
    apply(db_url, functions_dir, tmp_path, paused)
    time.sleep(3)  # refresh 0.5 s + a tick inserted up to 1 s ahead
    count = rows_of(engine, "race")
    time.sleep(2)
    assert rows_of(engine, "race") == count, "a paused schedule kept firing"
    code, out = proc.stop()
    assert code == 0, out
    assert added_after < 5
    assert os.path.exists(tmp_path / "firehook.yaml")


def test_schedules_lists_the_next_five_fire_times_in_each_schedule_zone(
    functions_dir: Path, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'fh.db'}"
    apply(
        db_url,
        functions_dir,
        tmp_path,
        """
version: 1
schedules:
  - name: nightly-lottery
    cron: "0 20 * * *"
    timezone: Asia/Shanghai
    invoke: hello
    misfire: skip
    misfire_grace: 90m
  - name: paused
    cron: "*/2 * * * * *"
    invoke: hello
    enabled: false
""",
    )
    env = settings_env(db_url, functions_dir)
    run = [*FIREHOOK, "schedules"]
    listed = subprocess.run([*run, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    lottery = rows["nightly-lottery"]
    assert len(lottery["next"]) == 5
    assert all(t.endswith("T20:00:00+08:00") for t in lottery["next"])
    assert (lottery["misfire"], lottery["misfire_grace"]) == ("skip", "1h30m")
    assert rows["paused"]["next"] == [] and rows["paused"]["enabled"] is False
    text = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    assert "nightly-lottery: '0 20 * * *' Asia/Shanghai -> hello" in text
    assert "paused" in text

"""Crash test (5): two schedulers, one SIGKILLed every few seconds and restarted: every
one-second tick runs exactly once (and is fulfilled once by a worker)."""

from __future__ import annotations

import textwrap
import threading
import time
from datetime import timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from firehook.app import App
from firehook.config import Settings
from firehook.config.loader import parse_config
from firehook.invoker.records import invocation_table as inv
from tests.chaos.rig import Rig, every

EVERY_SECOND = """
version: 1
schedules:
  - name: tick
    cron: "*/1 * * * * *"
    invoke: hello
"""


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_every_tick_runs_exactly_once_while_one_of_two_schedulers_is_killed(rig: Rig) -> None:
    app = App(Settings(database_url=rig.db_url, functions_dir=rig.functions_dir)).open_db()
    app.rules_store.apply(parse_config(textwrap.dedent(EVERY_SECOND)).config, "chaos")
    app.close()
    refresh = {"FIREHOOK_SCHEDULER__REFRESH": "0.5s"}
    steady = rig.start("scheduler", **refresh)
    victim = [rig.start("scheduler", **refresh)]
    worker = rig.start("worker")

    def kill_and_restart() -> None:
        rig.crash(victim[0])
        victim[0] = rig.start("scheduler", **refresh)

    window = threading.Thread(target=threading.Event().wait, args=(30,), daemon=True)
    window.start()
    kills = every(4.0, window, kill_and_restart)
    steady.stop()
    victim[0].stop()

    def rows() -> list:  # type: ignore[type-arg]
        with rig.engine.connect() as conn:
            query = (
                select(inv.c.id, inv.c.root_id, inv.c.due_at, inv.c.status, inv.c.idempotency_key)
                .where(inv.c.source == "tick")
                .order_by(inv.c.due_at)
            )
            return list(conn.execute(query).all())

    end = time.monotonic() + 30  # the worker drains the last ticks
    while time.monotonic() < end and any(r.status != "fulfilled" for r in rows()):
        time.sleep(0.5)
    all_rows = rows()
    ticks = [r for r in all_rows if r.idempotency_key is not None]
    fulfilled = {}
    for r in all_rows:
        if r.status == "fulfilled":
            fulfilled[r.root_id] = fulfilled.get(r.root_id, 0) + 1
    due = [r.due_at for r in ticks]
    print(
        f"scheduler SIGKILLed {kills} times over 30 s: {len(ticks)} ticks recorded, "
        f"{len(set(due))} distinct, {sum(1 for n in fulfilled.values() if n == 1)} fulfilled "
        f"once, {sum(1 for n in fulfilled.values() if n > 1)} more than once"
    )
    assert worker.alive()
    assert kills >= 5
    assert len(ticks) >= 28
    assert len(set(due)) == len(due)  # one run per tick
    assert all(b - a == timedelta(seconds=1) for a, b in pairwise(due)), due  # none lost
    assert {r.status for r in ticks} == {"fulfilled"}
    assert all(fulfilled.get(r.id) == 1 for r in ticks)

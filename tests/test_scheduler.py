"""The scheduler on real SQLite and the real PostgreSQL, with time moved, not slept through.

Each test builds schedulers over one database with a FakeClock and calls ``step()``: one
round, as the loop thread would do it when it wakes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from firehook.config.model import ConfigFile, ScheduleSpec
from firehook.config.rules import RulesStore, RulesView, rule_t
from firehook.config.settings import InvokerSettings, SchedulerSettings, WorkerSettings
from firehook.invoker.dispatch import Dispatcher
from firehook.invoker.pool import Pool
from firehook.invoker.queue import Queue
from firehook.invoker.records import invocation_table as inv
from firehook.invoker.registry import Registry
from firehook.invoker.store import InvocationStore
from firehook.invoker.worker import Worker
from firehook.scheduler.cron import CronSchedule
from firehook.scheduler.runner import Scheduler
from firehook.scheduler.ticks import StateStore, tick_key
from tests.clock import FakeClock


@dataclass
class World:
    engine: Engine
    clock: FakeClock
    store: RulesStore
    functions_dir: Path
    pool: Pool | None = None

    def dispatcher(self) -> Dispatcher:
        pool = self.pool or Pool(self.functions_dir, size=1)
        return Dispatcher(
            Registry(self.functions_dir),
            pool,
            InvocationStore(self.engine),
            InvokerSettings(),
            queue=Queue(self.engine, clock=self.clock),
        )

    def scheduler(self, **settings: Any) -> Scheduler:
        return Scheduler(
            self.dispatcher(),
            RulesView(self.store, refresh=timedelta(0)),
            SchedulerSettings(**settings),
            clock=self.clock,
        )

    def apply(self, *schedules: ScheduleSpec) -> None:
        """Apply, as if at the fake clock's time."""
        self.store.apply(ConfigFile(version=1, schedules=list(schedules)), "test", prune=True)
        with self.engine.begin() as conn:
            conn.execute(update(rule_t).values(updated_at=self.clock()))

    def rows(self, name: str | None = None) -> list[dict[str, Any]]:
        query = select(inv).order_by(inv.c.due_at, inv.c.created_at)
        if name is not None:
            query = query.where(inv.c.source == name)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def next_tick(self, cron: str, tz: str = "UTC", after: datetime | None = None) -> datetime:
        tick = CronSchedule(cron, tz).next_after(after or self.clock())
        assert tick is not None
        return tick


@pytest.fixture
def world(engine: Engine, functions_dir: Path) -> Iterator[World]:
    # a whole minute; World.apply stamps rules with this clock
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    yield World(engine, FakeClock(start), RulesStore(engine), functions_dir)


def spec(name: str = "tick", cron: str = "* * * * *", **kw: Any) -> ScheduleSpec:
    return ScheduleSpec(name=name, cron=cron, invoke=kw.pop("invoke", "echo"), **kw)


def test_a_tick_is_enqueued_a_little_ahead_with_its_key_and_exact_due_time(world: World) -> None:
    world.apply(spec(cron="*/10 * * * * *", params={"prize": "phone"}))
    sched = world.scheduler(lead="1s")
    tick = world.next_tick("*/10 * * * * *")
    world.clock.set(tick - timedelta(seconds=2))
    assert sched.step().fired == 0  # not yet: more than the lead ahead
    world.clock.set(tick - timedelta(milliseconds=500))
    assert sched.step().fired == 1
    assert sched.step().fired == 0  # the same tick is not enqueued twice by one scheduler
    (row,) = world.rows()
    assert row["idempotency_key"] == tick_key("tick", tick)
    assert row["idempotency_key"].endswith(f"{tick:%Y-%m-%dT%H:%M:%S}Z")
    assert row["due_at"] == tick
    assert row["status"] == "waiting"
    assert row["event_type"] == "timer"
    assert row["source"] == "tick"
    assert row["params"] == {
        "prize": "phone",
        "subject": "timer",
        "name": "tick",
        "scheduled_time": tick.isoformat(),
    }
    assert StateStore(world.engine).load()["tick"] == tick


def test_the_function_gets_a_timer_event_with_the_tick_in_the_schedule_zone(
    world: World, pool: Pool
) -> None:
    world.pool = pool
    world.apply(spec(name="lottery", cron="0 20 * * *", timezone="Asia/Shanghai"))
    sched = world.scheduler()
    tick = world.next_tick("0 20 * * *", "Asia/Shanghai")
    world.clock.set(tick - timedelta(milliseconds=300))
    sched.step()
    worker = Worker(sched.dispatcher, WorkerSettings())
    assert worker.run_due() == 0  # not due yet
    world.clock.set(tick)
    assert worker.run_due() == 1
    (row,) = world.rows()
    assert row["status"] == "fulfilled"
    assert row["result"]["event_type"] == "timer"
    data = row["result"]["data"]
    assert data["subject"] == "timer" and data["name"] == "lottery"
    assert data["scheduled_time"].endswith("T20:00:00+08:00")
    assert datetime.fromisoformat(data["scheduled_time"]) == tick


def test_a_second_scheduler_firing_the_same_tick_adds_nothing(world: World) -> None:
    world.apply(spec(cron="*/5 * * * * *"))
    a, b = world.scheduler(), world.scheduler()
    tick = world.next_tick("*/5 * * * * *")
    a.step(), b.step()  # both running, both with the schedule loaded
    world.clock.set(tick - timedelta(milliseconds=200))
    assert a.step().fired == 1
    assert b.step().fired == 1  # it tried; the key made it a no-op
    assert [r["idempotency_key"] for r in world.rows()] == [tick_key("tick", tick)]


def downtime(world: World, schedule: ScheduleSpec, minutes: int) -> tuple[datetime, datetime]:
    """One scheduler fires a tick and stops; all are down for ``minutes``; a new one starts."""
    world.apply(schedule)
    t0 = world.next_tick(schedule.cron)
    world.clock.set(t0 - timedelta(milliseconds=500))
    assert world.scheduler().step().fired == 1
    world.clock.set(t0 + timedelta(minutes=minutes, seconds=30))
    return t0, world.clock()


MISSED = 10  # ticks t0+1m .. t0+10m


@pytest.mark.parametrize(
    ("policy", "grace", "runs", "skipped"),
    [
        ("skip", "10s", 0, MISSED),
        ("run_once", "10s", 1, MISSED - 1),
        ("run_all", "10s", MISSED, 0),
        # within the grace window a late tick is no misfire: it runs, whatever the policy
        ("skip", "1h", MISSED, 0),
    ],
)
def test_misfire_policy_after_every_scheduler_was_down(
    world: World, policy: str, grace: str, runs: int, skipped: int
) -> None:
    t0, now = downtime(world, spec(misfire=policy, misfire_grace=grace), MISSED)
    result = world.scheduler().step()
    assert (result.fired, result.skipped) == (runs, skipped)
    rows = world.rows()[1:]  # after t0's run
    # every missed tick is on record exactly once, under its own key
    expected = [tick_key("tick", t0 + timedelta(minutes=i)) for i in range(1, MISSED + 1)]
    assert sorted(r["idempotency_key"] for r in rows) == expected
    queued = [r for r in rows if r["status"] == "waiting"]
    notes = [r for r in rows if r["status"] == "cancelled"]
    assert (len(queued), len(notes)) == (runs, skipped)
    for r in notes:
        assert r["note"].startswith("skipped: misfire")
        assert r["finished_at"] == now
    if policy == "run_once":
        (run,) = queued
        assert run["idempotency_key"] == expected[-1]  # the newest missed tick runs
        assert "coalesced 10 missed tick(s)" in run["note"]
        assert run["due_at"] == now
        assert all("coalesced into the run of tick" in r["note"] for r in notes)
    if policy == "skip" and grace == "10s":
        assert "policy skip" in notes[0]["note"]
    if grace == "1h":  # on time, within grace: due at their own times, no note
        assert [r["due_at"] for r in queued] == [t0 + timedelta(minutes=i) for i in range(1, 11)]
        assert all(r["note"] is None for r in queued)
    # and then the schedule carries on normally
    nxt = t0 + timedelta(minutes=MISSED + 1)
    world.clock.set(nxt - timedelta(milliseconds=500))
    assert world.scheduler().step().fired == 1
    assert world.rows()[-1]["idempotency_key"] == tick_key("tick", nxt)


def test_a_restart_while_another_scheduler_runs_is_no_misfire(world: World) -> None:
    world.apply(spec(cron="*/10 * * * * *", misfire="skip", misfire_grace="1s"))
    running = world.scheduler()
    for _ in range(6):
        tick = world.next_tick("*/10 * * * * *")
        world.clock.set(tick - timedelta(milliseconds=500))
        running.step()
    late = world.scheduler()  # starts now: resumes from the stored last tick
    world.clock.set(world.clock() + timedelta(seconds=1))
    assert late.step().skipped == 0
    assert {r["status"] for r in world.rows()} == {"waiting"}


def test_missed_ticks_beyond_max_catchup_are_summarised_in_one_record(world: World) -> None:
    world.apply(spec(cron="* * * * * *", misfire="skip", misfire_grace="1s"))
    t0 = world.next_tick("* * * * * *")
    world.clock.set(t0)
    world.scheduler(max_catchup=5).step()
    world.clock.set(t0 + timedelta(seconds=60))
    result = world.scheduler(max_catchup=5).step()
    # fired before: t0 and t0+1s (within the lead); now t0+59s (within the 1 s grace),
    # t0+60s and t0+61s (within the lead); missed: t0+2s .. t0+58s
    assert result.fired == 3
    cancelled = [r for r in world.rows() if r["status"] == "cancelled"]
    assert len(cancelled) == 6  # 5 one by one + 1 summary
    summary = [r for r in cancelled if "max_catchup" in r["note"]]
    assert len(summary) == 1 and "52 missed tick(s)" in summary[0]["note"]
    assert ":skipped-through:" in summary[0]["idempotency_key"]


def test_max_instances_skips_a_tick_while_the_previous_run_is_still_going(world: World) -> None:
    world.apply(spec(cron="*/10 * * * * *", max_instances=1))
    sched = world.scheduler()
    first = world.next_tick("*/10 * * * * *")
    world.clock.set(first - timedelta(milliseconds=500))
    assert sched.step().fired == 0  # max_instances schedules are not inserted ahead
    world.clock.set(first)
    assert sched.step().fired == 1
    world.clock.set(first + timedelta(seconds=10))
    result = sched.step()
    assert (result.fired, result.skipped) == (0, 1)
    skipped = world.rows()[-1]
    assert skipped["status"] == "cancelled"
    assert "max_instances 1 reached" in skipped["note"]
    with world.engine.begin() as conn:  # the first run finishes
        conn.execute(update(inv).where(inv.c.due_at == first).values(status="fulfilled"))
    world.clock.set(first + timedelta(seconds=20))
    assert sched.step().fired == 1


def test_a_tick_of_a_missing_function_is_rejected_on_record(world: World) -> None:
    world.apply(spec(invoke="ghost"))
    sched = world.scheduler()
    tick = world.next_tick("* * * * *")
    world.clock.set(tick)
    assert sched.step().rejected == 1
    (row,) = world.rows()
    assert row["status"] == "execution_rejected"
    assert row["error"]["type"] == "not_found"
    assert "ghost" in row["note"]


def set_updated_at(world: World, name: str) -> None:
    """Pretend the last apply happened at the fake clock's time."""
    with world.engine.begin() as conn:
        conn.execute(update(rule_t).where(rule_t.c.name == name).values(updated_at=world.clock()))


def test_added_changed_paused_and_removed_schedules_reach_a_running_scheduler(
    world: World,
) -> None:
    sched = world.scheduler()

    def step_at(t: datetime) -> int:
        world.clock.set(t)
        return sched.step().fired

    assert sched.step().fired == 0
    world.apply(spec(cron="*/10 * * * * *"))
    t1 = world.next_tick("*/10 * * * * *")
    assert step_at(t1) == 1
    # changed: every 30 s from now on
    world.apply(spec(cron="*/30 * * * * *"))
    set_updated_at(world, "tick")
    t2 = world.next_tick("*/30 * * * * *")
    assert step_at(t2 - timedelta(seconds=10)) == 0  # the old */10 tick is gone
    assert step_at(t2) == 1
    # paused: nothing; resumed an hour later: no catch-up of the paused hour
    world.apply(spec(cron="*/30 * * * * *", enabled=False))
    assert step_at(t2 + timedelta(minutes=30)) == 0
    world.clock.set(t2 + timedelta(hours=1, seconds=5))
    world.apply(spec(cron="*/30 * * * * *", enabled=True))
    set_updated_at(world, "tick")
    result = sched.step()
    assert (result.fired, result.skipped) == (0, 0)
    t3 = world.next_tick("*/30 * * * * *")
    assert step_at(t3) == 1
    # removed
    world.store.apply(ConfigFile(version=1), "test", prune=True)
    assert step_at(t3 + timedelta(minutes=5)) == 0
    keys = [r["idempotency_key"] for r in world.rows()]
    assert keys == [tick_key("tick", t) for t in (t1, t2, t3)]


def test_a_fixed_time_schedule_runs_once_on_the_night_clocks_go_back(world: World) -> None:
    world.apply(spec(cron="30 2 * * *", timezone="Europe/Berlin", misfire="run_all"))
    set_updated_at(world, "tick")
    sched = world.scheduler()
    night = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # Sunday 00:00 CEST
    with world.engine.begin() as conn:
        conn.execute(update(rule_t).values(updated_at=night))
    for minutes in range(0, 6 * 60, 10):
        world.clock.set(night + timedelta(minutes=minutes))
        sched.step()
    times = [r["params"]["scheduled_time"] for r in world.rows()]
    assert times == ["2026-10-25T02:30:00+02:00"]


def test_tick_keys_are_in_utc_through_new_york_s_fall_back_night(world: World) -> None:
    """1:00-2:00 happens twice on 2026-11-01 in New York (EDT -4, then EST -5)."""
    world.apply(
        spec("daily", cron="30 1 * * *", timezone="America/New_York"),
        spec("hourly", cron="30 * * * *", timezone="America/New_York"),
    )
    start = datetime(2026, 10, 31, 4, 0, tzinfo=UTC)
    with world.engine.begin() as conn:
        conn.execute(update(rule_t).values(updated_at=start))
    sched = world.scheduler()
    for minutes in range(0, 52 * 60, 10):
        world.clock.set(start + timedelta(minutes=minutes))
        sched.step()
    daily = [r["idempotency_key"] for r in world.rows("daily")]
    # a fixed-time schedule runs in the first pass only: once that night
    assert daily == [
        "schedule:daily:2026-10-31T05:30:00Z",
        "schedule:daily:2026-11-01T05:30:00Z",  # 01:30 EDT
        "schedule:daily:2026-11-02T06:30:00Z",  # 01:30 EST
    ]
    hourly = [r["idempotency_key"] for r in world.rows("hourly")]
    # an hourly schedule runs in both passes, under two keys (one local key would dedupe them)
    night = [k for k in hourly if "2026-11-01T0" in k]
    assert night[:6] == [
        "schedule:hourly:2026-11-01T00:30:00Z",
        "schedule:hourly:2026-11-01T01:30:00Z",
        "schedule:hourly:2026-11-01T02:30:00Z",
        "schedule:hourly:2026-11-01T03:30:00Z",
        "schedule:hourly:2026-11-01T04:30:00Z",
        "schedule:hourly:2026-11-01T05:30:00Z",  # 01:30 EDT
    ]
    assert "schedule:hourly:2026-11-01T06:30:00Z" in hourly  # 01:30 EST, the second pass
    assert len(hourly) == len(set(hourly)) == 52
    second_pass = next(
        r
        for r in world.rows("hourly")
        if r["idempotency_key"] == "schedule:hourly:2026-11-01T06:30:00Z"
    )
    assert second_pass["params"]["scheduled_time"] == "2026-11-01T01:30:00-05:00"

"""The scheduler: turns cron ticks into queued runs, with misfire policies and max_instances.

Any number of schedulers run at once, all active, none leading.  Each computes the ticks of
every enabled schedule itself (APScheduler 3's cron trigger, see :mod:`scheduler.cron`) and
enqueues each tick through the dispatch API with the key ``schedule:<name>:<tick UTC>`` and
the tick as due time, a little ahead of it (``lead``) so the worker starts it on time.  The
unique key turns a second scheduler's enqueue of the same tick into a no-op, so stopping or
killing any scheduler loses nothing and needs no failover.

A tick more than the schedule's ``misfire_grace`` late when a scheduler gets to it (after
every scheduler was down, or one was stalled) is a misfire, handled by the schedule's
``misfire`` policy; every tick that is not run is on record with the reason
(:mod:`scheduler.ticks`).  :meth:`Scheduler.step` does one round with the injected clock, so
tests move time instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from firehook.config.durations import format_duration
from firehook.config.model import ScheduleSpec
from firehook.config.rules import Rules, RulesView
from firehook.config.settings import SchedulerSettings
from firehook.invoker.dispatch import Dispatcher, InvokeRequest
from firehook.invoker.envelope import ErrorType, FunctionNotFound, Status
from firehook.invoker.event import EventType
from firehook.invoker.records import invocation_table as inv
from firehook.scheduler.cron import CronError, CronSchedule
from firehook.scheduler.ticks import StateStore, record_ticks, tick_data, tick_key, tick_row

__all__ = ["Scheduler", "StepResult"]

log = logging.getLogger(__name__)

_Row = dict[str, object]


@dataclass
class _Entry:
    spec: ScheduleSpec
    cron: CronSchedule
    cursor: datetime  # every tick at or before this instant has been dealt with
    next: datetime | None  # the next tick after it, in the schedule's zone


@dataclass(frozen=True)
class _Fire:
    spec: ScheduleSpec
    tick: datetime
    due: datetime
    note: str | None = None


@dataclass
class StepResult:
    """What one round did."""

    fired: int = 0  # runs enqueued (or found already enqueued by another scheduler)
    skipped: int = 0  # ticks put on record as not run (misfire, max_instances)
    rejected: int = 0  # ticks whose function does not exist
    ticks: dict[str, datetime] = field(default_factory=dict)  # schedule -> newest tick


@dataclass
class _Plan:
    fires: list[_Fire] = field(default_factory=list)
    skips: list[_Row] = field(default_factory=list)
    last: datetime | None = None
    next: datetime | None = None


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


class Scheduler:
    """Fires the schedules of the rules store.  ``clock`` is injectable for tests."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        rules: RulesView,
        settings: SchedulerSettings,
        *,
        default_timezone: str = "UTC",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.engine = dispatcher.store.engine
        self.rules = rules
        self.settings = settings
        self.default_timezone = default_timezone
        self.clock = clock or dispatcher.queue.clock
        self.states = StateStore(self.engine)
        self._entries: dict[str, _Entry] = {}
        self._version = -1
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0
        self.skipped = 0
        self.rejected = 0

    # lifecycle -----------------------------------------------------------------------------
    def start(self) -> Scheduler:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="firehook-scheduler")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def wake(self) -> None:
        """Look at the rules and the clock now (e.g. after an apply in this process)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                self.step()
                backoff = 0.1
                wait = self.seconds_to_next()
            except Exception:  # a database outage or a bug: keep the other schedules going
                log.exception("scheduler round failed; retrying in %.1fs", backoff)
                wait, backoff = backoff, min(backoff * 2, 5.0)
            self._wake.wait(wait)
            self._wake.clear()

    def seconds_to_next(self) -> float:
        """How long to sleep: until the next tick is to be inserted, or the next rules check."""
        now = self.clock()
        wait = self.settings.refresh.total_seconds()
        lead = self.settings.lead
        for e in self._entries.values():
            if e.next is not None:
                ahead = timedelta(0) if e.spec.max_instances else lead
                wait = min(wait, (e.next - ahead - now).total_seconds())
        return max(0.0, wait)

    # one round -----------------------------------------------------------------------------
    def step(self) -> StepResult:
        """Reload changed rules, then enqueue or record every tick that is due."""
        self._sync(self.rules.current())
        now = self.clock()
        fires: list[_Fire] = []
        skips: list[_Row] = []
        plans: dict[str, _Plan] = {}
        for name, entry in self._entries.items():
            horizon = now if entry.spec.max_instances else now + self.settings.lead
            # compare in UTC: two times of one zone compare by wall clock, ignoring the fold
            if entry.next is None or entry.next.astimezone(UTC) > horizon:
                continue
            plan = self._plan(entry, now, horizon)
            plans[name] = plan
            fires += plan.fires
            skips += plan.skips
        result = StepResult()
        if not plans:
            return result
        fires, skips = self._limit_instances(fires, skips, now)
        requests = []
        for f in fires:
            try:
                self.dispatcher.registry.get(f.spec.invoke)
            except FunctionNotFound as e:
                error = {"type": ErrorType.NOT_FOUND.value, "message": str(e), "stack": ""}
                note = f"not run: {e} (schedule {f.spec.name})"
                status = Status.EXECUTION_REJECTED
                skips.append(tick_row(f.spec, f.tick, now, status, note, error=error))
                result.rejected += 1
                continue
            request = InvokeRequest(
                f.spec.invoke,
                tick_data(f.spec, f.tick),
                event_type=EventType.TIMER.value,
                source=f.spec.name,
                note=f.note,
            )
            requests.append((request, f.due, tick_key(f.spec.name, f.tick)))
        self.dispatcher.enqueue_many(requests)
        record_ticks(self.engine, skips)
        ticks = {n: p.last for n, p in plans.items() if p.last is not None}
        self.states.advance(ticks)
        for name, plan in plans.items():  # only now: a failed write is retried next round
            entry = self._entries[name]
            if plan.last is not None:
                entry.cursor = plan.last.astimezone(UTC)
            entry.next = plan.next
        result.fired = len(requests)
        result.skipped = len(skips) - result.rejected
        result.ticks = ticks
        self.fired += result.fired
        self.skipped += result.skipped
        self.rejected += result.rejected
        if result.skipped or result.rejected:
            log.info(
                "scheduler: %d run(s) queued, %d tick(s) not run (on record with the reason)",
                result.fired,
                result.skipped + result.rejected,
            )
        return result

    def _plan(self, entry: _Entry, now: datetime, horizon: datetime) -> _Plan:
        """The ticks of one schedule up to ``horizon``: on time, or missed (misfire policy)."""
        spec = entry.spec
        deadline = now - spec.misfire_grace
        plan = _Plan()
        missed: deque[datetime] = deque(maxlen=self.settings.max_catchup)
        dropped = 0
        dropped_first: datetime | None = None
        dropped_last: datetime | None = None
        on_time: list[datetime] = []
        tick = entry.next
        while tick is not None and tick.astimezone(UTC) <= horizon:
            if tick.astimezone(UTC) < deadline:
                if len(missed) == missed.maxlen:
                    dropped += 1
                    dropped_first = dropped_first or missed[0]
                    dropped_last = missed[0]
                missed.append(tick)
            else:
                on_time.append(tick)
            plan.last = tick
            tick = entry.cron.next_after(tick)
        plan.next = tick
        plan.fires = [_Fire(spec, t, t.astimezone(UTC)) for t in on_time]
        if dropped_last is not None and dropped_first is not None:
            note = (
                f"skipped: misfire; {dropped} missed tick(s) from {_iso(dropped_first)} to "
                f"{_iso(dropped_last)}, more than max_catchup "
                f"({self.settings.max_catchup}), not recorded one by one"
            )
            through = f"{dropped_last.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
            key = f"schedule:{spec.name}:skipped-through:{through}"
            plan.skips.append(tick_row(spec, dropped_last, now, Status.CANCELLED, note, key=key))
        if missed:
            self._misfires(spec, list(missed), bool(on_time), now, plan)
        return plan

    def _misfires(
        self, spec: ScheduleSpec, missed: list[datetime], on_time: bool, now: datetime, plan: _Plan
    ) -> None:
        grace = format_duration(spec.misfire_grace)
        first, last = missed[0], missed[-1]
        late = format_duration(now - last)
        if spec.misfire == "run_all":
            for t in missed:
                note = f"misfire: ran {format_duration(now - t)} late (policy run_all)"
                plan.fires.append(_Fire(spec, t, now, note))
            return
        if spec.misfire == "run_once" and not on_time:
            note = (
                f"misfire: ran {late} late; policy run_once coalesced {len(missed)} missed "
                f"tick(s) from {_iso(first)} to {_iso(last)} into this run"
            )
            plan.fires.insert(0, _Fire(spec, last, now, note))
            missed = missed[:-1]
            reason = f"coalesced into the run of tick {_iso(last)} (policy run_once)"
        elif spec.misfire == "run_once":
            reason = "coalesced into the on-time run that follows (policy run_once)"
        else:
            reason = "policy skip"
        for t in missed:
            note = f"skipped: misfire, {format_duration(now - t)} late (grace {grace}); {reason}"
            plan.skips.append(tick_row(spec, t, now, Status.CANCELLED, note))

    def _limit_instances(
        self, fires: list[_Fire], skips: list[_Row], now: datetime
    ) -> tuple[list[_Fire], list[_Row]]:
        """Skip ticks of schedules whose ``max_instances`` runs are still waiting or executing."""
        limited = {f.spec.name for f in fires if f.spec.max_instances}
        if not limited:
            return fires, skips
        query = (
            select(inv.c.source, func.count())
            .where(
                inv.c.status.in_([Status.WAITING.value, Status.EXECUTING.value]),
                inv.c.event_type == EventType.TIMER.value,
                inv.c.source.in_(sorted(limited)),
            )
            .group_by(inv.c.source)
        )
        with self.engine.connect() as conn:
            active = {name: int(n) for name, n in conn.execute(query).all()}
        kept: list[_Fire] = []
        for f in fires:
            limit = f.spec.max_instances
            if limit is None:
                kept.append(f)
                continue
            count = active.get(f.spec.name, 0)
            if count < limit:
                active[f.spec.name] = count + 1
                kept.append(f)
                continue
            note = (
                f"skipped: max_instances {limit} reached ({count} run(s) of this schedule "
                "still waiting or executing)"
            )
            skips.append(tick_row(f.spec, f.tick, now, Status.CANCELLED, note))
        return kept, skips

    # rules ---------------------------------------------------------------------------------
    def _sync(self, rules: Rules) -> None:
        """Follow the applied rules: add, change, pause and remove schedules."""
        if rules.version == self._version:
            return
        specs = {s.name: s for s in rules.schedules if s.enabled}
        for name in [n for n in self._entries if n not in specs]:
            del self._entries[name]
            log.info("schedule %s removed or paused", name)
        changed = [
            n for n, s in specs.items() if n not in self._entries or self._entries[n].spec != s
        ]
        if changed:
            updated = self.rules.store.updated_at("schedule")
            states = self.states.load(changed)
        for name in changed:
            spec = specs[name]
            try:
                cron = CronSchedule(
                    spec.cron,
                    spec.timezone or self.default_timezone,
                    start_date=spec.start_date,
                    end_date=spec.end_date,
                )
            except CronError as e:  # apply checks this; a store edited by hand may still
                log.error("schedule %s cannot run: %s", name, e)
                self._entries.pop(name, None)
                continue
            old = self._entries.get(name)
            known = [old.cursor if old else None, states.get(name), updated.get(name)]
            cursor = max((t for t in known if t is not None), default=self.clock())
            self._entries[name] = _Entry(spec, cron, cursor, cron.next_after(cursor))
            log.info("schedule %s %s", name, "changed" if old else "loaded")
        self._version = rules.version

    def entries(self) -> dict[str, tuple[ScheduleSpec, datetime | None]]:
        """Each schedule this scheduler runs, with its next tick (for status and tests)."""
        return {n: (e.spec, e.next) for n, e in self._entries.items()}

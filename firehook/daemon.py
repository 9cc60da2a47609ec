"""Long-running roles: start them, wait for SIGTERM/SIGINT, stop gracefully, exit 0.

A role is anything with ``name``, ``start()``, ``stop(grace)`` and ``running``: the queue
worker, the HTTP API, the event consumer, the scheduler.  ``run_roles`` starts them in
order, stops them in reverse order, and exits non-zero if one dies on its own.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from datetime import timedelta
from types import FrameType
from typing import Protocol

from sqlalchemy.engine import make_url

from firehook.app import App
from firehook.triggers.broker import connect
from firehook.triggers.consumer import EventConsumer
from firehook.triggers.matching import Matcher
from firehook.triggers.skips import SkipLog

__all__ = ["ConsumerRole", "Role", "SchedulerRole", "WorkerRole", "run_roles", "with_status"]

log = logging.getLogger(__name__)


class Role(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self, grace: timedelta) -> None: ...

    @property
    def running(self) -> bool: ...


class WorkerRole:
    """The queue worker (and, on PostgreSQL, its LISTEN connection)."""

    name = "worker"

    def __init__(self, app: App) -> None:
        self.app = app

    def start(self) -> None:
        worker = self.app.start_worker()
        url = make_url(self.app.settings.database_url).render_as_string(hide_password=True)
        log.info(
            "worker %s: pool %d, concurrency %d, database %s, functions %s",
            worker.name,
            self.app.pool.size,
            worker.concurrency,
            url,
            self.app.settings.functions_dir,
        )

    def stop(self, grace: timedelta) -> None:
        self.app.worker.stop(grace)

    @property
    def running(self) -> bool:
        return self.app.worker.running

    def summary(self) -> str:
        return f"{self.app.worker.completed} run(s)"


class ConsumerRole:
    """The event consumer: broker events become queued runs."""

    name = "consumer"

    def __init__(self, app: App) -> None:
        self.app = app
        self.consumer: EventConsumer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        s = self.app.settings
        self.app.open_db()
        conn = connect(
            s.broker_url, visibility_timeout=s.triggers.visibility_timeout.total_seconds()
        )
        skips = SkipLog(self.app.engine) if s.triggers.record_skipped else None
        self.consumer = EventConsumer(
            conn, self.app.dispatcher, Matcher(self.app.rules.current), s.triggers, skips
        )
        self._thread = threading.Thread(
            target=self.consumer.run_until_stopped, name="firehook-consumer"
        )
        self._thread.start()
        consumer = self.consumer
        self.app.metrics.watch_counters("consumer", "Event consumer", lambda: dict(consumer.stats))
        log.info("consumer: broker %s, batch %d", conn.as_uri(), s.triggers.batch_size)

    def stop(self, grace: timedelta) -> None:
        if self.consumer is not None:
            self.consumer.should_stop = True
        if self._thread is not None:
            self._thread.join(max(grace.total_seconds(), 1.0))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def summary(self) -> str:
        stats = self.consumer.stats if self.consumer is not None else {}
        return (
            f"{stats.get('events', 0)} event(s), {stats.get('runs', 0)} run(s) queued, "
            f"{stats.get('dead_lettered', 0)} dead-lettered"
        )


class SchedulerRole:
    """The cron scheduler and, with it, retention of old runs."""

    name = "scheduler"

    def __init__(self, app: App) -> None:
        self.app = app

    def start(self) -> None:
        self.app.open_db()
        self.app.scheduler.start()
        if self.app.settings.retention.enabled:
            self.app.retention.start()
        sched, retention = self.app.scheduler, self.app.retention
        self.app.metrics.watch_counters(
            "scheduler",
            "Scheduler ticks",
            lambda: {
                "fired": sched.fired,
                "skipped": sched.skipped,
                "rejected": sched.rejected,
                "retention_deleted": retention.deleted_total,
            },
        )
        log.info(
            "scheduler: default time zone %s, lead %.1fs, retention %s",
            self.app.settings.timezone,
            self.app.settings.scheduler.lead.total_seconds(),
            "on" if self.app.settings.retention.enabled else "off",
        )

    def stop(self, grace: timedelta) -> None:
        self.app.retention.stop()
        self.app.scheduler.stop()

    @property
    def running(self) -> bool:
        return self.app.scheduler.running

    def summary(self) -> str:
        s, r = self.app.scheduler, self.app.retention
        return (
            f"{s.fired} run(s) queued, {s.skipped + s.rejected} tick(s) not run, "
            f"{r.deleted_total} old run(s) deleted"
        )


def with_status(app: App, roles: list[Role], *, broker: bool) -> list[Role]:
    """``roles`` with the metrics/health listener first, if ``FIREHOOK_METRICS__PORT`` is set."""
    m = app.settings.metrics
    if m.port is None:
        return roles
    from firehook.status_http import StatusRole

    return [StatusRole(app.metrics, app.health(broker=broker), m.host, m.port), *roles]


def run_roles(app: App, roles: Sequence[Role], title: str) -> int:
    """Run ``roles`` until SIGTERM or SIGINT; returns the process exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    started: list[Role] = []
    code = 0
    try:
        for role in roles:
            role.start()
            started.append(role)
        names = ", ".join(r.name for r in roles)
        print(f"firehook {title} running: {names} (pid {os.getpid()})", flush=True)  # noqa: T201
        while not stop.wait(0.5):
            dead = [r.name for r in started if not r.running]
            if dead:
                log.error("%s stopped unexpectedly; shutting down", ", ".join(dead))
                code = 1
                break
        grace = app.settings.worker.grace_period
        print(f"firehook {title} stopping (grace {grace.total_seconds():g}s)", flush=True)  # noqa: T201
    finally:
        for role in reversed(started):
            try:
                role.stop(app.settings.worker.grace_period)
            except Exception:
                log.exception("stopping %s failed", role.name)
        summaries = [f"{r.name}: {r.summary()}" for r in started if hasattr(r, "summary")]
        print(f"firehook {title} stopped ({'; '.join(summaries) or 'nothing ran'})", flush=True)  # noqa: T201
        app.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code

"""Prometheus metrics and readiness checks of one process (every role shares them).

Counters and histograms are fed by the queue as it records runs (:class:`Metrics` is its
observer); queue depth and the oldest due run are read with one cheap query at scrape time;
the consumer's and the scheduler's own counters are read from them at scrape time too.  Each
:class:`~firehook.app.App` has its own registry, so tests can build many.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select, text

from firehook.config.db import utcnow
from firehook.invoker.records import invocation_table as t
from firehook.triggers.broker import connect

__all__ = ["Health", "Metrics"]

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LAG_BUCKETS = (-1, -0.1, 0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class Metrics:
    """The process's metrics; also the queue's :class:`~invoker.observe.RunObserver`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "firehook_runs",
            "Runs recorded, by function and status",
            ["function", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "firehook_run_duration_seconds",
            "How long runs took, by function",
            ["function"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.start_lag = Histogram(
            "firehook_start_lag_seconds",
            "Claim time minus due time, by event type (timer = cron fire lag)",
            ["event_type"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "firehook_retries",
            "New attempts queued after a failure or a lost worker",
            ["function"],
            registry=r,
        )
        self.dead = Counter(
            "firehook_dead_runs", "Runs that failed their last attempt", ["function"], registry=r
        )

        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: labels() costs more than the update."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # RunObserver ---------------------------------------------------------------------------
    def claimed(self, event_type: str, lag_seconds: float) -> None:
        self._child(self.start_lag, event_type).observe(lag_seconds)

    def finished(self, function: str, status: str, duration_seconds: float | None) -> None:
        self._child(self.runs, function, status).inc()
        if duration_seconds is not None:
            self._child(self.duration, function).observe(duration_seconds)
        if status == "dead":
            self._child(self.dead, function).inc()

    def retried(self, function: str) -> None:
        self._child(self.retries, function).inc()

    # scrape-time collectors ----------------------------------------------------------------
    def watch_queue(self, engine: Engine) -> None:
        self.registry.register(_QueueCollector(engine))

    def watch_counters(self, prefix: str, what: str, read: Callable[[], dict[str, int]]) -> None:
        """Expose ``read()``'s counts as ``firehook_<prefix>_<name>_total`` counters."""
        self.registry.register(_CountersCollector(prefix, what, read))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _QueueCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        waiting = t.c.status == "waiting"
        try:
            with self.engine.connect() as conn:
                due, oldest = conn.execute(
                    select(func.count(), func.min(t.c.due_at)).where(waiting, t.c.due_at <= now)
                ).one()
                executing = conn.execute(
                    select(func.count()).where(t.c.status == "executing")
                ).scalar_one()
        except Exception as e:  # a scrape must not fail because the database is away
            log.warning("metrics: could not read the queue: %s", type(e).__name__)
            return
        yield GaugeMetricFamily("firehook_queue_due", "Waiting runs due now", value=due)
        yield GaugeMetricFamily("firehook_queue_executing", "Runs being executed", value=executing)
        age = 0.0 if oldest is None else max(0.0, (now - _aware(oldest)).total_seconds())
        yield GaugeMetricFamily(
            "firehook_queue_oldest_due_seconds", "How long the oldest due run has waited", value=age
        )


def _aware(value: Any) -> Any:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _CountersCollector(Collector):
    def __init__(self, prefix: str, what: str, read: Callable[[], dict[str, int]]) -> None:
        self.prefix, self.what, self.read = prefix, what, read

    def collect(self) -> Iterator[Metric]:
        for name, value in sorted(self.read().items()):
            yield CounterMetricFamily(
                f"firehook_{self.prefix}_{name}", f"{self.what}: {name}", value=value
            )


class Health:
    """``/readyz``: is the database (and, for roles that use it, the broker) reachable?"""

    def __init__(
        self, engine: Engine, broker_url: str | None, timeout: timedelta, cache: float = 1.0
    ) -> None:
        self.engine = engine
        self.broker_url = broker_url
        self.timeout = timeout
        self.cache = cache
        self._lock = threading.Lock()
        self._last: tuple[float, list[str]] = (-1e9, [])

    def problems(self) -> list[str]:
        """What is not reachable (empty when ready); checked at most once a second."""
        with self._lock:
            at, problems = self._last
            if time.monotonic() - at < self.cache:
                return problems
            problems = [p for p in (self._database(), self._broker()) if p]
            self._last = (time.monotonic(), problems)
            return problems

    def _database(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as e:
            return f"database unreachable ({type(e).__name__})"
        return None

    def _broker(self) -> str | None:
        if self.broker_url is None:
            return None
        conn = connect(self.broker_url)
        try:
            conn.ensure_connection(max_retries=1, timeout=self.timeout.total_seconds())
        except Exception as e:
            return f"broker unreachable ({type(e).__name__})"
        finally:
            conn.release()
        return None

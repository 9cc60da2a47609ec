"""The composition root: builds every part from one :class:`Settings`.

Constructors here and in the parts open nothing; :meth:`App.start` prepares the schema and
starts the pool.  Commands that only read records call :meth:`App.open_db` instead.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from types import TracebackType

from sqlmodel import SQLModel

from firehook.config import FunctionOptions, Settings, create_db_engine, ensure_schema, is_sqlite
from firehook.config.rules import RulesStore, RulesView
from firehook.config.schema import require_database
from firehook.invoker.dispatch import Dispatcher
from firehook.invoker.pool import Pool
from firehook.invoker.queue import Queue
from firehook.invoker.registry import Registry
from firehook.invoker.store import InvocationStore
from firehook.invoker.wakeup import PgListener, Wakeup
from firehook.invoker.worker import Worker
from firehook.metrics import Health, Metrics
from firehook.scheduler.retention import Retention
from firehook.scheduler.runner import Scheduler
from firehook.triggers.skips import TriggerSkip

__all__ = ["App"]

TABLES = (TriggerSkip,)  # modules whose tables open_db() creates, besides invoker and config

log = logging.getLogger(__name__)


class App:
    """Every part of firehook, wired; nothing started."""

    def __init__(self, settings: Settings | None = None, *, pool_size: int | None = None) -> None:
        self.settings = settings or Settings()
        s = self.settings
        self.engine = create_db_engine(s.database_url, busy_timeout=s.database_busy_timeout)
        self.registry = Registry(s.functions_dir)
        self.pool = Pool(
            s.functions_dir,
            size=pool_size or s.invoker.pool_size,
            memory_limit_mb=s.invoker.memory_limit_mb,
            log_limit_bytes=s.invoker.log_limit_bytes,
            result_limit_bytes=s.invoker.result_limit_bytes,
            acquire_timeout=s.invoker.acquire_timeout,
            max_tasks_per_worker=s.invoker.max_tasks_per_worker,
            start_method=s.invoker.start_method,
        )
        self.store = InvocationStore(self.engine)
        self.wakeup = Wakeup()
        self.metrics = Metrics()
        self.metrics.watch_queue(self.engine)
        self.queue = Queue(
            self.engine,
            on_enqueue=self.wakeup.notify,
            notify_within=s.worker.poll_interval,
            observer=self.metrics,
            limits=self.function_limits,
        )
        self.dispatcher = Dispatcher(
            self.registry,
            self.pool,
            self.store,
            s.invoker,
            queue=self.queue,
            default_retry=s.retry,
            options_for=self.function_options,
        )
        self.worker = Worker(self.dispatcher, s.worker, wakeup=self.wakeup)
        self.listener = None if is_sqlite(self.engine) else PgListener(self.engine, self.wakeup)
        self.rules_store = RulesStore(self.engine)
        self.rules = RulesView(self.rules_store)
        # the workers' own view: their claim loop reads it constantly, and must not pin the
        # shared view (API, consumer) to what it saw before the first rules were applied
        self._limits_view = RulesView(self.rules_store)
        self.scheduler = Scheduler(
            self.dispatcher,
            RulesView(self.rules_store, refresh=s.scheduler.refresh),
            s.scheduler,
            default_timezone=s.timezone,
        )
        self.retention = Retention(self.engine, s.retention)
        self._db_ready = False

    def health(self, *, broker: bool) -> Health:
        """Readiness checks of the database and, with ``broker``, of the events broker."""
        s = self.settings
        return Health(self.engine, s.broker_url if broker else None, s.metrics.check_timeout)

    def function_limits(self) -> dict[str, FunctionOptions]:
        """Functions with a ``max_concurrency`` or a ``rate`` (applied config over settings)."""
        applied = self._limits_view.current().functions if self._db_ready else {}
        merged = {**self.settings.functions, **applied}
        return {name: o for name, o in merged.items() if o.limited}

    def function_options(self, name: str) -> FunctionOptions:
        """Options from the applied config file, else from settings, else defaults."""
        applied = self.rules.current().functions.get(name) if self._db_ready else None
        return applied or self.settings.functions.get(name) or FunctionOptions()

    def open_db(self, *, create: bool = True) -> App:
        """Create or upgrade the schema (first use of a database).

        ``create=False`` (commands that only read): a database firehook never used is
        refused with :class:`~firehook.config.errors.NoDatabase`, and nothing is created.
        """
        if not self._db_ready:
            if not create:
                require_database(self.engine)
            ensure_schema(self.engine, SQLModel.metadata)
            self._db_ready = True
        return self

    def start(self) -> App:
        self.open_db()
        self.pool.start()
        return self

    def start_worker(self) -> Worker:
        """Start the pool (if needed), the queue worker and, on PostgreSQL, its listener."""
        self.start()
        if self.listener is not None:
            self.listener.start()
        return self.worker.start()

    def close(self) -> None:
        if self.scheduler.running:
            self.scheduler.stop()
        self.retention.stop()
        if self.worker.running:
            self.worker.stop()
        if self.listener is not None:
            self.listener.stop()
        # the roles have drained by now (runs finished or released, requests answered):
        # what still runs in the pool was given up, so a short wait is enough
        self.pool.close(grace=timedelta(seconds=1))
        self.engine.dispose()

    def __enter__(self) -> App:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

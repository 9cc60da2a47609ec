"""The composition root: builds every part from one :class:`Settings`.

Constructors here and in the parts open nothing; :meth:`App.start` prepares the schema and
starts the pool.  Commands that only read records call :meth:`App.open_db` instead.
"""

from __future__ import annotations

import logging
from types import TracebackType

from sqlmodel import SQLModel

from config import Settings, create_db_engine, ensure_schema
from invoker.dispatch import Dispatcher
from invoker.pool import Pool
from invoker.registry import Registry
from invoker.store import InvocationStore

__all__ = ["App"]

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
            acquire_timeout=s.invoker.acquire_timeout,
            max_tasks_per_worker=s.invoker.max_tasks_per_worker,
            start_method=s.invoker.start_method,
        )
        self.store = InvocationStore(self.engine)
        self.dispatcher = Dispatcher(self.registry, self.pool, self.store, s.invoker)
        self._db_ready = False

    def open_db(self) -> App:
        """Create or upgrade the schema (first use of a database)."""
        if not self._db_ready:
            ensure_schema(self.engine, SQLModel.metadata)
            self._db_ready = True
        return self

    def start(self) -> App:
        self.open_db()
        self.pool.start()
        return self

    def close(self) -> None:
        self.pool.close()
        self.engine.dispose()

    def __enter__(self) -> App:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

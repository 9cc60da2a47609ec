"""The database engine factory and transaction helpers, for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event, exc
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.types import TypeDecorator

from firehook.config.errors import ConfigError, DatabaseError

__all__ = ["UTCDateTime", "create_db_engine", "is_sqlite", "utcnow", "write_tx"]

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive, in UTC)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(DateTime(timezone=dialect.name != "sqlite"))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: firehook stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


PING_AFTER = timedelta(seconds=1)


def _ping_when_idle(engine: Engine, after: timedelta) -> None:
    """Check a pooled PostgreSQL connection before use only when it sat idle for ``after``.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, and the queue's
    claims and completions check out a connection for every transaction (a third of the
    statements the worker sent were pings).  A connection used within ``after`` was alive
    then; one that died since fails its transaction with a disconnect, on which SQLAlchemy
    replaces every pooled connection, so at most one transaction per process sees a restart.
    A failed ping raises ``DisconnectionError``: the pool then connects afresh.
    """
    idle_for = after.total_seconds()

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["firehook_used_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        used_at = record.info.get("firehook_used_at")
        if used_at is None or time.monotonic() - used_at < idle_for:
            return  # new (just connected) or recently used
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:  # any failure of the ping means: do not use this connection
            raise exc.DisconnectionError(f"pooled connection failed its ping: {e}") from e


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def create_db_engine(
    url: str,
    *,
    busy_timeout: timedelta = timedelta(seconds=10),
    ping_after: timedelta = PING_AFTER,
) -> Engine:
    """Build an engine for ``sqlite:///file.db`` or ``postgresql[+psycopg]://...``.

    A pooled PostgreSQL connection idle for ``ping_after`` is checked before use.
    SQLite gets WAL, ``synchronous=NORMAL``, a busy timeout and explicit ``BEGIN`` so that
    write transactions can start with ``BEGIN IMMEDIATE`` (see :func:`write_tx`).
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ConfigError(f"FIREHOOK_DATABASE_URL is not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_size=10, max_overflow=20, hide_parameters=True)
        _ping_when_idle(engine, ping_after)
        return engine
    if backend != "sqlite":
        raise ConfigError(
            f"unsupported database {backend!r} in FIREHOOK_DATABASE_URL: use sqlite or postgresql"
        )
    engine = create_engine(
        parsed,
        connect_args={"timeout": busy_timeout.total_seconds(), "check_same_thread": False},
        pool_size=20,
        max_overflow=20,
        hide_parameters=True,
    )
    busy_ms = int(busy_timeout.total_seconds() * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
        if parsed.database not in (None, "", ":memory:"):
            _set_wal(cur)
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_writer_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_writer_locks_guard = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock:
    with _writer_locks_guard:
        lock = _writer_locks.get(engine)
        if lock is None:
            lock = _writer_locks[engine] = threading.Lock()
        return lock


def _set_wal(cur: Any) -> None:
    """Switch a new database file to WAL.  The switch needs an exclusive lock that SQLite's
    busy handler does not wait for, so processes opening a fresh file together retry."""
    for attempt in range(50):
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 49:
                raise
            time.sleep(0.02 * (attempt + 1))


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite it takes the write lock at once (``BEGIN IMMEDIATE``).

    A deferred SQLite transaction that reads and then writes fails with ``SQLITE_BUSY`` at
    once instead of waiting for the busy timeout; taking the lock first avoids that.  On
    SQLite the threads of one process also queue on an in-process lock, so they take turns
    in order instead of sleeping in SQLite's busy handler (other processes still wait on it).
    """
    lock = _writer_lock(engine) if is_sqlite(engine) else None
    try:
        if lock is not None:
            lock.acquire()
        with engine.connect() as conn:
            if lock is not None:
                conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn
    except exc.OperationalError as e:
        raise DatabaseError(f"database error: {e.orig}") from e
    finally:
        if lock is not None:
            lock.release()

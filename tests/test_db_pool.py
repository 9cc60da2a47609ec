"""Pooled PostgreSQL connections: checked before use only after sitting idle.

Each test cuts the connection for real, with ``pg_terminate_backend`` on the real server.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from firehook.config import create_db_engine
from firehook.config.db import write_tx
from firehook.config.errors import DatabaseError

pytestmark = pytest.mark.postgres


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(admin_url: str, pid: int) -> None:
    admin = create_db_engine(admin_url)
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        deadline = time.monotonic() + 5
        with admin.connect() as conn:
            while conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
            ).scalar_one():
                assert time.monotonic() < deadline, "the backend did not go away"
                time.sleep(0.02)
    finally:
        admin.dispose()


def test_an_idle_connection_that_died_is_replaced_before_use(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url, ping_after=timedelta(milliseconds=200))
    try:
        pid = _backend_pid(engine)
        _terminate(postgres_url, pid)
        time.sleep(0.3)  # idle longer than ping_after: checked on checkout
        with write_tx(engine) as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


def test_a_recently_used_connection_is_not_pinged_and_one_failure_renews_the_pool(
    postgres_url: str,
) -> None:
    engine = create_db_engine(postgres_url, ping_after=timedelta(seconds=60))
    try:
        pid = _backend_pid(engine)
        _terminate(postgres_url, pid)
        # used moments ago, so no ping: the transaction meets the cut connection
        with pytest.raises(DatabaseError, match="database error"), write_tx(engine) as conn:
            conn.execute(text("SELECT 1"))
        # SQLAlchemy saw a disconnect and replaced the pool: the next one works
        with write_tx(engine) as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()

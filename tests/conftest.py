"""Shared fixtures: real SQLite and the real PostgreSQL, and a folder of test functions.

Whether a missing service skips or fails is decided here only: in CI (``CI=true``) a
missing PostgreSQL fails the run; on a developer's machine those tests skip.
"""

from __future__ import annotations

import os
import secrets
import signal
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from firehook.config import create_db_engine, ensure_schema
from firehook.invoker.pool import Pool

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_ADMIN_URL = os.environ.get(
    "FIREHOOK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

FUNCTIONS = {
    "hello.py": """
        def main(event):
            return f"hello {(event.data or {}).get('name', 'world')}"
    """,
    "echo.py": """
        def main(event):
            return {"data": event.data, "event_type": event.event_type, "job_id": event.job_id,
                    "attempt": event.attempt, "time_limit_ms": event.time_limit_ms,
                    "memory_limit_mb": event.memory_limit_mb, "request": event.request}
    """,
    "callbackStyle.py": """
        def main(event, callback):
            callback(None, {"got": event.data})
    """,
    "callbackError.py": """
        def main(event, callback):
            callback("card declined")
    """,
    "asyncStyle.py": """
        import asyncio

        async def main(event):
            await asyncio.sleep(0.01)
            return "awaited"
    """,
    "boom.py": """
        def helper():
            raise ValueError("boom")

        def main(event):
            helper()
    """,
    "spin.py": """
        def main(event):
            while True:
                pass
    """,
    "sleepy.py": """
        import time

        def main(event):
            time.sleep((event.data or {}).get("seconds", 0.2))
            return "slept"
    """,
    "exitZero.py": """
        import os

        def main(event):
            os._exit(0)
    """,
    "exitOne.py": """
        import os

        def main(event):
            os._exit(1)
    """,
    "segfault.py": """
        import ctypes

        def main(event):
            ctypes.string_at(0)
    """,
    "hog.py": """
        def main(event):
            block = bytearray(2 * 1024 * 1024 * 1024)
            return len(block)
    """,
    "chatty.py": """
        import logging
        import sys

        def main(event):
            print("to stdout")
            print("to stderr", file=sys.stderr)
            logging.getLogger("shop").info("an info line")
            return "ok"
    """,
    "flood.py": """
        def main(event):
            line = "x" * 1023 + "\\n"
            for _ in range(10 * 1024):
                print(line, end="")
            return "flooded"
    """,
    "notJson.py": """
        def main(event):
            return {1, 2, 3}
    """,
    "badImport.py": """
        import module_that_does_not_exist

        def main(event):
            return 1
    """,
    "syntaxError.py": """
        def main(event)
            return 1
    """,
    "noMain.py": """
        def helper(event):
            return 1
    """,
    "pkgFunc/__init__.py": """
        from .util import greet

        def main(event):
            return greet(event.data)
    """,
    "pkgFunc/util.py": """
        def greet(data):
            return f"pkg says {data}"
    """,
}


def write_functions(folder: Path, sources: dict[str, str] = FUNCTIONS) -> Path:
    for rel, source in sources.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return folder


@pytest.fixture
def functions_dir(tmp_path: Path) -> Path:
    return write_functions(tmp_path / "functions")


def kill_idle_workers(pool: Pool) -> None:
    """SIGKILL both idle processes of a pool of 2 and put them back, dead, as if idle."""
    idle = [pool._idle.get(), pool._idle.get()]
    for w in idle:
        os.kill(w.pid, signal.SIGKILL)
        w.process.join(5)
        pool._idle.put(w)


@pytest.fixture
def pool(functions_dir: Path) -> Iterator[Pool]:
    with Pool(functions_dir, size=2, memory_limit_mb=512, log_limit_bytes=64 * 1024) as p:
        yield p


def _postgres_or_skip() -> Engine:
    engine = create_db_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:
        engine.dispose()
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {e}")
    return engine


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards."""
    with fresh_postgres_schema() as url:
        yield url


@contextmanager
def fresh_postgres_schema(prefix: str = "fh_test") -> Iterator[str]:
    """A URL of the real PostgreSQL whose search_path is a new schema, dropped afterwards."""
    admin = _postgres_or_skip()
    schema = f"{prefix}_{secrets.token_hex(6)}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_ADMIN_URL else "?"
    try:
        yield f"{PG_ADMIN_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'firehook.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_db_engine(db_url)
    ensure_schema(eng, SQLModel.metadata)
    yield eng
    eng.dispose()

"""Small helpers shared by the benchmark scripts: figures, the services, scratch schemas,
a throw-away project folder and firehook role processes."""

from __future__ import annotations

import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url, text

from firehook.config import create_db_engine

PG = os.environ.get(
    "FIREHOOK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RABBIT = os.environ.get("FIREHOOK_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
TRIVIAL = "def main(event):\n    return 1\n"
ORDER_RULE = """
version: 1
triggers:
  - name: on-order
    on: {table: orders, events: [on_create]}
    invoke: trivial
"""


@dataclass
class Figures:
    name: str
    n: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        return self.pct(0.99)


def measure(name: str, call: Callable[[], object], n: int, concurrency: int = 1) -> Figures:
    """Run ``call`` n times (from ``concurrency`` threads) and keep each latency."""
    latencies: list[float] = []

    def one(_: int) -> None:
        t0 = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            one(i)
    else:
        with ThreadPoolExecutor(concurrency) as ex:
            list(ex.map(one, range(n)))
    return Figures(name, n, time.perf_counter() - start, latencies)


def header(title: str) -> None:
    print(f"# {title}")
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")


def table(rows: list[Figures], baseline: Figures) -> None:
    print(f"{'case':<44} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'ops/s':>9} {'p50-base':>9}")
    for r in rows:
        print(
            f"{r.name:<44} {r.n:>6} {r.p50:>8.3f} {r.p99:>8.3f} {r.rate:>9.0f} "
            f"{r.p50 - baseline.p50:>+9.3f}"
        )


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))]


@contextmanager
def scratch_schema() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema, dropped afterwards: (SQLAlchemy URL, libpq conninfo), each
    with the schema on its search path."""
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_db_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        url = f"{PG}{'&' if '?' in PG else '?'}options=-csearch_path%3D{schema}"
        u = make_url(PG)
        dsn = (
            f"host={u.host or '127.0.0.1'} port={u.port or 5432} dbname={u.database} "
            f"user={u.username or 'postgres'} options='-csearch_path={schema}'"
        )
        if u.password:
            dsn += f" password={u.password}"
        yield url, dsn
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def project() -> Iterator[Path]:
    """A temporary project folder whose ``functions/`` holds ``trivial`` (returns 1)."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "functions").mkdir()
        (cwd / "functions" / "trivial.py").write_text(TRIVIAL)
        yield cwd


def role_env(db_url: str, cwd: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its FIREHOOK_* settings, plus the database, the
    project's functions and ``settings`` (FIREHOOK_ names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
    env.update(FIREHOOK_DATABASE_URL=db_url, FIREHOOK_FUNCTIONS_DIR=str(cwd / "functions"))
    env.update(settings)
    return env


def start_role(role: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``firehook <role>`` as a process, returned once it says it is running."""
    p = subprocess.Popen(
        [sys.executable, "-m", "firehook", role],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert p.stdout is not None
    if "running" not in p.stdout.readline():
        p.kill()
        p.wait(10)
        raise SystemExit(f"firehook {role} did not start")
    return p


def stop_roles(procs: list[subprocess.Popen[str]], wait: float = 30.0) -> None:
    """SIGTERM to each, then wait for all (they stop gracefully)."""
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(wait)

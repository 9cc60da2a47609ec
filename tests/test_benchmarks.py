"""The benchmark runner writes its page, and records a failing script as failed.

Smoke runs with small counts: they check that every part runs against the real services
(firehook roles, Celery and Dramatiq workers on RabbitMQ and PostgreSQL), not the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_ALL = ROOT / "benchmarks" / "run_all.py"


def run_all(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_ALL), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_writes_the_page_with_every_setup(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    proc = run_all("--quick", "--only", "invoke,e2e", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = out.read_text()
    assert "## Machine" in page
    assert "PostgreSQL: " in page and "RabbitMQ: " in page
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    assert f"- code: commit {head.stdout.decode().strip()}" in page
    assert "| invoke | `python benchmarks/invoke.py --n 300 --no-pebble` |" in page
    assert "| ok |" in page and "failed" not in page
    for setup in ("firehook: consumer + 1 worker", "firehook: consumer + 2 workers"):
        assert setup in page
    assert "Celery 5 (prefork 2, acks_late)" in page
    assert "Dramatiq (2 processes x 8 threads)" in page
    assert "live: best firehook" in page and "x\n" in page
    assert "cpu seconds:" in page  # where the CPU went, per case


def test_a_failing_script_is_recorded_as_failed(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    env = {
        **os.environ,
        "FIREHOOK_BENCH_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test",
    }
    proc = run_all("--quick", "--only", "events", "--out", str(out), env=env)
    assert proc.returncode == 1
    page = out.read_text()
    assert "| events |" in page and "**failed** (exit 1)" in page
    assert "Connection refused" in page or "connection failed" in page


def test_an_unknown_script_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_all("--only", "nope", "--out", str(tmp_path / "x.md"))
    assert proc.returncode == 2
    assert "unknown script(s): nope" in proc.stderr
    assert not (tmp_path / "x.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--peers", "nope"], "unknown peer 'nope'"),
        (["--modes", "sometimes"], "--modes takes live and/or filled"),
        (["--set", "WORKER__BATCH_SIZE=32"], "--set takes FIREHOOK_NAME=VALUE"),
        (["--set", "FIREHOOK_WORKER__BATCH_SIZE"], "--set takes FIREHOOK_NAME=VALUE"),
    ],
)
def test_e2e_refuses_bad_arguments_before_touching_anything(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "e2e.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert message in proc.stderr

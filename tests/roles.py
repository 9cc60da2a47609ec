"""Roles as users run them: ``firehook <role>`` in its own process, with its output kept.

Used by the metrics tests and the crash tests in ``tests/chaos/``.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

RABBIT = "amqp://guest:guest@127.0.0.1:5672//"


def role_env(db_url: str, functions_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
    env.update(
        FIREHOOK_DATABASE_URL=db_url,
        FIREHOOK_FUNCTIONS_DIR=str(functions_dir),
        FIREHOOK_BROKER_URL=RABBIT,
        FIREHOOK_WORKER__LEASE="2s",
        FIREHOOK_WORKER__GRACE_PERIOD="1s",
        FIREHOOK_RETRY__BACKOFF="0s",
        FIREHOOK_RETRY__MAX_BACKOFF="0s",
        FIREHOOK_RETRY__JITTER="0",
    )
    env.update(extra)
    return env


class RoleProcess:
    """``firehook <role>``; waits for its "running" line; a thread keeps reading its output."""

    def __init__(self, role: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> None:
        self.role = role
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firehook", role],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.metrics_url: str | None = None
        started = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(started,), daemon=True)
        self._reader.start()
        if not started.wait(timeout):
            self.kill()
            pytest.fail(f"firehook {role} did not start: {''.join(self.lines)[-2000:]}")

    def _read(self, started: threading.Event) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"firehook metrics: (http://\S+)/metrics", line)
            if m:
                self.metrics_url = m.group(1)
            if " running: " in line:
                started.set()
        started.set()  # the process ended: the caller sees it did not start
        self.proc.stdout.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"firehook {self.role} ignored SIGTERM for {timeout}s")
        self._reader.join(5)
        return code

    def output(self) -> str:
        return "".join(self.lines)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def scrape(base_url: str) -> dict[str, float]:
    """``/metrics`` as {'name{labels}': value} (no comments)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbit_vhost() -> Iterator[str]:
    """The real RabbitMQ on a vhost of its own (other test sessions share the broker):
    fails in CI, skips locally when RabbitMQ is absent; the vhost is deleted afterwards."""
    from tests.trigger_support import reachable as _reachable

    _reachable(RABBIT)
    vhost = f"firehook-test-{secrets.token_hex(4)}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)

"""Celery and Dramatiq doing the same work as firehook in ``benchmarks/e2e.py``.

Each peer gets the same event documents as task arguments, records each with one
PostgreSQL insert (``_celery_app.py``, ``_dramatiq_app.py``), and runs as its own worker
command on the same RabbitMQ.  Needs ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kombu import Connection

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    module: str
    queue_env: str
    command: list[str]
    consumers: int  # consumers on the queue once every worker process is ready
    extra_queues: tuple[str, ...]  # suffixes of queues the peer declares beside its own

    def installed(self) -> bool:
        return importlib.util.find_spec(self.name) is not None

    def queue_names(self, queue: str) -> list[str]:
        """``queue`` and the queues the peer declares beside it."""
        return [queue] + [queue + suffix for suffix in self.extra_queues]


PEERS = {
    "celery": Peer(
        "celery",
        "Celery 5 (prefork 2, acks_late)",
        "benchmarks._celery_app",
        "BENCH_CELERY_QUEUE",
        [
            *(sys.executable, "-m", "celery", "-A", "benchmarks._celery_app", "worker"),
            *("--pool", "prefork", "--concurrency", "2", "--loglevel", "WARNING"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        1,
        (),
    ),
    "dramatiq": Peer(
        "dramatiq",
        "Dramatiq (2 processes x 8 threads)",
        "benchmarks._dramatiq_app",
        "BENCH_DRAMATIQ_QUEUE",
        [sys.executable, "-m", "dramatiq", "benchmarks._dramatiq_app", "--processes", "2"],
        2,
        (".DQ", ".XQ"),
    ),
}


def pika_url(kombu_url: str) -> str:
    """kombu writes the default virtual host as ``//``; pika wants ``/%2F``."""
    return kombu_url[:-1] + "%2F" if kombu_url.endswith("//") else kombu_url


def consumers_on(amqp_url: str, queue: str) -> int:
    """Consumers attached to ``queue`` (0 if it does not exist yet)."""
    with Connection(amqp_url) as conn:
        channel = conn.channel()
        try:
            _name, _messages, consumers = channel.queue_declare(queue, passive=True)
            return int(consumers)
        except Exception:  # NOT_FOUND closes the channel; the queue is declared later
            return 0


def delete_queues(amqp_url: str, names: list[str]) -> None:
    _each_queue(amqp_url, names, "queue_delete")


def purge_queues(amqp_url: str, names: list[str]) -> None:
    _each_queue(amqp_url, names, "queue_purge")


def _each_queue(amqp_url: str, names: list[str], method: str) -> None:
    """``channel.<method>(name)`` for each queue, skipping queues that were never declared
    (NOT_FOUND closes the channel, so each gets a channel of its own)."""
    with Connection(amqp_url) as conn:
        for name in names:
            channel = conn.channel()
            try:
                getattr(channel, method)(name)
            except Exception:  # never declared
                continue
            finally:
                try:
                    channel.close()
                except Exception:
                    continue


class PeerRun:
    """One peer's worker command plus the publisher, for one queue."""

    def __init__(self, peer: Peer, amqp_url: str, pg_dsn: str, queue: str, table: str) -> None:
        self.peer = peer
        self.amqp_url = amqp_url
        self.queue = queue
        self.env = {
            **os.environ,
            "BENCH_AMQP_URL": pika_url(amqp_url) if peer.name == "dramatiq" else amqp_url,
            "BENCH_PG_DSN": pg_dsn,
            "BENCH_TABLE": table,
            peer.queue_env: queue,
            "PYTHONPATH": str(ROOT),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        fd, name = tempfile.mkstemp(prefix=f"bench-{peer.name}-", suffix=".log")
        os.close(fd)
        self.log = Path(name)

    def sender(self) -> Callable[[dict[str, Any]], object]:
        """How a user of this peer publishes one task (imported here, configured by env)."""
        for key in ("BENCH_AMQP_URL", "BENCH_TABLE", self.peer.queue_env):
            os.environ[key] = self.env[key]
        module = importlib.import_module(self.peer.module)
        if self.peer.name == "celery":
            return module.record.delay  # type: ignore[no-any-return]
        return module.record.send  # type: ignore[no-any-return]

    def start(self, wait_ready: bool = True) -> None:
        with self.log.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.peer.command, env=self.env, cwd=ROOT, stdout=log, stderr=log
            )
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while consumers_on(self.amqp_url, self.queue) < self.peer.consumers:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"{self.peer.name} worker exited:\n{self.output()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.peer.name} worker not ready in {timeout:g}s")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        """Stop the worker and empty its queues; e2e.py deletes them at the end of the run (the
        publishing side caches what it declared, so a queue deleted between cases would
        silently drop the next case's messages)."""
        self.stop()
        purge_queues(self.amqp_url, self.peer.queue_names(self.queue))
        self.log.unlink(missing_ok=True)

"""The Celery side of ``benchmarks/e2e.py``: one task that records each event with one
PostgreSQL insert (``acks_late``, RabbitMQ broker, no result backend).

Started by e2e.py as ``celery -A benchmarks._celery_app worker --pool prefork
--concurrency 2`` with ``BENCH_AMQP_URL``, ``BENCH_CELERY_QUEUE``, ``BENCH_PG_DSN`` and
``BENCH_TABLE`` in the environment.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from celery import Celery

QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench.celery")
TABLE = os.environ.get("BENCH_TABLE", "peer_run")

app = Celery("bench", broker=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1//"))
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_conn: dict[int, psycopg.Connection[Any]] = {}


def _db() -> psycopg.Connection[Any]:
    pid = os.getpid()  # one connection per prefork child, opened after the fork
    if pid not in _conn:
        _conn[pid] = psycopg.connect(os.environ["BENCH_PG_DSN"], autocommit=True)
    return _conn[pid]


@app.task(name="bench.record")
def record(event: dict[str, Any]) -> None:
    _db().execute(
        f"INSERT INTO {TABLE} (seq, done_at) VALUES (%s, clock_timestamp())",
        (event["data"]["after"]["id"],),
    )

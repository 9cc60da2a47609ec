"""The Dramatiq side of ``benchmarks/e2e.py``: one actor that records each event with one
PostgreSQL insert (RabbitMQ broker; Dramatiq acks after the actor returns).

Started by e2e.py as ``dramatiq benchmarks._dramatiq_app --processes 2`` (Dramatiq's
default 8 threads each) with ``BENCH_AMQP_URL``, ``BENCH_DRAMATIQ_QUEUE``, ``BENCH_PG_DSN`` and
``BENCH_TABLE`` in the environment.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import dramatiq
import psycopg
from dramatiq.brokers.rabbitmq import RabbitmqBroker

QUEUE = os.environ.get("BENCH_DRAMATIQ_QUEUE", "bench.dramatiq")
TABLE = os.environ.get("BENCH_TABLE", "peer_run")

broker = RabbitmqBroker(url=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1//"))
dramatiq.set_broker(broker)

_local = threading.local()


def _db() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None:  # one connection per worker thread
        conn = _local.conn = psycopg.connect(os.environ["BENCH_PG_DSN"], autocommit=True)
    return conn


@dramatiq.actor(queue_name=QUEUE, max_retries=3)
def record(event: dict[str, Any]) -> None:
    _db().execute(
        f"INSERT INTO {TABLE} (seq, done_at) VALUES (%s, clock_timestamp())",
        (event["data"]["after"]["id"],),
    )

"""Events end to end: publish N events that each match one rule, until every run is fulfilled.

Run: ``python benchmarks/events.py [--n 5000]``.  Two setups, each with a `firehook consumer`
and a `firehook worker` process: RabbitMQ + PostgreSQL (127.0.0.1), and the embedded
defaults (SQLite store, the durable SQLite event transport).  Beside each, the ceiling: raw
kombu publishing N messages and consuming+acking them on the same broker, in this run.
Target (issue 5): at least 1,500 events/s end to end on RabbitMQ + PostgreSQL.
"""

from __future__ import annotations

import _pathfix  # noqa: F401  (first: benchmarks/queue.py shadows the stdlib)

# isort: split
import argparse
import secrets
import tempfile
import threading
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue

from benchmarks._common import (
    ORDER_RULE,
    RABBIT,
    header,
    project,
    role_env,
    scratch_schema,
    start_role,
    stop_roles,
)
from firehook.app import App
from firehook.config import Settings
from firehook.config.loader import parse_config
from firehook.triggers.broker import connect, events_queue
from firehook.triggers.events import change_event
from firehook.triggers.publisher import Publisher


def ceiling(url: str, n: int) -> float:
    """Raw kombu: publish n messages and consume+ack them concurrently; messages/s."""
    conn = connect(url) if url.startswith("sqla+") else Connection(url)
    exchange = Exchange("bench.ceiling", "topic", durable=True)
    queue = Queue(f"bench.ceiling.{secrets.token_hex(3)}", exchange, routing_key="#", durable=True)
    body = change_event("orders", "on_create", after={"id": 1}).model_dump_json().encode()
    got = 0
    done = threading.Event()

    def consume() -> None:
        nonlocal got
        with conn.clone() as c:

            def on_message(message: object) -> None:
                nonlocal got
                message.ack()  # type: ignore[attr-defined]
                got += 1
                if got >= n:
                    done.set()

            with Consumer(
                c, queues=[queue], on_message=on_message, prefetch_count=400, accept=None
            ):
                while not done.is_set():
                    try:
                        c.drain_events(timeout=0.5)
                    except TimeoutError:
                        continue

    with conn.clone() as c:
        queue(c.default_channel).declare()
    t0 = time.perf_counter()
    consumer = threading.Thread(target=consume)
    consumer.start()
    with conn.clone() as c:
        producer = Producer(c.default_channel, exchange=exchange)
        for _ in range(n):
            producer.publish(body, routing_key="orders.on_create", declare=[queue], delivery_mode=2)
    done.wait(300)
    rate = n / (time.perf_counter() - t0)
    consumer.join(10)
    with conn.clone() as c:
        queue(c.default_channel).delete()
    conn.release()
    return rate


def end_to_end(name: str, db_url: str, broker_url: str, n: int, ceil: float) -> None:
    with project() as cwd:
        settings = Settings(
            database_url=db_url, functions_dir=cwd / "functions", broker_url=broker_url
        )
        app = App(settings).open_db()
        app.rules_store.apply(parse_config(ORDER_RULE).config, "bench")
        with connect(broker_url) as conn:  # start from an empty queue
            q = events_queue()(conn.default_channel)
            q.declare()
            q.purge()
        env = role_env(db_url, cwd, FIREHOOK_BROKER_URL=broker_url)
        procs = [start_role(role, env, cwd) for role in ("consumer", "worker")]
        events = [change_event("orders", "on_create", after={"id": i}) for i in range(n)]
        t0 = time.perf_counter()
        with Publisher(broker_url) as pub:
            pub.publish_many(events)
        published = time.perf_counter() - t0
        deadline = time.monotonic() + 600
        consumed = None
        while app.store.count("fulfilled") < n:
            if consumed is None and app.store.count() >= n:
                consumed = time.perf_counter() - t0
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: only {app.store.count('fulfilled')} of {n} in 600 s")
            time.sleep(0.1)
        total = time.perf_counter() - t0
        consumed = consumed or total
        stop_roles(procs)
        app.close()
    rate = n / total
    print(
        f"{name:<24} {n} events: publish {n / published:,.0f}/s, end to end "
        f"{rate:,.0f} events/s ({total:.2f} s); raw kombu ceiling {ceil:,.0f} msg/s; "
        f"ratio {rate / ceil:.2f}; all {n} runs were queued after {consumed:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--only", choices=["rabbitmq", "embedded"], default=None)
    args = parser.parse_args()
    header(f"benchmarks/events.py: {args.n} events -> {args.n} fulfilled runs")
    if args.only in (None, "rabbitmq"):
        with scratch_schema() as (url, _dsn):
            end_to_end("RabbitMQ + PostgreSQL", url, RABBIT, args.n, ceiling(RABBIT, args.n))
    if args.only in (None, "embedded"):
        with tempfile.TemporaryDirectory() as tmp:
            broker = f"sqla+sqlite:///{tmp}/events.db"
            ceil = ceiling(f"sqla+sqlite:///{tmp}/ceiling.db", args.n)
            end_to_end("embedded (SQLite)", f"sqlite:///{tmp}/firehook.db", broker, args.n, ceil)


if __name__ == "__main__":
    main()

"""What the consumer tests share: the brokers, a topology of their own, and a rig that applies
rules, publishes real messages and reads the invocation table."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer

from firehook.app import App
from firehook.config import Settings
from firehook.config.loader import parse_config
from firehook.daemon import ConsumerRole
from firehook.invoker.store import InvocationFilter
from firehook.triggers.broker import Topology, connect
from firehook.triggers.events import change_event
from firehook.triggers.publisher import Publisher
from tests.conftest import IN_CI

__all__ = [
    "RABBIT",
    "REDIS",
    "RULES",
    "TOPOLOGY",
    "Rig",
    "broker_for",
    "dead_letters",
    "publish_raw",
    "purge",
    "reachable",
    "unpaid_order",
]

RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = "redis://127.0.0.1:6379/0"

RULES = """
version: 1
triggers:
  - name: notify-unpaid
    on: {table: orders, events: [on_create]}
    when: {all: [{field: status, op: "=", value: unpaid}]}
    invoke: echo
    params: {channel: sms}
  - name: audit-orders
    on: {table: orders, events: [on_create, on_update]}
    invoke: hello
  - name: cancel-later
    on: {table: carts, events: [on_create]}
    invoke: hello
    delay: 30m
  - name: once-only
    on: {table: signups, events: [on_create]}
    invoke: hello
    frequency: once
  - name: cooled
    on: {table: pings, events: [on_create]}
    invoke: hello
    frequency: {cooldown: 1h}
  - name: paid-hook
    on: {hook: payment-ok}
    when: {all: [{field: amount, op: ">", value: 0}]}
    invoke: echo
"""

# each test run gets its own exchange and queue: runs sharing the broker never see each other
TOPOLOGY = Topology(exchange=f"fh.test.{os.getpid()}", queue=f"fh.test.{os.getpid()}")


def purge(url: str, *, delete: bool = False) -> None:
    with connect(url) as conn:
        for q in (TOPOLOGY.events_queue(), TOPOLOGY.dead_queue()):
            bound = q(conn.default_channel)
            bound.declare()
            bound.purge()
            if delete:
                bound.delete()


def reachable(url: str) -> None:
    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as e:
        if IN_CI:
            raise
        pytest.skip(f"{url} not reachable: {e}")


def broker_for(kind: str, tmp_path: Path) -> Iterator[str]:
    """The body of a broker fixture: ``embedded``, ``rabbitmq`` or ``redis``, purged."""
    if kind == "embedded":
        yield f"sqla+sqlite:///{tmp_path / 'events.db'}"
        return
    url = RABBIT if kind == "rabbitmq" else REDIS
    reachable(url)
    purge(url)
    yield url
    purge(url, delete=True)


def publish_raw(broker_url: str, bodies: list[bytes | str], routing_key: str) -> None:
    """Messages as any producer could send them, bypassing the Publisher's checks."""
    with connect(broker_url) as conn:
        producer = Producer(conn.default_channel, exchange=Exchange(TOPOLOGY.exchange, "topic"))
        for body in bodies:
            producer.publish(
                body,
                routing_key=routing_key,
                content_type="application/json",
                declare=[TOPOLOGY.events_queue()],
            )


def dead_letters(broker_url: str) -> list[tuple[Any, str]]:
    """Take every dead letter: (body, reason header)."""
    dead = []
    with connect(broker_url) as conn:
        queue = TOPOLOGY.dead_queue()(conn.default_channel)
        queue.declare()
        for _ in range(10_000):
            msg = queue.get(no_ack=True)
            if msg is None:
                break
            dead.append((msg.body, msg.headers["x-firehook-reason"]))
    return dead


class Rig:
    def __init__(
        self,
        broker_url: str,
        functions_dir: Path,
        tmp_path: Path,
        *,
        database_url: str | None = None,
        triggers: dict[str, Any] | None = None,
    ) -> None:
        self.settings = Settings(
            database_url=database_url or f"sqlite:///{tmp_path / 'firehook.db'}",
            functions_dir=functions_dir,
            broker_url=broker_url,
            triggers={
                "visibility_timeout": "2s",
                "exchange": TOPOLOGY.exchange,
                "queue": TOPOLOGY.queue,
                **(triggers or {}),
            },
        )
        self.app = App(self.settings).open_db()
        self.app.rules_store.apply(parse_config(textwrap.dedent(RULES)).config, "test")
        self.consumer: ConsumerRole | None = None
        self.publisher = Publisher(broker_url, TOPOLOGY)

    def start_consumer(self) -> ConsumerRole:
        self.consumer = ConsumerRole(self.app)
        self.consumer.start()
        return self.consumer

    def stop_consumer(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(timedelta(seconds=5))

    @property
    def stats(self) -> Any:
        assert self.consumer is not None and self.consumer.consumer is not None
        return self.consumer.consumer.stats

    def wait_stat(self, name: str, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.stats[name] < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.stats[name] >= n, dict(self.stats)

    def stop(self) -> None:
        self.stop_consumer()
        self.publisher.close()
        self.app.close()

    def runs(self, **flt: str) -> list:
        return list(self.app.store.find(InvocationFilter(limit=10000, **flt)))

    def wait_runs(self, n: int, timeout: float = 30) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.runs()
            if len(rows) >= n:
                return rows
            time.sleep(0.05)
        pytest.fail(f"expected {n} runs, found {len(self.runs())} after {timeout}s")


def unpaid_order(order_id: int = 42, event_id: str | None = None):  # type: ignore[no-untyped-def]
    return change_event(
        "orders", "on_create", after={"id": order_id, "status": "unpaid"}, event_id=event_id
    )

"""Broker connections from ``FIREHOOK_BROKER_URL``: ``amqp://``, ``redis://`` or the embedded
``sqla+sqlite:///file.db`` (the default: durable, no server)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Queue

from firehook.config.errors import ConfigError
from firehook.triggers.events import EXCHANGE

__all__ = [
    "DEAD_EXCHANGE",
    "DEAD_QUEUE",
    "EVENTS_QUEUE",
    "Topology",
    "connect",
    "dead_queue",
    "events_exchange",
    "events_queue",
]

EVENTS_QUEUE = "firehook.events"
DEAD_EXCHANGE = "firehook.dead"
DEAD_QUEUE = "firehook.events.dead"


@dataclass(frozen=True)
class Topology:
    """Names on the broker.  Deployments (or test runs) that share a broker choose their own
    (``FIREHOOK_TRIGGERS__EXCHANGE``, ``FIREHOOK_TRIGGERS__QUEUE``); dead letters go to the
    queue ``<queue>.dead`` through the direct exchange ``firehook.dead``."""

    exchange: str = EXCHANGE
    queue: str = EVENTS_QUEUE

    @property
    def dead_queue_name(self) -> str:
        return f"{self.queue}.dead"

    def events_exchange(self) -> Exchange:
        return Exchange(self.exchange, type="topic", durable=True)

    def events_queue(self) -> Queue:
        """Every event, for the competing consumers: bound with ``#`` (all tables and hooks)."""
        return Queue(self.queue, exchange=self.events_exchange(), routing_key="#", durable=True)

    def dead_queue(self) -> Queue:
        return Queue(
            self.dead_queue_name,
            exchange=Exchange(DEAD_EXCHANGE, type="direct", durable=True),
            routing_key=self.dead_queue_name,
        )


DEFAULT = Topology()


def events_exchange() -> Exchange:
    return DEFAULT.events_exchange()


def events_queue() -> Queue:
    return DEFAULT.events_queue()


def dead_queue() -> Queue:
    return DEFAULT.dead_queue()


def connect(url: str, *, confirm: bool = True, visibility_timeout: float = 60.0) -> Connection:
    """A kombu connection (not opened yet) for ``url``."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    options: dict[str, Any] = {"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5}
    if scheme.startswith("sqla+"):
        from firehook.triggers.embedded import Transport

        options["visibility_timeout"] = visibility_timeout
        return Connection(url[len("sqla+") :], transport=Transport, transport_options=options)
    if scheme in ("amqp", "pyamqp", "amqps"):
        options["confirm_publish"] = confirm
        return Connection(url, transport_options=options, heartbeat=30)
    if scheme in ("redis", "rediss"):
        # unacked messages (a consumer killed before its ack) come back after this
        options["visibility_timeout"] = visibility_timeout
        options["unacked_restore_throttle"] = 1
        return Connection(url, transport_options=options)
    if scheme == "memory":
        return Connection(url)
    raise ConfigError(
        f"unsupported FIREHOOK_BROKER_URL {url!r}: use amqp://, redis:// or sqla+sqlite:///file.db"
    )

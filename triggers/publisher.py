"""Publishing events: one message shape on every transport, publisher confirms on AMQP.

Every publisher also declares the events queue and its binding: brokers without persistent
bindings (the embedded transport keeps them in memory per process) would otherwise drop a
message published before a consumer ever ran.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from kombu import Connection, Producer

from firehook.config.errors import FirehookError
from firehook.config.settings import TriggerSettings
from firehook.triggers.broker import DEFAULT, Topology, connect
from firehook.triggers.events import CloudEvent, InvalidEvent, change_event, unstorable

__all__ = ["PublishError", "Publisher", "publish", "topology_for"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
RETRY_POLICY = {"max_retries": 5, "interval_start": 0.1, "interval_step": 0.5, "interval_max": 3}
TX_CHUNK = 500


def _send(producer: Any, ev: CloudEvent, **options: Any) -> None:
    """One event as a persistent structured-mode CloudEvents message."""
    producer.publish(
        ev.model_dump_json(exclude_none=True).encode(),
        routing_key=ev.routing_key,
        content_type=CONTENT_TYPE,
        content_encoding="utf-8",
        delivery_mode=2,
        **options,
    )


def topology_for(settings: TriggerSettings) -> Topology:
    return Topology(exchange=settings.exchange, queue=settings.queue)


class PublishError(FirehookError, ConnectionError):
    """The broker did not take the event."""


class Publisher:
    """Publishes events to the ``firehook.events`` exchange; thread-safe; reconnects."""

    def __init__(self, url: str, topology: Topology = DEFAULT) -> None:
        self.url = url
        self.topology = topology
        self._conn: Connection | None = None
        self._producer: Any = None
        self._tx: tuple[Any, Any, Any] | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> Any:
        if self._producer is None:
            self._conn = connect(self.url)
            self._producer = self._conn.Producer(exchange=self.topology.events_exchange())
        return self._producer

    def publish(self, event: CloudEvent) -> None:
        self.publish_many([event])

    def publish_many(self, events: Iterable[CloudEvent]) -> int:
        """Publish in order; returns when the broker has every event (confirmed or committed).

        :class:`InvalidEvent`, before anything is sent, if an event holds what the store
        cannot (NaN, a NUL character, ...: an event changed after it was built)."""
        batch = list(events)
        for i, ev in enumerate(batch):
            reason = unstorable(ev)
            if reason is not None:
                raise InvalidEvent(f"event {i} cannot be published: {reason}")
        if len(batch) > 1 and self.url.split("://", 1)[0] in ("amqp", "pyamqp", "amqps"):
            with self._lock:
                return self._publish_in_transactions(batch)
        count = 0
        with self._lock:
            try:
                producer = self._ensure()
                queue = self.topology.events_queue()
                for ev in batch:
                    _send(producer, ev, declare=[queue], retry=True, retry_policy=RETRY_POLICY)
                    count += 1
            except Exception as e:  # kombu and driver errors, translated at this boundary
                self.close_quietly()
                raise PublishError(f"could not publish to {self._safe_url()}: {e}") from e
        return count

    def _publish_in_transactions(self, batch: list[CloudEvent]) -> int:
        """AMQP batches: a transacted channel, one commit per 500 events (about 15x faster
        than waiting for a confirm per message); an interrupted chunk is sent again, and the
        consumer's keys make a repeated event harmless."""
        sent, failures = 0, 0
        while sent < len(batch):
            try:
                if self._tx is None:
                    conn = connect(self.url, confirm=False)
                    channel = conn.channel()
                    self.topology.events_queue()(channel).declare()
                    channel.tx_select()
                    self._tx = (
                        conn,
                        channel,
                        Producer(channel, exchange=self.topology.events_exchange()),
                    )
                _conn, channel, producer = self._tx
                chunk = batch[sent : sent + TX_CHUNK]
                for ev in chunk:
                    _send(producer, ev)
                channel.tx_commit()
                sent += len(chunk)
            except Exception as e:  # connection lost mid-chunk: reconnect, send the chunk again
                self._close_tx()
                failures += 1
                if failures > RETRY_POLICY["max_retries"]:
                    raise PublishError(
                        f"could not publish to {self.url.split('@')[-1]}: {e}"
                    ) from e
                log.warning(
                    "publishing failed (%s); retrying the last %d event(s)", e, len(batch) - sent
                )
                time.sleep(min(0.1 * 2**failures, 3.0))
        return sent

    def _close_tx(self) -> None:
        if self._tx is not None:
            try:
                self._tx[0].release()
            except Exception as e:
                log.debug("closing the transacted publisher connection failed: %s", e)
        self._tx = None

    def _safe_url(self) -> str:
        return str(self._conn.as_uri()) if self._conn is not None else self.url.split("@")[-1]

    def close_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.release()
            except Exception as e:  # already broken
                log.debug("closing the publisher connection failed: %s", e)
        self._conn = None
        self._producer = None

    def close(self) -> None:
        with self._lock:
            self.close_quietly()
            self._close_tx()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def publish(
    table: str,
    event: str,
    *,
    after: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    source: str = "app",
    subject: str | None = None,
    url: str | None = None,
) -> CloudEvent:
    """Publish one record change (opens and closes a connection: use a Publisher for many).

    ``url`` defaults to ``FIREHOOK_BROKER_URL``.
    """
    from firehook.config import Settings

    settings = Settings()
    ev = change_event(table, event, after=after, before=before, source=source, subject=subject)
    with Publisher(url or settings.broker_url, topology_for(settings.triggers)) as pub:
        pub.publish(ev)
    return ev

"""The event consumer: events from the broker become queued runs, acked only after commit.

Messages are gathered into batches (``batch_size`` or ``flush_interval``, whichever comes
first); each batch's runs are inserted in one transaction, keyed ``(trigger, event id)`` so a
redelivered event adds nothing, and only then are its messages acked.  A message that is not
a valid event (including one holding what the store cannot: a NUL character, a lone
surrogate, NaN, a huge number, deep nesting), or one whose runs cannot be queued (a rule's
function was removed, params the database refuses), goes to the dead-letter queue with the
reason; the rest of its batch is queued.  A database that cannot be reached sends the batch
back to the broker.  A broken connection drops the unacked batch (the broker redelivers it)
and reconnects with back-off.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kombu import Connection
from kombu.mixins import ConsumerProducerMixin
from sqlalchemy.exc import DataError

from firehook.config.errors import DatabaseError, FirehookError
from firehook.config.settings import TriggerSettings
from firehook.invoker.dispatch import Dispatcher, InvokeRequest
from firehook.invoker.envelope import InvokeError
from firehook.invoker.jsonsafe import storable_text
from firehook.invoker.queue import Enqueued
from firehook.triggers.broker import DEAD_EXCHANGE
from firehook.triggers.events import CloudEvent, InvalidEvent, parse_event
from firehook.triggers.matching import Matcher, Skipped
from firehook.triggers.publisher import topology_for
from firehook.triggers.skips import SkipLog

__all__ = ["EventConsumer"]

log = logging.getLogger(__name__)


Item = tuple[InvokeRequest, datetime | None, str | None]  # a run to queue: request, due, key


def _refused_data(error: BaseException) -> str | None:
    """The database's reason when ``error`` is its refusal of the data of one statement (a
    value it cannot hold), not a failure to reach it; None otherwise."""
    seen: BaseException | None = error
    for _ in range(5):  # DatabaseError <- sqlalchemy DataError <- driver error
        if seen is None:
            return None
        if isinstance(seen, DataError):
            lines = str(seen.orig).strip().splitlines()
            return lines[0] if lines else type(seen.orig).__name__
        seen = seen.__cause__
    return None


@dataclass
class _Pending:
    message: Any
    event: CloudEvent | None
    error: str | None


class EventConsumer(ConsumerProducerMixin):  # type: ignore[misc]
    """Consumes ``firehook.events``; ``run()`` blocks until ``should_stop`` is set."""

    def __init__(
        self,
        connection: Connection,
        dispatcher: Dispatcher,
        matcher: Matcher,
        settings: TriggerSettings,
        skips: SkipLog | None = None,
    ) -> None:
        self.connection = connection
        self.dispatcher = dispatcher
        self.matcher = matcher
        self.settings = settings
        self.topology = topology_for(settings)
        self.skips = skips
        self.should_stop = False
        self.stats: Counter[str] = Counter()
        self._pending: list[_Pending] = []
        self._first_at = 0.0

    # kombu hooks -------------------------------------------------------------------------
    def get_consumers(self, consumer_cls: Any, channel: Any) -> list[Any]:
        return [
            consumer_cls(
                queues=[self.topology.events_queue()],
                on_message=self._on_message,
                prefetch_count=self.settings.batch_size * 2,
                accept=None,
            )
        ]

    def on_connection_revived(self) -> None:
        if self._pending:  # unacked on the old channel: the broker will redeliver them
            log.warning(
                "connection lost with %d unacked event(s); they will be redelivered",
                len(self._pending),
            )
        self._pending.clear()
        self.stats["connections"] += 1

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        log.warning("broker connection error: %s; retrying in %.1fs", exc, interval)

    def on_iteration(self) -> None:
        if (
            self._pending
            and time.monotonic() - self._first_at >= self.settings.flush_interval.total_seconds()
        ):
            self.flush()

    def on_consume_end(self, connection: Any, channel: Any) -> None:
        if self._pending and not self.should_stop:
            self._pending.clear()
        super().on_consume_end(connection, channel)  # closes the dead-letter producer's connection

    def run_until_stopped(self) -> None:
        self.run(safety_interval=self.settings.flush_interval.total_seconds())
        if self._pending:
            log.info("stopping with %d unacked event(s); the broker keeps them", len(self._pending))

    # batching ----------------------------------------------------------------------------
    def _on_message(self, message: Any) -> None:
        if not self._pending:
            self._first_at = time.monotonic()
        try:
            self._pending.append(_Pending(message, parse_event(message.body), None))
        except InvalidEvent as e:
            self._pending.append(_Pending(message, None, str(e)))
        if len(self._pending) >= self.settings.batch_size:
            self.flush()

    def flush(self) -> None:
        """Record the runs of every pending event in one transaction, then ack them."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        for bad in (p for p in batch if p.event is None):
            self._dead_letter(bad.message, bad.error or "invalid event")
        good = [p for p in batch if p.event is not None]
        now = self.dispatcher.queue.clock()
        plans: list[tuple[_Pending, list[Item], list[Skipped]]] = []
        for p in good:
            assert p.event is not None
            planned, skips = self.matcher.match(p.event, now)
            plans.append((p, [(pl.request, pl.due_at, pl.key) for pl in planned], skips))
        try:
            try:
                items = [item for _, its, _ in plans for item in its]
                enqueued = self.dispatcher.enqueue_many(items) if items else []
            except (InvokeError, DatabaseError) as e:
                if isinstance(e, DatabaseError) and _refused_data(e) is None:
                    raise  # not reachable: the whole batch goes back
                # one event's runs cannot be queued: find it, queue the rest
                plans, enqueued = self._one_by_one(plans)
        except FirehookError as e:
            log.error(
                "could not record runs for %d event(s): %s; they go back to the broker",
                len(plans),
                e,
            )
            for p, _, _ in plans:
                p.message.requeue()
            time.sleep(1.0)
            return
        self._ack([p for p, _, _ in plans])
        created = sum(1 for e in enqueued if e.created)
        self.stats["events"] += len(plans)
        self.stats["runs"] += created
        self.stats["duplicates"] += len(enqueued) - created
        self.stats["unmatched"] += sum(1 for _, its, _ in plans if not its)
        skipped = [(p.event, s) for p, _, skips in plans for s in skips if p.event is not None]
        self.stats["filtered"] += sum(1 for _, s in skipped if s.trigger is not None)
        for ev, s in skipped:
            log.debug(
                "event %s (%s): %s%s",
                ev.id,
                ev.routing_key,
                f"{s.trigger}: " if s.trigger else "",
                s.reason,
            )
        if self.skips is not None and skipped:
            self.skips.record(skipped)

    def _one_by_one(
        self, plans: list[tuple[_Pending, list[Item], list[Skipped]]]
    ) -> tuple[list[tuple[_Pending, list[Item], list[Skipped]]], list[Enqueued]]:
        """Queue each event's runs in a transaction of its own; an event whose runs cannot
        be queued (a rule's function is gone, params that are not JSON or that the database
        refuses) is dead-lettered with the reason once the others are queued.  Any other
        database error on the way sends the whole batch back, dead-lettered nothing (keys
        make runs already queued count once)."""
        kept: list[tuple[_Pending, list[Item], list[Skipped]]] = []
        refused: list[tuple[_Pending, str]] = []
        enqueued: list[Enqueued] = []
        for plan in plans:
            p, items, _ = plan
            try:
                enqueued.extend(self.dispatcher.enqueue_many(items) if items else [])
            except InvokeError as e:
                refused.append((p, f"its runs could not be queued: {e}"))
                continue
            except DatabaseError as e:
                reason = _refused_data(e)
                if reason is None:
                    raise
                refused.append((p, f"the database refused its runs: {reason}"))
                continue
            kept.append(plan)
        for p, reason in refused:
            self._dead_letter(p.message, reason)
        return kept, enqueued

    def _ack(self, batch: list[_Pending]) -> None:
        """AMQP: one ``multiple`` ack for the batch (every earlier delivery on this channel is
        already settled); the virtual transports (embedded, Redis) ack one by one."""
        if not batch:
            return
        if getattr(self.connection.transport, "driver_type", "") == "amqp":
            batch[-1].message.ack(multiple=True)
        else:
            for p in batch:
                p.message.ack()

    def _dead_letter(self, message: Any, reason: str) -> None:
        reason = storable_text(reason)[:1000]  # a header every broker can carry
        key = storable_text(str(message.delivery_info.get("routing_key", "")))
        log.warning("dead-lettering a message (routing key %r): %s", key, reason)
        self.producer.publish(
            message.body,
            exchange=DEAD_EXCHANGE,
            routing_key=self.topology.dead_queue_name,
            headers={"x-firehook-reason": reason, "x-firehook-routing-key": key},
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            delivery_mode=2,
            declare=[self.topology.dead_queue()],
            retry=True,
        )
        message.ack()
        self.stats["dead_lettered"] += 1

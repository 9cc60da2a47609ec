"""The embedded event transport: kombu's SQLAlchemy transport on SQLite, made durable.

kombu's ``sqla`` transport marks a message invisible when a consumer takes it and never
deletes it; a consumer killed before its ack loses the message for good (measured in
``shared/reference/transports-pools.md``).  This channel instead deletes a message when it
is acked (or taken with ``no_ack``), puts it back (visible again) when it is rejected or the
channel closes, and makes any message that stayed taken longer than ``visibility_timeout``
visible again, so a ``kill -9`` delays messages but loses none.  The consumer's idempotency
keys make the possible redelivery harmless.  SQLite runs in WAL mode with a busy timeout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import Any, ClassVar

from kombu.transport import sqlalchemy as sqla
from sqlalchemy import create_engine, delete, event, text, update

__all__ = ["Channel", "Transport"]


class Channel(sqla.Channel):  # type: ignore[misc]
    _engines: ClassVar[dict[str, Any]] = {}  # not shared with kombu's own sqla channel

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        opts = connection.client.transport_options
        self.visibility_timeout = float(opts.get("visibility_timeout", 60.0))
        self._row_ids: dict[str, int] = {}
        self._next_restore = 0.0
        super().__init__(connection, **kwargs)

    def _engine_from_config(self) -> Any:
        engine = create_engine(self.connection.client.hostname, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA busy_timeout = 30000")
            cur.close()

        return engine

    def _get(self, queue: str) -> Any:
        self._restore_expired()
        obj = self._get_or_create(queue)
        m = self.message_cls
        self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            msg = (
                self.session.query(m)
                .filter(m.queue_id == obj.id)
                .filter(m.visible != False)  # noqa: E712
                .order_by(m.sent_at)
                .order_by(m.id)
                .limit(1)
                .first()
            )
            if msg is None:
                raise sqla.Empty()
            msg.visible = False  # `timestamp` is set to now on update: when it was taken
            payload = sqla.loads(sqla.bytes_to_str(msg.payload))
            self._row_ids[payload["properties"]["delivery_tag"]] = msg.id
            return payload
        finally:
            self.session.commit()

    def _restore_expired(self) -> None:
        """Make messages taken longer than the visibility timeout ago visible again."""
        now = time.monotonic()
        if now < self._next_restore:
            return
        self._next_restore = now + max(1.0, self.visibility_timeout / 4)
        m = self.message_cls
        cutoff = dt.datetime.now() - dt.timedelta(seconds=self.visibility_timeout)
        self.session.execute(
            update(m).where(m.visible == False, m.sent_at < cutoff).values(visible=True)  # noqa: E712
        )
        self.session.commit()

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self._forget(delivery_tag)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        """A message taken with ``no_ack`` is settled at once: deleted, never made visible
        again (it used to come back after the visibility timeout, to be read twice)."""
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self._forget(message.delivery_tag)
        return message

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any
    ) -> Any:
        out = super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)
        if no_ack:  # as basic_get: delivered is settled
            deliver = self.connection._callbacks[queue]

            def _settled(raw_message: Any) -> Any:
                self._forget(raw_message["properties"]["delivery_tag"])
                return deliver(raw_message)

            self.connection._callbacks[queue] = _settled
        return out

    def _forget(self, delivery_tag: str) -> None:
        row = self._row_ids.pop(delivery_tag, None)
        if row is not None:
            self.session.execute(delete(self.message_cls).where(self.message_cls.id == row))
            self.session.commit()

    def _restore(self, message: Any) -> None:
        """A rejected-with-requeue or never-acked message: visible again, not a new copy."""
        row = self._row_ids.pop(message.delivery_tag, None)
        if row is None:
            super()._restore(message)
            return
        m = self.message_cls
        self.session.execute(update(m).where(m.id == row).values(visible=True))
        self.session.commit()

    _restore_at_beginning = _restore

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if requeue:
            super().basic_reject(delivery_tag, requeue=True)
            return
        super().basic_reject(delivery_tag, requeue=False)
        row = self._row_ids.pop(delivery_tag, None)
        if row is not None:
            with contextlib.suppress(Exception):
                self.session.execute(delete(self.message_cls).where(self.message_cls.id == row))
                self.session.commit()


class Transport(sqla.Transport):  # type: ignore[misc]
    Channel = Channel
    polling_interval = 0.05

"""Retention: delete finished runs older than the age configured for their status.

Runs in the scheduler role every ``interval`` (``FIREHOOK_RETENTION__*``).  Deletes go in
bounded batches (``batch_size`` rows per statement, each its own short transaction) so a
large backlog never holds long locks; on PostgreSQL the batch is picked with ``SKIP LOCKED``
so several schedulers sweeping at once do not wait for each other.  A run's age counts from
when it finished (or was created, if it never ran).  Waiting and executing runs are never
touched.  Deleting a first attempt also forgets its idempotency key: a key dedupes for as
long as its run is kept (which runs it dedupes against: :mod:`invoker.keys`), except the run
of a ``frequency: once`` trigger (key ``trigger:<name>:once``), which is kept whatever its age:
it is what keeps the trigger from firing again (docs/decisions.md D12).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from firehook.config.db import is_sqlite, utcnow, write_tx
from firehook.config.errors import DatabaseError
from firehook.config.settings import RetentionSettings
from firehook.invoker.event import EventType
from firehook.invoker.keys import ONCE_KEY_PATTERN
from firehook.invoker.records import invocation_table as inv

__all__ = ["Retention"]

log = logging.getLogger(__name__)

# the first run of a ``frequency: once`` trigger holds its key for good
_NOT_A_ONCE_MARKER = or_(
    inv.c.idempotency_key.is_(None),
    inv.c.event_type != EventType.TRIGGER.value,
    inv.c.idempotency_key.not_like(ONCE_KEY_PATTERN),
)


class Retention:
    """Deletes old finished runs; ``deleted`` counts them per status (for metrics)."""

    def __init__(
        self,
        engine: Engine,
        settings: RetentionSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.deleted: dict[str, int] = {}
        self.sweeps = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def deleted_total(self) -> int:
        return sum(self.deleted.values())

    def sweep(self, max_batches: int = 1000) -> dict[str, int]:
        """Delete what is past its age now; returns the count per status."""
        now = self.clock()
        started = time.monotonic()
        out: dict[str, int] = {}
        batches = 0
        for status, age in self.settings.ages().items():
            cutoff = now - age
            while batches < max_batches and not self._stopping.is_set():
                n = self._delete_batch(status, cutoff)
                batches += 1
                if n:
                    out[status] = out.get(status, 0) + n
                if n < self.settings.batch_size:
                    break
        for status, n in out.items():
            self.deleted[status] = self.deleted.get(status, 0) + n
        self.sweeps += 1
        if out:
            log.info(
                "retention deleted %d finished run(s) in %.2fs: %s",
                sum(out.values()),
                time.monotonic() - started,
                ", ".join(f"{s} {n}" for s, n in sorted(out.items())),
            )
        return out

    def _delete_batch(self, status: str, cutoff: datetime) -> int:
        picked = (
            select(inv.c.id)
            .where(
                inv.c.status == status,
                inv.c.created_at < cutoff,  # indexed; finished_at >= created_at
                func.coalesce(inv.c.finished_at, inv.c.created_at) < cutoff,
                _NOT_A_ONCE_MARKER,
            )
            .limit(self.settings.batch_size)
        )
        if not is_sqlite(self.engine):
            picked = picked.with_for_update(skip_locked=True)
        try:
            with write_tx(self.engine) as conn:
                return int(conn.execute(delete(inv).where(inv.c.id.in_(picked))).rowcount)
        except SQLAlchemyError as e:
            raise DatabaseError(f"retention could not delete old runs: {e}") from e

    # in the scheduler role --------------------------------------------------------------
    def start(self, first_after: timedelta = timedelta(seconds=5)) -> Retention:
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(first_after,), name="firehook-retention", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self, first_after: timedelta) -> None:
        wait = first_after.total_seconds()
        while not self._stopping.wait(wait):
            try:
                self.sweep()
            except Exception:
                log.exception("retention sweep failed; trying again at the next interval")
            wait = self.settings.interval.total_seconds()

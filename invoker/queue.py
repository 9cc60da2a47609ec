"""The invocation table as a work queue: enqueue, claim with a lease, complete, take over.

Every statement here is short and commits at once; nothing runs inside a claim
transaction.  PostgreSQL claims with ``FOR NO KEY UPDATE SKIP LOCKED`` in a materialised
CTE (so the LIMIT holds); SQLite claims with one ``UPDATE ... RETURNING`` under its single
writer lock.  Post-claim writes are fenced by ``lease_owner`` and ``status``: a run whose
lease was taken over can no longer be completed by its old owner.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, exc, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from firehook.config.db import is_sqlite, utcnow, write_tx
from firehook.config.errors import DatabaseError
from firehook.config.functions import FunctionOptions, RetryPolicy
from firehook.invoker.claims import (
    EXECUTING,
    WAITING,
    Claimed,
    Completion,
    Enqueued,
    claim_rows,
)
from firehook.invoker.envelope import (
    JobNotFound,
    NotCancellable,
    Status,
)
from firehook.invoker.keys import insert_deduped, key_holder
from firehook.invoker.limits import Limiter
from firehook.invoker.observe import NullObserver, RunObserver
from firehook.invoker.outcomes import Outcome, failed_outcome, outcome
from firehook.invoker.pg_bulk import finish_runs
from firehook.invoker.records import invocation_table as t
from firehook.invoker.takeover import take_over

__all__ = ["NOTIFY_CHANNEL", "Claimed", "Completion", "Enqueued", "Queue"]

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "firehook_invocation"


def _connection_lost(e: BaseException) -> bool:
    """The database went away (or never answered): the same writes may succeed later."""
    lost = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)
    return isinstance(e, lost) or bool(getattr(e, "connection_invalidated", False))


def _reason(e: BaseException) -> str:
    """A driver error without SQLAlchemy's statement and parameters (which hold run data)."""
    return str(getattr(e, "orig", None) or e)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Driver errors leave the queue as :class:`DatabaseError` (ours pass unchanged)."""
    try:
        yield
    except SQLAlchemyError as e:
        raise DatabaseError(f"could not {what}: {_reason(e)}") from e


def _notify(conn: Connection) -> None:
    """Wake idle workers (PostgreSQL LISTEN/NOTIFY); sent when the transaction commits."""
    conn.execute(text("SELECT pg_notify(:c, '')"), {"c": NOTIFY_CHANNEL})


class Queue:
    """Queue operations on one database.  ``clock`` is injectable for tests."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_enqueue: Callable[[], None] | None = None,
        notify_within: timedelta = timedelta(seconds=1),
        observer: RunObserver | None = None,
        limits: Callable[[], Mapping[str, FunctionOptions]] | None = None,
    ) -> None:
        self.engine = engine
        self.observer: RunObserver = observer or NullObserver()
        self.clock = clock
        self.on_enqueue = on_enqueue
        # idle workers look for work at least this often (their poll interval), so runs due
        # later than this need no NOTIFY: one round trip and the commit-time lock saved
        self.notify_within = notify_within
        self._pg = not is_sqlite(engine)
        self.limiter = Limiter(limits or dict, self._pg)

    # enqueue -----------------------------------------------------------------------------
    def enqueue(self, rows: Sequence[dict[str, Any]]) -> list[Enqueued]:
        """Insert ``waiting`` rows (one statement per 1,000); keys that exist return their run."""
        if not rows:
            return []
        try:
            soon = self.clock() + self.notify_within
            with write_tx(self.engine) as conn:
                out = self._insert(conn, rows)
                if self._pg and any(r["due_at"] <= soon for r in rows):
                    _notify(conn)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not enqueue: {e}") from e
        if self.on_enqueue is not None:
            self.on_enqueue()
        return out

    def _insert(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[Enqueued]:
        return insert_deduped(conn, self._pg, rows)  # which keys dedupe: invoker.keys

    # claim, renew, release ---------------------------------------------------------------
    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claimed]:
        """Take up to ``limit`` due runs, oldest due first, and mark them ``executing``.

        Functions with a ``max_concurrency`` or ``rate`` are claimed apart, within their
        limits (:mod:`invoker.limits`).
        """
        now = self.clock()
        limited = self.limiter.limited()
        try:
            with write_tx(self.engine) as conn:
                rows = claim_rows(conn, self._pg, owner, now, lease, limit, exclude=list(limited))
            for name, options in limited.items():
                if len(rows) >= limit:
                    break
                with write_tx(self.engine) as conn:

                    def claim_of(c: Connection, n: int, name: str = name) -> list[Any]:
                        return claim_rows(c, self._pg, owner, now, lease, n, only=name)

                    rows += self.limiter.claim(
                        conn, name, options, limit - len(rows), now, claim_of
                    )
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not claim runs: {e}") from e
        claimed = sorted((Claimed.from_row(r) for r in rows), key=lambda c: (c.due_at, c.id))
        for c in claimed:
            self.observer.claimed(c.event_type, (now - c.due_at).total_seconds())
        return claimed

    def renew(self, owner: str, ids: Iterable[str], lease: timedelta) -> set[str]:
        """Extend the leases of ``ids``; returns the ids still held (the rest were taken over)."""
        ids = list(ids)
        if not ids:
            return set()
        stmt = (
            update(t)
            .where(t.c.id.in_(ids), t.c.lease_owner == owner, t.c.status == EXECUTING)
            .values(lease_expires_at=self.clock() + lease)
            .returning(t.c.id)
        )
        with _translated("renew leases"), write_tx(self.engine) as conn:
            return set(conn.execute(stmt).scalars())

    def release(self, owner: str, ids: Iterable[str]) -> int:
        """Put runs this worker holds back to ``waiting`` (graceful stop)."""
        ids = list(ids)
        if not ids:
            return 0
        stmt = (
            update(t)
            .where(t.c.id.in_(ids), t.c.lease_owner == owner, t.c.status == EXECUTING)
            .values(
                status=Status.WAITING.value,
                lease_owner=None,
                lease_expires_at=None,
                started_at=None,
                note=f"released by {owner} when it stopped",
            )
        )
        with _translated("release runs"), write_tx(self.engine) as conn:
            count = conn.execute(stmt).rowcount
            if self._pg and count:
                _notify(conn)
        return count

    # complete ----------------------------------------------------------------------------
    def complete(
        self, owner: str, done: Sequence[Completion], policy_for: Callable[[str], RetryPolicy]
    ) -> list[str]:
        """Record finished runs in one transaction, inserting retries; returns lost-lease ids.

        A run whose record the database refuses fails alone: when the batch's transaction
        fails with anything but a lost connection, its runs are recorded one by one, and the
        one refused is recorded as ``execution_failed`` with the database's reason.
        """
        if not done:
            return []
        now = self.clock()
        policy_of = functools.cache(policy_for)  # once per function and batch
        outcomes = [outcome(c, policy_of, now) for c in done]
        try:
            updated = self._record(owner, outcomes)
        except DatabaseError:
            raise
        except Exception as e:
            if _connection_lost(e):
                raise DatabaseError(f"could not record finished runs: {_reason(e)}") from e
            log.warning(
                "recording %d finished run(s) failed (%s); recording them one by one",
                len(outcomes),
                type(e).__name__,
            )
            outcomes, updated = self._record_apart(owner, outcomes)
        for o in outcomes:
            if o.row["id"] in updated:
                c = o.completion
                self.observer.finished(c.run.function, o.row["status"], c.duration.total_seconds())
                if o.retry is not None:
                    self.observer.retried(c.run.function)
        lost = [o.row["id"] for o in outcomes if o.row["id"] not in updated]
        if lost:
            log.warning("lease lost before completion, result discarded: %s", ", ".join(lost))
        return lost

    def _record(self, owner: str, outcomes: Sequence[Outcome]) -> set[str]:
        """One transaction: finish the runs still leased by ``owner``, insert their retries."""
        with write_tx(self.engine) as conn:
            updated = self._finish(conn, owner, [o.row for o in outcomes])
            retries = [o.retry for o in outcomes if o.retry is not None and o.row["id"] in updated]
            if retries:
                conn.execute(t.insert(), retries)
                if self._pg:
                    _notify(conn)
        return updated

    def _record_apart(
        self, owner: str, outcomes: Sequence[Outcome]
    ) -> tuple[list[Outcome], set[str]]:
        """Each outcome in its own transaction; one the database refuses is recorded as failed
        with the reason.  A lost connection (or a failure even to record that) raises."""
        final: list[Outcome] = []
        updated: set[str] = set()
        for o in outcomes:
            try:
                updated |= self._record(owner, [o])
            except DatabaseError:
                raise
            except Exception as e:
                if _connection_lost(e):
                    raise DatabaseError(f"could not record finished runs: {_reason(e)}") from e
                log.error("the database refused the record of run %s: %s", o.row["id"], _reason(e))
                o = failed_outcome(o.completion, "this run's record could not be stored", e)
                try:
                    updated |= self._record(owner, [o])
                except Exception as again:
                    reason = _reason(again)
                    raise DatabaseError(f"could not record run {o.row['id']}: {reason}") from again
            final.append(o)
        return final, updated

    def _finish(self, conn: Connection, owner: str, rows: list[dict[str, Any]]) -> set[str]:
        if self._pg:
            return finish_runs(conn, owner, rows)
        updated = set()
        for row in rows:
            fence = (t.c.id == row["id"], t.c.lease_owner == owner, t.c.status == EXECUTING)
            values = {k: v for k, v in row.items() if k != "id" and (k != "note" or v)}
            values |= {"lease_owner": None, "lease_expires_at": None}
            if conn.execute(update(t).where(*fence).values(values)).rowcount:
                updated.add(row["id"])
        return updated

    # takeover ----------------------------------------------------------------------------
    def take_over_expired(self, policy_for: Callable[[str], RetryPolicy], limit: int = 500) -> int:
        """Runs whose lease ran out (their worker died): ``worker_lost``, and a new attempt."""
        try:
            with write_tx(self.engine) as conn:
                done = take_over(conn, self._pg, policy_for, self.clock(), limit)
                if done.retries and self._pg:
                    _notify(conn)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not take over expired runs: {e}") from e
        if not done.runs:
            return 0
        log.warning("took over %d run(s) whose worker stopped renewing its lease", len(done.runs))
        for function, status_value, retried in done.runs:
            self.observer.finished(function, status_value, None)
            if retried:
                self.observer.retried(function)
        if done.retries and self.on_enqueue is not None:
            self.on_enqueue()
        return len(done.runs)

    # cancel ------------------------------------------------------------------------------
    def cancel(
        self, job_id: str | None = None, key: str | None = None, function: str | None = None
    ) -> list[str]:
        """Cancel the waiting attempt(s) of a run, named by id or by idempotency key (keys
        belong to a function: ``function`` picks one when several hold the key)."""
        if (job_id is None) == (key is None):
            raise ValueError("name the run by id or by key, not both")
        with _translated("cancel"), write_tx(self.engine) as conn:
            if key is not None:
                root = key_holder(conn, key, function)
            else:
                found = conn.execute(select(t.c.root_id).where(t.c.id == job_id))
                root = found.scalar_one_or_none()
            if root is None:
                raise JobNotFound(f"key {key}" if key is not None else str(job_id))
            stmt = (
                update(t)
                .where(t.c.root_id == root, t.c.status == WAITING)
                .values(status=Status.CANCELLED.value, finished_at=self.clock(), note="cancelled")
                .returning(t.c.id)
            )
            cancelled = list(conn.execute(stmt).scalars())
            if not cancelled:
                latest = conn.execute(
                    select(t.c.id, t.c.status)
                    .where(t.c.root_id == root)
                    .order_by(t.c.attempt.desc())
                    .limit(1)
                ).one()
                raise NotCancellable(
                    f"run {latest.id} is {latest.status}; only waiting runs can be cancelled"
                )
        return cancelled

    # looking ahead -----------------------------------------------------------------------
    def next_due(self) -> datetime | None:
        """When the earliest waiting run is due (None when nothing waits); a limited
        function's runs count from when this process will try that function again."""
        limited = list(self.limiter.limited())
        stmt = select(func.min(t.c.due_at)).where(t.c.status == WAITING)
        with _translated("look for the next due run"), self.engine.connect() as conn:
            if not limited:
                return _as_time(conn.execute(stmt).scalar_one_or_none())
            times = [_as_time(conn.execute(stmt.where(t.c.function.not_in(limited))).scalar())]
            per_function = select(t.c.function, func.min(t.c.due_at)).where(
                t.c.status == WAITING, t.c.function.in_(limited)
            )
            for name, due in conn.execute(per_function.group_by(t.c.function)).all():
                times.append(self.limiter.not_before(name, _as_time(due)))
        return min((x for x in times if x is not None), default=None)


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, str):  # SQLite's min() loses the column type
        return datetime.fromisoformat(value).replace(tzinfo=utcnow().tzinfo)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=utcnow().tzinfo)
    return value if isinstance(value, datetime) else None

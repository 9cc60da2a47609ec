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
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from firehook.config.db import is_sqlite, utcnow, write_tx
from firehook.config.errors import DatabaseError
from firehook.config.functions import FunctionOptions, RetryPolicy
from firehook.invoker.attempts import final_status, next_attempt
from firehook.invoker.claims import (
    CLAIM_COLUMNS,
    EXECUTING,
    WAITING,
    Claimed,
    Completion,
    Enqueued,
    claim_rows,
)
from firehook.invoker.envelope import (
    ErrorType,
    JobNotFound,
    NotCancellable,
    RunError,
    Status,
)
from firehook.invoker.keys import insert_deduped, key_holder
from firehook.invoker.limits import Limiter
from firehook.invoker.observe import NullObserver, RunObserver
from firehook.invoker.pg_bulk import finish_runs
from firehook.invoker.records import invocation_table as t

__all__ = ["NOTIFY_CHANNEL", "Claimed", "Completion", "Enqueued", "Queue"]

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "firehook_invocation"


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
        with write_tx(self.engine) as conn:
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
        with write_tx(self.engine) as conn:
            count = conn.execute(stmt).rowcount
            if self._pg and count:
                _notify(conn)
        return count

    # complete ----------------------------------------------------------------------------
    def complete(
        self, owner: str, done: Sequence[Completion], policy_for: Callable[[str], RetryPolicy]
    ) -> list[str]:
        """Record finished runs in one transaction, inserting retries; returns lost-lease ids."""
        now = self.clock()
        finished: list[dict[str, Any]] = []
        pending_retries: dict[str, dict[str, Any]] = {}
        policy_of = functools.cache(policy_for)  # once per function and batch
        for c in done:
            status = Status.FULFILLED
            if c.error is not None:
                policy = policy_of(c.run.function)
                status = final_status(c.error, c.run.attempt, c.run.max_attempts, policy)
            row = {
                "id": c.run.id,
                "status": status.value,
                "result": c.result,
                "error": None if c.error is None else c.error.to_dict(),
                "logs": c.logs,
                "started_at": c.started_at,
                "finished_at": c.started_at + c.duration,
                "duration_ms": c.duration.total_seconds() * 1000,
                "note": None,
            }
            if status is Status.RETRYING:
                retry = next_attempt(c.run, policy_of(c.run.function), now)
                row["note"] = "next: " + retry["note"]
                pending_retries[c.run.id] = retry
            finished.append(row)
        try:
            with write_tx(self.engine) as conn:
                updated = self._finish(conn, owner, finished)
                lost = [r["id"] for r in finished if r["id"] not in updated]
                retries = [r for rid, r in pending_retries.items() if rid in updated]
                if retries:
                    conn.execute(t.insert(), retries)
                    if self._pg:
                        _notify(conn)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not record finished runs: {e}") from e
        for c, row in zip(done, finished, strict=True):
            if row["id"] in updated:
                self.observer.finished(c.run.function, row["status"], c.duration.total_seconds())
                if row["id"] in pending_retries:
                    self.observer.retried(c.run.function)
        if lost:
            log.warning("lease lost before completion, result discarded: %s", ", ".join(lost))
        return lost

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
        now = self.clock()
        expired = (
            select(t.c.id)
            .where(t.c.status == EXECUTING, t.c.lease_expires_at < now)
            .order_by(t.c.lease_expires_at)
            .limit(limit)
        )
        if self._pg:
            picked = expired.with_for_update(skip_locked=True).cte("expired")
            picked = picked.prefix_with("MATERIALIZED")
            select_stmt = select(*CLAIM_COLUMNS, t.c.lease_owner).where(t.c.id == picked.c.id)
        else:
            select_stmt = select(*CLAIM_COLUMNS, t.c.lease_owner).where(t.c.id.in_(expired))
        try:
            with write_tx(self.engine) as conn:
                rows = conn.execute(select_stmt).mappings().all()
                if not rows:
                    return 0
                retries = []
                outcomes: list[tuple[str, str, bool]] = []
                for row in rows:
                    run = Claimed.from_row(row)
                    policy = policy_for(run.function)
                    error = RunError(
                        ErrorType.WORKER_LOST,
                        f"worker {row['lease_owner']} stopped renewing the lease of this run",
                    )
                    status = final_status(error, run.attempt, run.max_attempts, policy)
                    note = None
                    if status is Status.RETRYING:
                        retry = next_attempt(run, policy, now)
                        retries.append(retry)
                        note = "next: " + retry["note"]
                        status = Status.WORKER_LOST
                    outcomes.append((run.function, status.value, note is not None))
                    conn.execute(
                        update(t)
                        .where(t.c.id == run.id, t.c.status == EXECUTING)
                        .values(
                            status=status.value,
                            error=error.to_dict(),
                            finished_at=now,
                            lease_owner=None,
                            lease_expires_at=None,
                            note=note,
                        )
                    )
                if retries:
                    conn.execute(t.insert(), retries)
                    if self._pg:
                        _notify(conn)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not take over expired runs: {e}") from e
        log.warning("took over %d run(s) whose worker stopped renewing its lease", len(rows))
        for function, status_value, retried in outcomes:
            self.observer.finished(function, status_value, None)
            if retried:
                self.observer.retried(function)
        if retries and self.on_enqueue is not None:
            self.on_enqueue()
        return len(rows)

    # cancel ------------------------------------------------------------------------------
    def cancel(
        self, job_id: str | None = None, key: str | None = None, function: str | None = None
    ) -> list[str]:
        """Cancel the waiting attempt(s) of a run, named by id or by idempotency key (keys
        belong to a function: ``function`` picks one when several hold the key)."""
        if (job_id is None) == (key is None):
            raise ValueError("name the run by id or by key, not both")
        with write_tx(self.engine) as conn:
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
        with self.engine.connect() as conn:
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

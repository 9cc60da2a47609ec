"""Taking over runs whose lease ran out (their worker died): ``worker_lost``, and a retry.

The rows are picked in the caller's transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so two workers sweeping at once take different runs).  One run's bookkeeping never stops
the sweep: a retry that cannot be worked out (a policy that raises) leaves that run
``worker_lost`` with the reason in its note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from firehook.config.functions import RetryPolicy
from firehook.invoker.attempts import final_status, next_attempt
from firehook.invoker.claims import CLAIM_COLUMNS, EXECUTING, Claimed
from firehook.invoker.envelope import ErrorType, RunError, Status
from firehook.invoker.records import invocation_table as t

__all__ = ["TakenOver", "take_over"]

log = logging.getLogger(__name__)


@dataclass
class TakenOver:
    """What a sweep did: ``(function, status, retried)`` per run, and the retries' rows."""

    runs: list[tuple[str, str, bool]] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)


def _decide(
    run: Claimed, error: RunError, policy_for: Callable[[str], RetryPolicy], now: datetime
) -> tuple[Status, str | None, dict[str, Any] | None]:
    """The run's status, note and retry row; never raises."""
    try:
        policy = policy_for(run.function)
        status = final_status(error, run.attempt, run.max_attempts, policy)
        if status is not Status.RETRYING:
            return status, None, None
        retry = next_attempt(run, policy, now)
        return Status.WORKER_LOST, "next: " + retry["note"], retry
    except Exception as e:  # one run's bookkeeping must not stop the takeover
        log.exception("could not work out a retry of run %s", run.id)
        return Status.WORKER_LOST, f"not retried: firehook could not work out a retry: {e}", None


def take_over(
    conn: Connection,
    pg: bool,
    policy_for: Callable[[str], RetryPolicy],
    now: datetime,
    limit: int,
) -> TakenOver:
    """In ``conn``'s transaction: end up to ``limit`` expired runs and insert their retries
    (the caller translates database errors and sends the NOTIFY)."""
    expired = (
        select(t.c.id)
        .where(t.c.status == EXECUTING, t.c.lease_expires_at < now)
        .order_by(t.c.lease_expires_at)
        .limit(limit)
    )
    if pg:
        picked = expired.with_for_update(skip_locked=True).cte("expired")
        picked = picked.prefix_with("MATERIALIZED")
        select_stmt = select(*CLAIM_COLUMNS, t.c.lease_owner).where(t.c.id == picked.c.id)
    else:
        select_stmt = select(*CLAIM_COLUMNS, t.c.lease_owner).where(t.c.id.in_(expired))
    done = TakenOver()
    for row in conn.execute(select_stmt).mappings().all():
        run = Claimed.from_row(row)
        error = RunError(
            ErrorType.WORKER_LOST,
            f"worker {row['lease_owner']} stopped renewing the lease of this run",
        )
        status, note, retry = _decide(run, error, policy_for, now)
        if retry is not None:
            done.retries.append(retry)
        done.runs.append((run.function, status.value, retry is not None))
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
    if done.retries:
        conn.execute(t.insert(), done.retries)
    return done

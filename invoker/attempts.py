"""What happens after a failed attempt: its final status, and the row of the next attempt."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from firehook.config.functions import RetryPolicy
from firehook.invoker.envelope import STATUS_FOR_ERROR, RunError, Status
from firehook.invoker.records import new_job_id

if TYPE_CHECKING:
    from firehook.invoker.claims import Claimed

__all__ = ["final_status", "next_attempt"]


def _is_retry(error: RunError, attempt: int, max_attempts: int, policy: RetryPolicy) -> bool:
    return attempt < max_attempts and error.type.value in policy.retry_on


def final_status(error: RunError, attempt: int, max_attempts: int, policy: RetryPolicy) -> Status:
    """``retrying`` with tries left, ``dead`` when a retried run ran out, else the failure."""
    if _is_retry(error, attempt, max_attempts, policy):
        return Status.RETRYING
    if max_attempts > 1 and error.type.value in policy.retry_on:
        return Status.DEAD
    return STATUS_FOR_ERROR[error.type]


def next_attempt(run: Claimed, policy: RetryPolicy, now: datetime) -> dict[str, Any]:
    """The ``waiting`` row of attempt n+1, due after the policy's back-off."""
    wait = policy.delay(run.attempt)
    job_id = new_job_id()
    return {
        "id": job_id,
        "root_id": run.root_id,
        "function": run.function,
        "event_type": run.event_type,
        "source": run.source,
        "idempotency_key": None,
        "status": Status.WAITING.value,
        "attempt": run.attempt + 1,
        "max_attempts": run.max_attempts,
        "timeout_ms": run.timeout_ms,
        "params": run.params,
        "request": run.request,
        "caller_user_id": run.caller_user_id,
        "created_at": now,
        "due_at": now + wait,
        "note": (
            f"attempt {run.attempt + 1} of {run.max_attempts} after "
            f"{wait.total_seconds():.1f}s (retry of {run.id})"
        ),
    }

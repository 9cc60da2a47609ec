"""The record a finished run leaves: made storable first, built so that one run costs one run.

Whatever a function produced is recorded: its captured log and its error's message and stack
go through :func:`~invoker.jsonsafe.storable_text` (PostgreSQL refuses ``\\u0000`` in text
and ``jsonb``), and a result the store cannot hold (:func:`~invoker.jsonsafe.problem`, at the
C encoder's speed through :mod:`invoker._jsonfast`) turns the run into an
``execution_failed`` one that says why.  Building a run's row never raises:
if the bookkeeping itself fails (a retry policy that raises, say), the run is recorded as
failed with the reason instead of stopping the worker that was recording it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firehook.config.functions import RetryPolicy
from firehook.invoker._jsonfast import problem
from firehook.invoker.attempts import final_status, next_attempt
from firehook.invoker.claims import Completion
from firehook.invoker.envelope import ErrorType, RunError, Status
from firehook.invoker.jsonsafe import storable_text

__all__ = ["MAX_REASON", "Outcome", "failed_outcome", "outcome", "storable", "storable_error"]

log = logging.getLogger(__name__)

MAX_REASON = 1000  # characters of a database or bookkeeping error kept in a run's record


@dataclass(frozen=True, slots=True)
class Outcome:
    """The row a completion writes, and the next attempt's row when it is retried."""

    completion: Completion
    row: dict[str, Any]
    retry: dict[str, Any] | None = None


def storable_error(error: RunError) -> RunError:
    """``error`` with a message and stack the store can hold (the same object if it could)."""
    message, stack = storable_text(error.message), storable_text(error.stack)
    if message is error.message and stack is error.stack:
        return error
    return RunError(error.type, message, stack)


def storable(c: Completion) -> Completion:
    """``c`` with texts the store can hold; a result it cannot hold fails the run."""
    logs = storable_text(c.logs) if c.logs else c.logs
    error = None if c.error is None else storable_error(c.error)
    result = c.result
    if result is not None and (reason := problem(result)) is not None:
        result = None
        error = RunError(ErrorType.EXECUTION_FAILED, f"the result cannot be stored: {reason}")
    if logs is c.logs and error is c.error and result is c.result:
        return c
    return dataclasses.replace(c, result=result, error=error, logs=logs)


def _row(c: Completion, status: Status) -> dict[str, Any]:
    return {
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


def outcome(c: Completion, policy_of: Callable[[str], RetryPolicy], now: datetime) -> Outcome:
    """The record of ``c`` (retried as its policy says); never raises."""
    try:
        c = storable(c)
        if c.error is None:
            return Outcome(c, _row(c, Status.FULFILLED))
        policy = policy_of(c.run.function)
        status = final_status(c.error, c.run.attempt, c.run.max_attempts, policy)
        row = _row(c, status)
        if status is not Status.RETRYING:
            return Outcome(c, row)
        retry = next_attempt(c.run, policy, now)
        row["note"] = "next: " + retry["note"]
        return Outcome(c, row, retry)
    except Exception as e:  # one run's bookkeeping must not stop the others' (or the worker)
        log.exception("could not work out the outcome of run %s", c.run.id)
        return failed_outcome(c, "firehook could not work out this run's outcome", e)


def failed_outcome(c: Completion, what: str, e: BaseException) -> Outcome:
    """``c`` recorded as ``execution_failed`` (not retried) because of ``e``: only texts that
    are safe to store, the run's result and log left out, its own error kept in the message."""
    cause = getattr(e, "orig", None) or e  # a driver error without SQLAlchemy's statement dump
    reason = f"{what}: {type(cause).__name__}: {cause}"
    if c.error is not None:
        reason += f" (the run's own error: {c.error.type.value}: {c.error.message})"
    reason = storable_text(reason)
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    stack = "" if c.error is None else storable_text(c.error.stack)
    failed = dataclasses.replace(
        c, result=None, logs="", error=RunError(ErrorType.EXECUTION_FAILED, reason, stack)
    )
    row = _row(failed, Status.EXECUTION_FAILED)
    row["note"] = "firehook could not record this run as it ended"
    return Outcome(failed, row)

"""What crosses a pool process's pipe: requests checked and pickled, answers read back.

A request that cannot reach a pool process must fail before one is taken, alone and with a
clear reason: params that :func:`jsonsafe.problem` refuses (nesting past its limit, NaN,
NUL, ...) or that do not pickle are ``invalid_params``.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from firehook.invoker import _jsonfast
from firehook.invoker.envelope import ErrorType, RunError
from firehook.invoker.event import Event

__all__ = ["RunResult", "dumps", "failed", "payload", "refused", "result_of"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one run produced: a JSON result or an error, and its captured output."""

    result_json: str | None
    error: RunError | None
    logs: str
    started_at: datetime
    duration: timedelta


def result_of(answer: Any, seq: int) -> RunResult | None:
    """A pool process's answer to request ``seq`` as a :class:`RunResult`; None when it is
    not one (an answer for another request, or something else written on the pipe)."""
    if not isinstance(answer, dict) or answer.get("seq") != seq:
        return None
    try:
        error = answer["error"]
        return RunResult(
            result_json=answer["result"],
            error=None if error is None else RunError.from_dict(error),
            logs=answer["logs"],
            started_at=datetime.fromtimestamp(answer["started"], UTC),
            duration=timedelta(milliseconds=answer["duration_ms"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def failed(
    type_: ErrorType, message: str, started: datetime | None = None, t0: float | None = None
) -> RunResult:
    """A run that ended without an answer; ``t0`` (``perf_counter``) starts its duration."""
    duration = timedelta(seconds=0 if t0 is None else time.perf_counter() - t0)
    begun = datetime.now(UTC) if started is None else started
    return RunResult(None, RunError(type_, message), "", begun, duration)


def refused(event: Event) -> str | None:
    """Why ``event`` cannot be handed to a function (its params are not storable JSON)."""
    for what, part in (("params", event.data), ("request", event.request)):
        reason = _jsonfast.problem(part)
        if reason is not None:
            return f"the {what} cannot be passed to the function: {reason}"
    if event.extra:
        reason = _jsonfast.problem(event.extra)
        if reason is not None:
            return f"the event cannot be passed to the function: {reason}"
    return None


def dumps(message: Any) -> bytes:
    return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)


def payload(message: tuple[str, Any], event: Event | None = None) -> bytes | str:
    """``message`` pickled for a pool process, or why it cannot be handed over."""
    reason = None if event is None else refused(event)
    if reason is not None:
        return reason
    try:
        return dumps(message)
    except Exception as e:  # RecursionError, PicklingError, a __reduce__ that raised
        return f"the params cannot be handed to a pool process: {type(e).__name__}: {e}"

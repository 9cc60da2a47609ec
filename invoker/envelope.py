"""The ``{code, data, error}`` result envelope, error types, run statuses and invoke errors.

One place for the contract of DESIGN 3.2.  ``code`` is 0 on success and 1 on failure (as
MinCloud answers); ``error`` is ``{}`` or ``{"type", "message", "stack"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from firehook.config.errors import FirehookError

__all__ = [
    "FINISHED",
    "Envelope",
    "ErrorType",
    "FunctionNotFound",
    "InvalidParams",
    "InvokeError",
    "JobNotFound",
    "NotCancellable",
    "RunError",
    "Status",
]


class ErrorType(StrEnum):
    EXECUTION_FAILED = "execution_failed"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NOT_FOUND = "not_found"
    INVALID_PARAMS = "invalid_params"
    REJECTED = "rejected"
    WORKER_LOST = "worker_lost"


class Status(StrEnum):
    """Invocation statuses: MinCloud's job statuses plus ``retrying``, ``dead``, ``cancelled``."""

    WAITING = "waiting"
    EXECUTING = "executing"
    FULFILLED = "fulfilled"
    EXECUTION_FAILED = "execution_failed"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    SCHEDULE_FAILED = "schedule_failed"
    EXECUTION_REJECTED = "execution_rejected"
    WORKER_LOST = "worker_lost"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELLED = "cancelled"


FINISHED = frozenset(Status) - {Status.WAITING, Status.EXECUTING}

# the status a run ends in for each error type
STATUS_FOR_ERROR = {
    ErrorType.EXECUTION_FAILED: Status.EXECUTION_FAILED,
    ErrorType.DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
    ErrorType.WORKER_LOST: Status.WORKER_LOST,
    ErrorType.REJECTED: Status.SCHEDULE_FAILED,
    ErrorType.INVALID_PARAMS: Status.EXECUTION_REJECTED,
    ErrorType.NOT_FOUND: Status.EXECUTION_REJECTED,
}


@dataclass(frozen=True, slots=True)
class RunError:
    type: ErrorType
    message: str
    stack: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type.value, "message": self.message, "stack": self.stack}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunError:
        return cls(ErrorType(raw["type"]), str(raw.get("message", "")), str(raw.get("stack", "")))


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a caller gets back: ``{"code": 0, "data": ..., "error": {}}``."""

    data: Any = None
    error: RunError | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def code(self) -> int:
        return 0 if self.error is None else 1

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "data": self.data,
            "error": {} if self.error is None else self.error.to_dict(),
        }

    @classmethod
    def failure(cls, type_: ErrorType, message: str, stack: str = "") -> Envelope:
        return cls(None, RunError(type_, message, stack))


class InvokeError(FirehookError):
    """A run could not start; ``error_type`` says which envelope error it answers."""

    error_type: ErrorType = ErrorType.EXECUTION_FAILED

    def envelope(self) -> Envelope:
        return Envelope.failure(self.error_type, str(self))


class FunctionNotFound(InvokeError, LookupError):
    error_type = ErrorType.NOT_FOUND

    def __init__(self, name: str) -> None:
        super().__init__(f"function {name!r} not found")
        self.name = name


class InvalidParams(InvokeError, ValueError):
    error_type = ErrorType.INVALID_PARAMS


class JobNotFound(FirehookError, LookupError):
    """No invocation with that id (or idempotency key)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no run {what!r}")


class NotCancellable(FirehookError, ValueError):
    """The run is not waiting any more (it is running or finished)."""

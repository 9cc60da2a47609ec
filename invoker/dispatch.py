"""Dispatch: the one interface through which every caller runs or queues a function."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from config.settings import InvokerSettings
from invoker.envelope import (
    STATUS_FOR_ERROR,
    Envelope,
    ErrorType,
    FunctionNotFound,
    InvalidParams,
    RunError,
    Status,
)
from invoker.event import Event, EventType
from invoker.pool import Pool, RunResult
from invoker.records import new_job_id
from invoker.registry import FunctionInfo, Registry
from invoker.store import InvocationStore

__all__ = ["Dispatcher", "InvokeRequest", "Outcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    """One call: which function, with what params, from where."""

    function: str
    params: Any = None
    event_type: str = EventType.CLI.value
    caller_user_id: str | None = None
    request: dict[str, Any] | None = None
    source: str | None = None
    timeout: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a call: the envelope, and the record it left (None when nothing ran)."""

    envelope: Envelope
    job_id: str | None = None
    status: Status | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_params(params: Any) -> Any:
    """Params must survive a JSON round trip (they are stored and passed as JSON)."""
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidParams(f"params are not JSON: {e}") from None
    return params


class Dispatcher:
    """Runs functions now in the pool and records each run."""

    def __init__(
        self, registry: Registry, pool: Pool, store: InvocationStore, settings: InvokerSettings
    ) -> None:
        self.registry = registry
        self.pool = pool
        self.store = store
        self.settings = settings

    def run_sync(self, req: InvokeRequest) -> Outcome:
        """Run now with the sync limit; the record is committed before this returns."""
        try:
            info = self.registry.get(req.function)
            params = check_params(req.params)
        except (FunctionNotFound, InvalidParams) as e:
            return Outcome(e.envelope())
        timeout = req.timeout or self.settings.sync_timeout
        job_id = new_job_id()
        result = self._execute(info, params, req, job_id, timeout)
        envelope = Envelope(
            None if result.result_json is None else json.loads(result.result_json), result.error
        )
        status = Status.FULFILLED if result.error is None else STATUS_FOR_ERROR[result.error.type]
        self.store.insert(
            {
                "id": job_id,
                "root_id": job_id,
                "function": info.name,
                "event_type": req.event_type,
                "source": req.source,
                "status": status.value,
                "attempt": 1,
                "max_attempts": 1,
                "timeout_ms": int(timeout.total_seconds() * 1000),
                "params": params,
                "result": envelope.data,
                "error": None if result.error is None else result.error.to_dict(),
                "logs": result.logs,
                "caller_user_id": req.caller_user_id,
                "request": req.request,
                "created_at": result.started_at,
                "due_at": result.started_at,
                "started_at": result.started_at,
                "finished_at": result.started_at + result.duration,
                "duration_ms": result.duration.total_seconds() * 1000,
            }
        )
        log.debug("ran %s as %s: %s", info.name, job_id, status)
        return Outcome(envelope, job_id, status)

    def _execute(
        self, info: FunctionInfo, params: Any, req: InvokeRequest, job_id: str, timeout: timedelta
    ) -> RunResult:
        if info.error is not None:
            error = RunError(
                ErrorType.EXECUTION_FAILED, f"{info.name} failed to load: {info.error}"
            )
            return RunResult(None, error, "", datetime.now(UTC), timedelta())
        event = Event(
            data=params,
            event_type=req.event_type,
            job_id=job_id,
            attempt=1,
            time_limit_ms=int(timeout.total_seconds() * 1000),
            memory_limit_mb=self.settings.memory_limit_mb,
            request=req.request,
            trigger=req.source if req.event_type == EventType.TRIGGER else None,
        )
        return self.pool.run(info, event, timeout)

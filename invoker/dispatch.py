"""Dispatch: the one interface through which every caller runs or queues a function.

``run_sync`` runs now in the local pool with the sync limit and records the run before it
answers.  ``enqueue`` inserts one ``waiting`` row with its due time (async, delayed,
triggered, timer); a worker claims it when it is due.  Cancel and replay live here too, so
the CLI and the HTTP API share them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from firehook.config.durations import MAX_DURATION
from firehook.config.errors import DatabaseError
from firehook.config.functions import FunctionOptions, RetryPolicy
from firehook.config.settings import InvokerSettings
from firehook.invoker import _jsonfast, jsonsafe
from firehook.invoker.envelope import (
    STATUS_FOR_ERROR,
    Envelope,
    ErrorType,
    FunctionNotFound,
    InvalidParams,
    JobNotFound,
    RunError,
    Status,
)
from firehook.invoker.event import Event, EventType
from firehook.invoker.outcomes import storable_error
from firehook.invoker.pool import Pool, RunResult
from firehook.invoker.queue import Enqueued, Queue
from firehook.invoker.records import Invocation, new_job_id
from firehook.invoker.registry import FunctionInfo, Registry
from firehook.invoker.store import InvocationFilter, InvocationStore

__all__ = [
    "Dispatcher",
    "InvokeRequest",
    "Outcome",
    "check_key",
    "check_params",
    "storable_outcome",
]

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
    note: str | None = None  # why this run exists, kept on its record (e.g. "replay of ...")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a sync call: the envelope, and the record it left (None: nothing ran)."""

    envelope: Envelope
    job_id: str | None = None
    status: Status | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_params(params: Any) -> Any:
    """Params must be storable JSON within the limits on data (:mod:`jsonsafe`): they are
    stored and passed as JSON, so what the store cannot hold is refused before any run."""
    try:
        _jsonfast.encode(params)  # jsonsafe.problem()'s verdict at the C encoder's speed
    except (TypeError, ValueError, RecursionError) as e:  # Refused is a ValueError
        raise InvalidParams(f"params are not JSON: {e}") from None
    return params


def check_key(key: str | None, what: str = "an idempotency key") -> str | None:
    """A key (idempotency, cancel) has 1 to 300 characters the store can hold."""
    if key is None:
        return None
    if not 0 < len(key) <= 300:
        raise InvalidParams(f"{what} has 1 to 300 characters")
    reason = jsonsafe.problem(key)
    if reason is not None:
        raise InvalidParams(f"{what} is refused: {reason}")
    return key


def storable_outcome(result: RunResult) -> tuple[Any, RunError | None]:
    """The data and error of a run that executed, in a form the store can hold.

    A result the store cannot hold (a NUL character, too deep, see :mod:`jsonsafe`) makes the
    run ``execution_failed`` with the reason; an error's message and stack are made storable
    (NUL escaped, lone surrogates replaced).  The run is recorded either way.
    """
    error = None if result.error is None else storable_error(result.error)
    if result.result_json is None:
        return None, error
    try:
        data = jsonsafe.loads(result.result_json)
    except ValueError as e:
        reason = f"the result of main() cannot be stored: {e}"
        return None, RunError(ErrorType.EXECUTION_FAILED, reason)
    return data, error


class Dispatcher:
    """Runs functions now, or queues them; every run is on record."""

    def __init__(
        self,
        registry: Registry,
        pool: Pool,
        store: InvocationStore,
        settings: InvokerSettings,
        *,
        queue: Queue | None = None,
        default_retry: RetryPolicy | None = None,
        options_for: Callable[[str], FunctionOptions] | None = None,
    ) -> None:
        self.registry = registry
        self.pool = pool
        self.store = store
        self.settings = settings
        self.queue = queue or Queue(store.engine)
        self.default_retry = default_retry or RetryPolicy()
        self._options_for = options_for or (lambda _name: FunctionOptions())

    # options -----------------------------------------------------------------------------
    def options(self, function: str) -> FunctionOptions:
        return self._options_for(function)

    def retry_policy(self, function: str) -> RetryPolicy:
        return self.options(function).retry or self.default_retry

    def async_timeout(self, function: str) -> timedelta:
        return self.options(function).timeout or self.settings.async_timeout

    # now ---------------------------------------------------------------------------------
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
        data, error = storable_outcome(result)
        envelope = Envelope(data, error)
        status = Status.FULFILLED if error is None else STATUS_FOR_ERROR[error.type]
        envelope, status = self._record(
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
                "error": None if error is None else error.to_dict(),
                "logs": jsonsafe.storable_text(result.logs),
                "caller_user_id": req.caller_user_id,
                "request": req.request,
                "created_at": result.started_at,
                "due_at": result.started_at,
                "started_at": result.started_at,
                "finished_at": result.started_at + result.duration,
                "duration_ms": result.duration.total_seconds() * 1000,
            },
            envelope,
            status,
        )
        log.debug("ran %s as %s: %s", info.name, job_id, status)
        return Outcome(envelope, job_id, status)

    def _record(
        self, row: dict[str, Any], envelope: Envelope, status: Status
    ) -> tuple[Envelope, Status]:
        """Record a sync run that executed.  A row the database refuses as data (a value it
        cannot hold) is recorded without its free-form fields, as ``execution_failed`` with
        the reason, rather than left unrecorded behind a "try again" (which would run it
        twice).  A database that is down still raises :class:`DatabaseError`."""
        try:
            self.store.insert(row)
            return envelope, status
        except DatabaseError as e:
            cause = e.__cause__
            if not isinstance(cause, DataError | IntegrityError):
                raise
            lines = str(cause.orig).strip().splitlines() or [type(cause.orig).__name__]
            reason = jsonsafe.storable_text(lines[0])[:300]
        log.error(
            "run %s of %s could not be recorded as it was: %s", row["id"], row["function"], reason
        )
        error = RunError(
            ErrorType.EXECUTION_FAILED, f"the run could not be recorded as it was: {reason}"
        )
        blank = dict.fromkeys(("params", "result", "logs", "request", "caller_user_id", "source"))
        self.store.insert(
            {**row, **blank, "status": Status.EXECUTION_FAILED.value, "error": error.to_dict()}
        )
        return Envelope(None, error), Status.EXECUTION_FAILED

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

    # later -------------------------------------------------------------------------------
    def enqueue(
        self,
        req: InvokeRequest,
        *,
        delay: timedelta | None = None,
        at: datetime | None = None,
        key: str | None = None,
    ) -> Enqueued:
        """Queue one run, due now, after ``delay`` or at ``at``; a known ``key`` returns its run."""
        return self.enqueue_many([(req, self.due_time(delay, at), key)])[0]

    def enqueue_many(
        self, items: Sequence[tuple[InvokeRequest, datetime | None, str | None]]
    ) -> list[Enqueued]:
        """Queue many runs in one transaction: ``(request, due time or None, key or None)``."""
        now = self.queue.clock()
        known: dict[str, tuple[int, int]] = {}  # per function: (attempts, default timeout ms)
        rows = [self._row(req, due or now, key, now, known) for req, due, key in items]
        return self.queue.enqueue(rows)

    def due_time(self, delay: timedelta | None, at: datetime | None) -> datetime | None:
        if delay is not None and at is not None:
            raise InvalidParams("give a delay or a time, not both")
        if delay is not None:
            if delay < timedelta(0):
                raise InvalidParams("a delay cannot be negative")
            if delay > MAX_DURATION:
                raise InvalidParams(f"a delay is at most {MAX_DURATION.days} days (100 years)")
            return self.queue.clock() + delay
        if at is not None:
            if at.tzinfo is None:
                raise InvalidParams("the time needs a UTC offset, e.g. 2026-12-01T20:00:00+08:00")
            try:
                return at.astimezone(UTC)
            except OverflowError:
                raise InvalidParams(f"the time {at.isoformat()} is out of range") from None
        return None

    def _row(
        self,
        req: InvokeRequest,
        due: datetime,
        key: str | None,
        now: datetime,
        known: dict[str, tuple[int, int]],
    ) -> dict[str, Any]:
        defaults = known.get(req.function)
        if defaults is None:  # once per function and batch
            self.registry.get(req.function)  # FunctionNotFound for unknown names
            default_timeout = self.async_timeout(req.function).total_seconds()
            defaults = (self.retry_policy(req.function).attempts, int(default_timeout * 1000))
            known[req.function] = defaults
        params = check_params(req.params)
        check_key(key)
        job_id = new_job_id()
        attempts, timeout_ms = defaults
        if req.timeout is not None:
            timeout_ms = int(req.timeout.total_seconds() * 1000)
        return {
            "id": job_id,
            "root_id": job_id,
            "function": req.function,
            "event_type": req.event_type,
            "source": req.source,
            "idempotency_key": key,
            "status": Status.WAITING.value,
            "attempt": 1,
            "max_attempts": attempts,
            "timeout_ms": timeout_ms,
            "params": params,
            "request": req.request,
            "caller_user_id": req.caller_user_id,
            "created_at": now,
            "due_at": due,
            "note": req.note,
        }

    # operations --------------------------------------------------------------------------
    def cancel(
        self, job_id: str | None = None, key: str | None = None, function: str | None = None
    ) -> list[str]:
        for name in (job_id, function):  # no run or function has such a name
            if name is not None and jsonsafe.problem(name) is not None:
                raise JobNotFound(jsonsafe.storable_text(name))
        return self.queue.cancel(job_id, check_key(key), function)

    def replay(
        self,
        job_ids: Sequence[str] = (),
        flt: InvocationFilter | None = None,
        dry_run: bool = False,
    ) -> list[tuple[Invocation, str | None]]:
        """Queue finished runs again as new runs; ``(old run, new job id or None if dry)``."""
        rows: list[Invocation] = []
        for job_id in job_ids:
            row = self.store.get(job_id) if jsonsafe.problem(job_id) is None else None
            if row is None:
                raise JobNotFound(jsonsafe.storable_text(job_id))
            rows.append(row)
        if flt is not None:
            rows.extend(self.store.find(flt))
        finished = [r for r in rows if r.status not in (Status.WAITING, Status.EXECUTING)]
        if dry_run or not finished:
            return [(r, None) for r in finished]
        items = [
            (
                InvokeRequest(
                    r.function,
                    r.params,
                    event_type=r.event_type,
                    caller_user_id=r.caller_user_id,
                    request=r.request,
                    source=r.source,
                    note=f"replay of {r.id}",
                ),
                None,
                None,
            )
            for r in finished
        ]
        enqueued = self.enqueue_many(items)
        return [(r, e.job_id) for r, e in zip(finished, enqueued, strict=True)]

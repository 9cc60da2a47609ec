"""``from firehook import invoke``: the Python API for applications and for functions.

The first call builds an :class:`App` from the environment's ``Settings`` (the same
``FIREHOOK_*`` variables as the daemon) and keeps it for the process; ``close()`` stops it.
Inside a function (a pool worker) a sync call runs the other function in the same process,
under the caller's own deadline, and is recorded with ``event_type`` ``function``.
"""

from __future__ import annotations

import atexit
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from firehook.invoker import _child
from firehook.invoker.dispatch import InvokeRequest, check_params
from firehook.invoker.envelope import FunctionNotFound, InvalidParams, Status
from firehook.invoker.event import Event, EventType
from firehook.invoker.records import new_job_id

__all__ = ["close", "invoke"]

_lock = threading.Lock()
_app: Any = None


def _default_app() -> Any:
    global _app
    with _lock:
        if _app is None:
            from firehook.app import App  # imported late: a function's worker needs no pool

            app = App()
            if not _child.IN_WORKER:
                app.start()
            else:
                app.open_db()
            _app = app
            atexit.register(close)
        return _app


def close() -> None:
    """Stop the pool and release the database (called at exit)."""
    global _app
    with _lock:
        if _app is not None:
            _app.close()
            _app = None


def invoke(
    name: str,
    params: Any = None,
    sync: bool = True,
    *,
    delay: timedelta | None = None,
    at: datetime | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """Run ``name`` now and get its ``{code, data, error}``, or queue it (``sync=False``).

    A queued call answers ``{"code": 0, "data": {"status": "ok", "job_id": ...}, "error": {}}``
    at once; ``delay``, ``at`` (aware datetime) and ``key`` (idempotency) apply to it.
    """
    if sync and (delay is not None or at is not None or key is not None):
        raise InvalidParams("delay, at and key apply to queued runs: pass sync=False")
    app = _default_app()
    event_type = EventType.FUNCTION.value if _child.IN_WORKER else EventType.SDK.value
    if not sync:
        if delay is not None or at is not None:
            event_type = EventType.FUNCTION.value if _child.IN_WORKER else EventType.DELAYED.value
        req = InvokeRequest(name, params, event_type=event_type)
        queued = app.dispatcher.enqueue(req, delay=delay, at=at, key=key)
        return {"code": 0, "data": {"status": "ok", "job_id": queued.job_id}, "error": {}}
    if _child.IN_WORKER:
        return _invoke_in_this_process(app, name, params)
    outcome = app.dispatcher.run_sync(InvokeRequest(name, params, event_type=event_type))
    result: dict[str, Any] = outcome.envelope.to_dict()
    return result


def _invoke_in_this_process(app: Any, name: str, params: Any) -> dict[str, Any]:
    """A function calling another synchronously: run it here, record it, answer."""
    try:
        info = app.registry.get(name)
        check_params(params)
    except (FunctionNotFound, InvalidParams) as e:
        return e.envelope().to_dict()
    job_id = new_job_id()
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    event = Event(data=params, event_type=EventType.FUNCTION.value, job_id=job_id)
    answer = _child.call_here(info.name, info.path, info.is_package, event)
    duration = timedelta(seconds=time.perf_counter() - t0)
    error = answer["error"]
    status = Status.FULFILLED if error is None else Status.EXECUTION_FAILED
    app.store.insert(
        {
            "id": job_id,
            "root_id": job_id,
            "function": info.name,
            "event_type": EventType.FUNCTION.value,
            "status": status.value,
            "params": params,
            "result": answer["data"],
            "error": error,
            "logs": "",
            "created_at": started,
            "due_at": started,
            "started_at": started,
            "finished_at": started + duration,
            "duration_ms": duration.total_seconds() * 1000,
        }
    )
    return {"code": 0 if error is None else 1, "data": answer["data"], "error": error or {}}

"""firehook's own REST API under ``/v1/``, for operators (``Authorization: Bearer <admin key>``).

A run's caller may also read that run (``GET /v1/invocations/{id}``) with their own session
token or JWT.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from firehook import output
from firehook.api.auth import ADMIN, Caller
from firehook.api.context import JOB_HEADER, ApiContext, request_info
from firehook.api.errors import BadRequest, Conflict, NotFound
from firehook.config.durations import Duration
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.envelope import FINISHED, JobNotFound, NotCancellable, Status
from firehook.invoker.event import EventType
from firehook.invoker.records import Invocation
from firehook.invoker.store import InvocationFilter

__all__ = ["router"]


class InvokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Any = None
    sync: bool | None = Field(
        default=None, description="default: true, unless delay, at or an Idempotency-Key is given"
    )
    delay: Duration | None = Field(default=None, description="queue it to run after 30s, 5m ...")
    at: datetime | None = Field(default=None, description="queue it for this time (with offset)")


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=300, description="the run's idempotency key")
    function: str | None = Field(default=None, description="the function the key belongs to")


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(default=[], max_length=10000)
    function: str | None = None
    status: Status | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=1000, ge=1, le=100000)
    dry_run: bool = False


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise BadRequest(f"{name} needs a UTC offset, e.g. 2026-12-01T20:00:00+08:00")
    return value


def caller_view(row: Invocation) -> dict[str, Any]:
    """What a run's caller may see of it: no params, logs or request of others."""
    return {
        "id": row.id,
        "function": row.function,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "finished_at": None if row.finished_at is None else row.finished_at.isoformat(),
        "result": row.envelope_dict() if row.status in FINISHED else None,
    }


def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.firehook
    return ctx


async def admin(request: Request) -> Caller:
    """Dependency: the admin API key, or 401/403."""
    return _context(request).auth.require_admin(request.headers)


def admin_or_caller(request: Request) -> Caller:
    """Dependency: the admin, or an app user by session token or JWT."""
    return _admin_or_caller(_context(request), request)


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["firehook"])
    dispatcher = ctx.app.dispatcher

    @r.get("/functions", summary="List functions", dependencies=[Depends(admin)])
    def list_functions() -> dict[str, Any]:
        items = [
            {"name": i.name, "path": str(i.path), "ok": i.ok, "error": i.error}
            for i in ctx.app.registry.list()
        ]
        return {"items": items}

    @r.post(
        "/functions/{name}/invoke",
        summary="Invoke: run now (200 envelope) or queue (202; delay, at, Idempotency-Key)",
        responses={202: {"description": "queued"}, 404: {"description": "unknown function"}},
    )
    async def invoke(
        request: Request,
        name: str,
        body: InvokeBody,
        caller: Annotated[Caller, Depends(admin)],
        idempotency_key: Annotated[str | None, Header(max_length=300)] = None,
    ) -> Response:
        return await _invoke(ctx, request, name, body, caller, idempotency_key)

    @r.get("/invocations", summary="List runs, newest first", dependencies=[Depends(admin)])
    def list_invocations(
        function: str | None = None,
        status: Status | None = None,
        event_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        flt = InvocationFilter(
            function=function,
            status=None if status is None else status.value,
            event_type=event_type,
            since=_aware("since", since),
            until=_aware("until", until),
            limit=limit,
            offset=offset,
        )
        rows = dispatcher.store.find(flt)
        return {
            "items": [output.record_dict(row, with_logs=False) for row in rows],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + len(rows) if len(rows) == limit else None,
        }

    @r.get(
        "/invocations/{job_id}",
        summary="One run: in full for the admin, its result for its caller",
    )
    def get_invocation(
        job_id: str, caller: Annotated[Caller, Depends(admin_or_caller)]
    ) -> dict[str, Any]:
        return _get(ctx, job_id, caller)

    @r.post(
        "/invocations/{job_id}/cancel",
        summary="Cancel a waiting run",
        dependencies=[Depends(admin)],
    )
    def cancel(job_id: str) -> dict[str, Any]:
        return {"cancelled": _cancel(ctx, job_id, None)}

    @r.post(
        "/invocations/cancel",
        summary="Cancel a waiting run by its idempotency key",
        dependencies=[Depends(admin)],
    )
    def cancel_by_key(body: CancelBody) -> dict[str, Any]:
        return {"cancelled": _cancel(ctx, None, body.key, body.function)}

    @r.post("/invocations/replay", summary="Queue runs again", dependencies=[Depends(admin)])
    def replay(body: ReplayBody) -> dict[str, Any]:
        return _replay(ctx, body)

    return r


def _admin_or_caller(ctx: ApiContext, request: Request) -> Caller:
    headers = request.headers
    if ctx.auth.is_admin_key(headers):
        return ADMIN
    token = ctx.auth.session_token(headers)
    if headers.get("authorization", "").lower().startswith("hydrogen-r1"):
        ctx.auth.check_client(headers)
    return ctx.auth.user(token)


async def _invoke(
    ctx: ApiContext,
    request: Request,
    name: str,
    body: InvokeBody,
    caller: Caller,
    key: str | None,
) -> Response:
    later = body.delay is not None or body.at is not None
    queued = later or key is not None
    if body.sync and queued:
        raise BadRequest("delay, at and Idempotency-Key queue the run: drop sync=true")
    req = InvokeRequest(
        name,
        body.data,
        event_type=(EventType.DELAYED if later else EventType.HTTP).value,
        caller_user_id=caller.record_id,
        request=request_info(request, caller),
    )
    if body.sync is not False and not queued:
        return await run_in_threadpool(ctx.run_now, req)
    at = _aware("at", body.at)
    done = await run_in_threadpool(lambda: ctx.queue(req, delay=body.delay, at=at, key=key))
    answer = {
        "job_id": done.job_id,
        "created": done.created,
        "status": done.status,
        "due_at": done.due_at.isoformat(),
    }
    return JSONResponse(
        answer, status_code=202 if done.created else 200, headers={JOB_HEADER: done.job_id}
    )


def _get(ctx: ApiContext, job_id: str, caller: Caller) -> dict[str, Any]:
    row = ctx.app.dispatcher.store.get(job_id) if len(job_id) <= 32 else None
    if row is None or not (caller.is_admin or row.caller_user_id == caller.record_id):
        raise NotFound(f"no run {job_id!r}")
    if caller.is_admin:
        return {**output.record_dict(row), "envelope": row.envelope_dict()}
    return caller_view(row)


def _replay(ctx: ApiContext, body: ReplayBody) -> dict[str, Any]:
    named = (body.function, body.status, body.event_type, body.since, body.until)
    filtered = any(v is not None for v in named)
    if not body.ids and not filtered:
        raise BadRequest("name runs to replay: ids, or function/status/event_type/since/until")
    flt = None
    if filtered:
        flt = InvocationFilter(
            function=body.function,
            status=None if body.status is None else body.status.value,
            event_type=body.event_type,
            since=_aware("since", body.since),
            until=_aware("until", body.until),
            limit=body.limit,
        )
    try:
        done = ctx.app.dispatcher.replay(body.ids, flt, dry_run=body.dry_run)
    except JobNotFound as e:
        raise NotFound(str(e)) from None
    runs = [
        {"id": old.id, "function": old.function, "status": old.status, "new_id": new}
        for old, new in done
    ]
    return {"dry_run": body.dry_run, "count": len(runs), "runs": runs}


def _cancel(
    ctx: ApiContext, job_id: str | None, key: str | None, function: str | None = None
) -> list[str]:
    try:
        return ctx.app.dispatcher.cancel(job_id, key, function)
    except JobNotFound as e:
        raise NotFound(str(e)) from None
    except NotCancellable as e:
        raise Conflict(str(e)) from None

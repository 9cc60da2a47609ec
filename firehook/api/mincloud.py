"""The MinCloud invoke route: ``POST /hserve/v1/cloud-function/job/`` (DESIGN 3.3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from firehook.api.body import model_body, parse_json
from firehook.api.context import ASYNC_ACCEPTED, JOB_HEADER, ApiContext, client_ip, request_info
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.event import EventType

__all__ = ["InvokeJob", "router"]


class InvokeJob(BaseModel):
    """What ``BaaS.invoke(function_name, data, sync)`` posts."""

    model_config = ConfigDict(extra="ignore", strict=True)

    function_name: str = Field(min_length=1, max_length=200)
    data: Any = None
    sync: bool = True


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed body or params"},
    401: {"description": "no or bad client id, not signed in, expired or forged token"},
    403: {"description": "anonymous user while anonymous invoke is off"},
    404: {"description": "unknown function"},
    413: {"description": "body too large"},
    429: {"description": "rate limit; see Retry-After"},
}


def parse_invoke_body(raw: bytes) -> InvokeJob:
    """The invoke body, within the limits on data (400 with the reason otherwise)."""
    return model_body(InvokeJob, parse_json(raw))


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(tags=["MinCloud SDK"])

    @r.post(
        "/hserve/v1/cloud-function/job/",
        summary="Invoke a function (BaaS.invoke)",
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": InvokeJob.model_json_schema()}},
            }
        },
    )
    async def invoke_job(request: Request) -> Response:
        """Sync (default): run now and answer the envelope within the sync limit.  Async
        (``"sync": false``): queue it and answer ``{"code": 0, "data": {"status": "ok"}}`` with
        the job id in ``X-Firehook-Job-Id``."""
        ctx.invoke_per_ip.check(client_ip(request), "address")
        ctx.auth.check_client(request.headers)
        token = ctx.auth.session_token(request.headers)
        body = parse_invoke_body(await request.body())
        return await run_in_threadpool(_invoke, ctx, request, token, body)

    return r


def _invoke(ctx: ApiContext, request: Request, token: str, body: InvokeJob) -> Response:
    caller = ctx.auth.user(token)
    ctx.invoke_per_user.check(caller.record_id, "user")
    ctx.check_may_invoke(caller, body.function_name)
    req = InvokeRequest(
        body.function_name,
        body.data,
        event_type=EventType.SDK.value,
        caller_user_id=caller.record_id,
        request=request_info(request, caller),
    )
    if body.sync:
        return ctx.run_now(req)
    queued = ctx.queue(req)
    return JSONResponse(ASYNC_ACCEPTED, headers={JOB_HEADER: queued.job_id})

"""``/healthz`` (alive), ``/readyz`` (database and broker reachable) and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from firehook.app import App
from firehook.status_http import health_body

__all__ = ["router"]


def router(app: App) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    health = app.health(broker=True)

    @r.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status": "alive"}', media_type="application/json")

    @r.get("/readyz")
    async def readyz() -> Response:
        code, body = await run_in_threadpool(health_body, health)
        return Response(body, status_code=code, media_type="application/json")

    @r.get("/metrics")
    async def metrics() -> Response:
        body = await run_in_threadpool(app.metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return r

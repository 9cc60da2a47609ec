"""``create_api(app)``: the FastAPI application over one :class:`App`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import firehook
from firehook.api import events, health, mincloud, rest, signin
from firehook.api.context import JOB_HEADER, ApiContext
from firehook.api.errors import CatchAll, install_error_handlers
from firehook.api.limits import BodyLimit
from firehook.app import App

__all__ = ["create_api"]

DESCRIPTION = """\
Invoke functions with the MinCloud SDK protocol (`/hserve/...`), and operate firehook with
its own REST API (`/v1/...`, `Authorization: Bearer <FIREHOOK_ADMIN__API_KEY>`).
Errors answer `{"status": "error", "error_msg": "..."}`.
"""


def create_api(app: App) -> FastAPI:
    """Build the HTTP API; opens nothing (the caller starts ``app``)."""
    ctx = ApiContext.build(app)
    api = FastAPI(
        title="firehook",
        version=firehook.version(),
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.firehook = ctx
    install_error_handlers(api)
    api.include_router(mincloud.router(ctx))
    api.include_router(signin.router(ctx))
    api.include_router(rest.router(ctx))
    api.include_router(events.router(ctx))
    api.include_router(health.router(app))
    http = app.settings.http
    api.add_middleware(CatchAll)  # innermost of ours: a 500 still gets CORS headers
    api.add_middleware(BodyLimit, max_bytes=http.max_body_bytes)
    if http.cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=http.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=[JOB_HEADER, "Retry-After"],
            max_age=600,
        )
    return api

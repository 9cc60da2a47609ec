"""HTTP errors and the handlers that answer them as ``{"status": "error", "error_msg": ...}``.

That body is what MinCloud answers and what the SDK turns into an ``HError``; the ``/v1/`` API
uses it too.  Nothing firehook raised by accident reaches a caller: an unexpected exception is
logged with its trace and answered as a bare 500, a database outage as 503.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firehook.config.errors import DatabaseError, FirehookError

__all__ = [
    "ApiError",
    "BadRequest",
    "CatchAll",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "TooManyRequests",
    "Unauthorized",
    "error_response",
    "install_error_handlers",
]

log = logging.getLogger(__name__)


class ApiError(FirehookError):
    """An error answered over HTTP with ``status_code`` and the message as ``error_msg``."""

    status_code = 400

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(ApiError, ValueError):
    status_code = 400


class Unauthorized(ApiError, PermissionError):
    status_code = 401


class Forbidden(ApiError, PermissionError):
    status_code = 403


class NotFound(ApiError, LookupError):
    status_code = 404


class Conflict(ApiError, ValueError):
    status_code = 409


class PayloadTooLarge(ApiError, ValueError):
    status_code = 413


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


def error_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "error_msg": message}, status_code=status_code, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return "the request body is not valid JSON"
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.message, exc.headers)


async def _on_http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, _validation_message(exc))


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "the database is unavailable; try again later")


class CatchAll:
    """ASGI middleware: an unexpected exception is logged with its trace and answered 500.

    Starlette's own last-resort handler re-raises after answering, which makes the server
    drop the keep-alive connection; this one answers and keeps the connection usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await error_response(500, "internal error")(scope, receive, send)


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(ApiError, _on_api_error)
    api.add_exception_handler(StarletteHTTPException, _on_http_exception)
    api.add_exception_handler(RequestValidationError, _on_validation_error)
    api.add_exception_handler(DatabaseError, _on_database_error)

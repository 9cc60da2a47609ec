"""What every route shares: the app, the authenticator, the limiters, and how to invoke."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request

from firehook.api.auth import Authenticator, Caller
from firehook.api.errors import BadRequest, Forbidden, NotFound
from firehook.api.limits import RateLimiter
from firehook.api.users import UserStore
from firehook.app import App
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.envelope import Envelope, ErrorType, FunctionNotFound, InvalidParams
from firehook.invoker.queue import Enqueued

__all__ = ["ASYNC_ACCEPTED", "JOB_HEADER", "ApiContext", "client_ip"]

JOB_HEADER = "X-Firehook-Job-Id"
ASYNC_ACCEPTED = {"code": 0, "data": {"status": "ok"}, "error": {}}


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def request_info(request: Request, caller: Caller) -> dict[str, Any]:
    """``event.request`` for a call over HTTP (DESIGN 3.1)."""
    return {
        "meta": {
            "ip_address": client_ip(request),
            "user_agent": request.headers.get("user-agent"),
        },
        "user": caller.request_user(),
    }


@dataclass
class ApiContext:
    app: App
    users: UserStore
    auth: Authenticator
    invoke_per_user: RateLimiter
    invoke_per_ip: RateLimiter
    signin_per_ip: RateLimiter

    @classmethod
    def build(cls, app: App) -> ApiContext:
        s = app.settings
        users = UserStore(app.engine, s.auth.session_ttl, cache_ttl=s.auth.session_cache)
        return cls(
            app=app,
            users=users,
            auth=Authenticator(users, s.auth, s.admin),
            invoke_per_user=RateLimiter(
                s.http.invoke_rate_per_user, s.http.invoke_burst_per_user, what="invokes"
            ),
            invoke_per_ip=RateLimiter(
                s.http.invoke_rate_per_ip, s.http.invoke_burst_per_ip, what="invokes"
            ),
            signin_per_ip=RateLimiter(
                s.http.signin_rate_per_ip, s.http.signin_burst_per_ip, what="sign-ins"
            ),
        )

    # who may call --------------------------------------------------------------------------
    def check_may_invoke(self, caller: Caller, function: str) -> None:
        """Anonymous users only where the function's option or the setting allows it (403)."""
        if not caller.anonymous:
            return
        option = self.app.function_options(function).allow_anonymous
        allowed = self.app.settings.auth.allow_anonymous_invoke if option is None else option
        if not allowed:
            raise Forbidden("anonymous users may not invoke functions: sign in first")

    # invoking (blocking: call from a worker thread) ----------------------------------------
    def run_now(self, req: InvokeRequest) -> JSONResponse:
        """Run within the sync limit; 200 with the envelope whenever the function ran."""
        outcome = self.app.dispatcher.run_sync(req)
        if outcome.job_id is None:
            raise _refusal(outcome.envelope)
        return JSONResponse(outcome.envelope.to_dict(), headers={JOB_HEADER: outcome.job_id})

    def queue(self, req: InvokeRequest, **when: Any) -> Enqueued:
        try:
            return self.app.dispatcher.enqueue(req, **when)
        except FunctionNotFound as e:
            raise NotFound(str(e)) from None
        except InvalidParams as e:
            raise BadRequest(str(e)) from None


def _refusal(envelope: Envelope) -> Exception:
    assert envelope.error is not None
    if envelope.error.type is ErrorType.NOT_FOUND:
        return NotFound(envelope.error.message)
    return BadRequest(envelope.error.message)

"""Events over HTTP: ``POST /v1/events`` (a CloudEvent, or a list) and incoming webhooks
``POST /v1/hooks/{hook}`` (the JSON body becomes the data of rules on that hook).

``/v1/events`` takes the admin key, or a source key (``FIREHOOK_TRIGGERS__SOURCE_KEYS``,
``{"shop": "<key>"}``) whose events must name that source.  A hook answers 404 unless a rule
listens on it; with a secret set for it (``FIREHOOK_TRIGGERS__HOOK_SECRETS``) the caller sends
``X-Hook-Secret``.  Both publish to the broker, as every other producer does, and answer 202.
"""

from __future__ import annotations

import hmac
import json
import threading
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from firehook.api.context import ApiContext
from firehook.api.errors import ApiError, BadRequest, Forbidden, NotFound, Unauthorized
from firehook.config.model import OnHook
from firehook.triggers.broker import Topology
from firehook.triggers.events import CloudEvent, InvalidEvent, hook_event, parse_event
from firehook.triggers.publisher import Publisher, PublishError, topology_for

__all__ = ["router"]

MAX_BATCH = 1000


class BrokerUnavailable(ApiError):
    status_code = 503


class _Publishing:
    """One publisher per API process, opened on first use."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def send(self, events: list[CloudEvent]) -> None:
        with self._lock:
            if self._publisher is None:
                self._publisher = Publisher(self.url, self.topology)
        try:
            self._publisher.publish_many(events)
        except PublishError as e:
            raise BrokerUnavailable(f"the event broker did not take the event(s): {e}") from None


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not valid JSON: {e}") from None


def _source_allowed(ctx: ApiContext, request: Request, events: list[CloudEvent]) -> None:
    if ctx.auth.is_admin_key(request.headers):
        return
    keys = ctx.app.settings.triggers.source_keys
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the admin key or a source key: Authorization: Bearer <key>")
    sources = [
        s for s, k in keys.items() if hmac.compare_digest(k.encode(), token.strip().encode())
    ]
    if not sources:
        raise Unauthorized("invalid key")
    wrong = sorted({e.source for e in events if e.source != sources[0]})
    if wrong:
        raise Forbidden(f"this key publishes as source {sources[0]!r} only, not {wrong}")


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["events"])
    settings = ctx.app.settings
    publishing = _Publishing(settings.broker_url, topology_for(settings.triggers))

    @r.post("/events", status_code=202, summary="Publish a data-change event (or a list)")
    async def publish_events(request: Request) -> JSONResponse:
        body = _json_body(await request.body())
        items = body if isinstance(body, list) else [body]
        if not 0 < len(items) <= MAX_BATCH:
            raise BadRequest(f"send 1 to {MAX_BATCH} events")
        events = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BadRequest(f"event {i} is not a JSON object")
            try:
                events.append(parse_event(item))
            except InvalidEvent as e:
                raise BadRequest(f"event {i} is not a valid event: {e}") from None
        _source_allowed(ctx, request, events)
        await run_in_threadpool(publishing.send, events)
        return JSONResponse(
            {"published": [{"id": e.id, "routing_key": e.routing_key} for e in events]},
            status_code=202,
        )

    @r.post(
        "/hooks/{hook}", status_code=202, summary="Incoming webhook: the body is the event data"
    )
    async def incoming_webhook(hook: str, request: Request) -> JSONResponse:
        rules = ctx.app.rules.current()
        if not any(isinstance(t.on, OnHook) and t.on.hook == hook for t in rules.triggers):
            raise NotFound(f"no rule listens on hook {hook!r}")
        secret = ctx.app.settings.triggers.hook_secrets.get(hook)
        if secret is not None:
            sent = request.headers.get("x-hook-secret", "")
            if not hmac.compare_digest(sent.encode(), secret.encode()):
                raise Unauthorized("this hook needs its secret in X-Hook-Secret")
        event = hook_event(hook, _json_body(await request.body()), source="webhook")
        await run_in_threadpool(publishing.send, [event])
        return JSONResponse({"id": event.id, "routing_key": event.routing_key}, status_code=202)

    return r

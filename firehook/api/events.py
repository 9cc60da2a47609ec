"""Events over HTTP: ``POST /v1/events`` (a CloudEvent, or a list) and incoming webhooks
``POST /v1/hooks/{hook}`` (the JSON body becomes the data of rules on that hook).

``/v1/events`` takes the admin key, or a source key (``FIREHOOK_TRIGGERS__SOURCE_KEYS``,
``{"shop": "<key>"}``) whose events must name that source; the key is checked before the body
is read.  It takes record changes only: ``firehook.hook`` events come from the hook route
alone, so a source key cannot stand in for a hook's secret.  A hook answers 404 unless a rule
listens on it; with a secret set for it (``FIREHOOK_TRIGGERS__HOOK_SECRETS``) the caller sends
``X-Hook-Secret``.  Both publish to the broker, as every other producer does, and answer 202.
Bodies are parsed within the limits on data (:mod:`firehook.api.body`).
"""

from __future__ import annotations

import hmac
import logging
import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from firehook.api.body import json_body
from firehook.api.context import ApiContext
from firehook.api.errors import ApiError, BadRequest, Forbidden, NotFound, Unauthorized
from firehook.config.model import OnHook
from firehook.triggers.broker import Topology
from firehook.triggers.events import CloudEvent, InvalidEvent, hook_event, parse_event
from firehook.triggers.publisher import Publisher, PublishError, topology_for

__all__ = ["router"]

log = logging.getLogger(__name__)

MAX_BATCH = 1000
RECORD_TYPES = "firehook.record."


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
        except PublishError as e:  # its text names the broker: for the log, not the caller
            log.warning("could not publish %d event(s): %s", len(events), e)
            raise BrokerUnavailable(
                "the event broker did not take the event(s); try again later"
            ) from None


def _key_source(ctx: ApiContext, request: Request) -> str | None:
    """Who may publish: None for the admin key, else the source of the caller's key (401)."""
    if ctx.auth.is_admin_key(request.headers):
        return None
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the admin key or a source key: Authorization: Bearer <key>")
    sent = token.encode()
    keys = ctx.app.settings.triggers.source_keys
    # compare with every key (no early exit), so the time taken does not tell which is close
    matches = [
        source
        for source, key in keys.items()
        if hmac.compare_digest(key.get_secret_value().encode(), sent)
    ]
    if not matches:
        raise Unauthorized("invalid key")
    return matches[0]


def _check_events(source: str | None, events: list[CloudEvent]) -> None:
    reserved = sorted({e.type for e in events if not e.type.startswith(RECORD_TYPES)})
    if reserved:
        raise Forbidden(
            f"events of type {reserved} come only from POST /v1/hooks/{{hook}} (with the "
            "hook's secret); /v1/events takes record changes (firehook.record.<event>)"
        )
    if source is None:
        return
    wrong = sorted({e.source for e in events if e.source != source})
    if wrong:
        raise Forbidden(f"this key publishes as source {source!r} only, not {wrong}")


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["events"])
    settings = ctx.app.settings
    publishing = _Publishing(settings.broker_url, topology_for(settings.triggers))

    @r.post("/events", status_code=202, summary="Publish a data-change event (or a list)")
    async def publish_events(request: Request) -> JSONResponse:
        source = _key_source(ctx, request)  # before the body is read
        body = await json_body(request)
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
        _check_events(source, events)
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
            expected = secret.get_secret_value().encode()
            if not hmac.compare_digest(sent.encode(), expected):
                raise Unauthorized("this hook needs its secret in X-Hook-Secret")
        try:
            event = hook_event(hook, await json_body(request))
        except InvalidEvent as e:
            raise BadRequest(f"the webhook body is not a valid event: {e}") from None
        await run_in_threadpool(publishing.send, [event])
        return JSONResponse({"id": event.id, "routing_key": event.routing_key}, status_code=202)

    return r

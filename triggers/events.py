"""The data-change event: a CloudEvents 1.0 message in structured JSON mode (DESIGN 3.4).

Pydantic models rather than the ``cloudevents`` package: we need strict validation with
clear errors for messages from the broker, one JSON shape on every transport, and no extra
HTTP-binding machinery; the fields are the spec's required ones plus ``subject``/``time``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from firehook.config.errors import FirehookError
from firehook.invoker.jsonsafe import problem

__all__ = [
    "EXCHANGE",
    "HOOK_SOURCE",
    "HOOK_TYPE",
    "ChangeData",
    "CloudEvent",
    "InvalidEvent",
    "change_event",
    "hook_event",
    "parse_event",
    "unstorable",
]

EXCHANGE = "firehook.events"
HOOK_TYPE = "firehook.hook"
HOOK_SOURCE = "webhook"
"""The source of the events the hook route (``POST /v1/hooks/{hook}``) publishes; hook rules
fire only on events of type :data:`HOOK_TYPE` from this source."""
RecordEvent = Literal["on_create", "on_update", "on_delete"]


class InvalidEvent(FirehookError, ValueError):
    """A message that is not a valid firehook event; the message says why."""


class ChangeData(BaseModel):
    """``data`` of a record event: the table, what happened, the row before and after."""

    # NaN stays NaN when dumped (pydantic writes null by default), so it is refused, not lost
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
    event: RecordEvent
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event; ``type`` is ``firehook.record.<event>`` or ``firehook.hook``."""

    # CloudEvents extension attributes pass through; NaN is never written as null
    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    subject: str | None = Field(default=None, max_length=500)
    time: datetime | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: Any = None

    @model_validator(mode="after")
    def _storable(self) -> CloudEvent:
        reason = unstorable(self)
        if reason is not None:
            raise PydanticCustomError("unstorable", "{reason}", {"reason": reason})
        return self

    @property
    def routing_key(self) -> str:
        if self.type == HOOK_TYPE:
            return f"hook.{self.subject}"
        change = self.change
        return f"{change.table}.{change.event}" if change else "unrouted"

    @cached_property
    def change(self) -> ChangeData | None:
        """The record change this event carries (None for webhook events); validated once
        (parsing, routing and matching all ask for it)."""
        if not self.type.startswith("firehook.record."):
            return None
        return ChangeData.model_validate(self.data)


def unstorable(event: CloudEvent) -> str | None:
    """Why a field of ``event`` cannot be stored or passed on (a NUL character, a lone
    surrogate, NaN, a number of over 4,300 digits, nesting deeper than 64), or None."""
    for name in ("id", "source", "type", "subject"):
        value = getattr(event, name)
        reason = None if value is None else problem(value)
        if reason is not None:
            return f"{name}: {reason}"
    reason = problem(event.data)
    if reason is not None:
        return f"data: {reason}"
    for name, value in (event.model_extra or {}).items():
        reason = problem(name) or problem(value)
        if reason is not None:
            return f"extension attribute {name!r}: {reason}"
    return None


def change_event(
    table: str,
    event: str,
    *,
    after: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    source: str = "firehook",
    subject: str | None = None,
    event_id: str | None = None,
) -> CloudEvent:
    """Build the event for a change of one record (``event`` is on_create/on_update/on_delete);
    :class:`InvalidEvent` if it is not valid or holds what the store cannot (NaN, NUL, ...)."""
    try:
        data = ChangeData(table=table, event=event, before=before, after=after)
        return CloudEvent(
            id=event_id or uuid.uuid4().hex,
            source=source,
            type=f"firehook.record.{event}",
            subject=subject,
            time=datetime.now(UTC),
            data=data.model_dump(mode="json"),
        )
    except ValidationError as e:
        raise InvalidEvent(_explain(e)) from None


def hook_event(
    hook: str, body: Any, *, source: str = HOOK_SOURCE, event_id: str | None = None
) -> CloudEvent:
    """The event of an incoming webhook: its JSON body is the data (:class:`InvalidEvent` if
    the body holds what the store cannot).  Hook rules fire only on ``source`` "webhook"."""
    try:
        return CloudEvent(
            id=event_id or uuid.uuid4().hex,
            source=source,
            type=HOOK_TYPE,
            subject=hook,
            time=datetime.now(UTC),
            data=body,
        )
    except ValidationError as e:
        raise InvalidEvent(_explain(e)) from None


def parse_event(body: bytes | str | dict[str, Any]) -> CloudEvent:
    """Validate a message body; :class:`InvalidEvent` says what is wrong."""
    try:
        event = (
            CloudEvent.model_validate(body)
            if isinstance(body, dict)
            else CloudEvent.model_validate_json(body)
        )
        if event.type.startswith("firehook.record."):
            change = event.change
            if change is not None and event.type != f"firehook.record.{change.event}":
                raise InvalidEvent(
                    f"type {event.type!r} does not match data.event {change.event!r}"
                )
        elif event.type == HOOK_TYPE:
            if not event.subject:
                raise InvalidEvent("a webhook event needs the hook's name as subject")
        else:
            expected = "firehook.record.<event> or firehook.hook"
            raise InvalidEvent(f"unknown event type {event.type!r}: expected {expected}")
        return event
    except ValidationError as e:
        raise InvalidEvent(_explain(e)) from None


def _explain(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)

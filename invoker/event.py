"""The ``event`` a function receives (DESIGN 3.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventType"]


class EventType(StrEnum):
    SDK = "sdk"
    HTTP = "http"
    CLI = "cli"
    TRIGGER = "trigger"
    TIMER = "timer"
    DELAYED = "delayed"
    FUNCTION = "function"


@dataclass(slots=True)
class Event:
    """What ``main(event)`` gets: the caller's params as ``data`` and where the run came from."""

    data: Any = None
    event_type: str = EventType.CLI.value
    job_id: str = ""
    attempt: int = 1
    time_limit_ms: int = 0
    memory_limit_mb: int = 0
    request: dict[str, Any] | None = None
    trigger: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "event_type": self.event_type,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "time_limit_ms": self.time_limit_ms,
            "memory_limit_mb": self.memory_limit_mb,
            "request": self.request,
            "trigger": self.trigger,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        return cls(**raw)

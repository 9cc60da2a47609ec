"""Events that ran nothing, on record with the reason (``FIREHOOK_TRIGGERS__RECORD_SKIPPED``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Field, SQLModel

from firehook.config.db import UTCDateTime, utcnow, write_tx
from firehook.triggers.events import CloudEvent
from firehook.triggers.matching import Skipped

__all__ = ["SkipLog", "TriggerSkip"]


class TriggerSkip(SQLModel, table=True):
    __tablename__ = "trigger_skip"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=200, index=True)
    routing_key: str = Field(max_length=300)
    trigger: str | None = Field(default=None, max_length=100)
    reason: str
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SkipLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, skipped: Sequence[tuple[CloudEvent, Skipped]]) -> None:
        now = utcnow()
        rows = [
            {
                "event_id": ev.id,
                "routing_key": ev.routing_key[:300],
                "trigger": s.trigger,
                "reason": s.reason[:2000],
                "at": now,
            }
            for ev, s in skipped
        ]
        with write_tx(self.engine) as conn:
            conn.execute(TriggerSkip.__table__.insert(), rows)  # type: ignore[attr-defined]

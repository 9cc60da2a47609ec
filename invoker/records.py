"""Invocation records: the ``invocation`` table is both the run log and the work queue.

One row per attempt.  A sync run is written once, when it ends.  Queued runs (async,
delayed, triggered, timer, retries) are inserted ``waiting`` with a ``due_at`` and claimed
by workers, who set ``lease_owner``/``lease_expires_at`` while they run them.  Retries are
new rows whose ``root_id`` points at the first attempt; the idempotency key sits on the
first attempt only, unique per function (``ux_invocation_function_key``; which runs a key
dedupes against: :mod:`invoker.keys`).
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from firehook.config.db import UTCDateTime, utcnow

__all__ = ["Invocation", "invocation_table", "new_job_id"]


def new_job_id() -> str:
    """32 hex characters, ordered by creation time (48-bit ms clock + 80 random bits)."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def _json() -> Any:
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class Invocation(SQLModel, table=True):
    """One attempt of one run of one function."""

    __tablename__ = "invocation"
    __table_args__ = (
        Index(
            "ix_invocation_ready",
            "due_at",
            "id",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
        Index(
            "ix_invocation_leased",
            "lease_expires_at",
            postgresql_where=text("status = 'executing'"),
            sqlite_where=text("status = 'executing'"),
        ),
        Index("ix_invocation_function_created", "function", "created_at"),
        Index("ix_invocation_created", "created_at"),
        Index("ix_invocation_root", "root_id"),
        Index("ux_invocation_function_key", "function", "idempotency_key", unique=True),
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: str = Field(default_factory=new_job_id, primary_key=True, max_length=32)
    root_id: str = Field(max_length=32, description="the first attempt's id")
    function: str = Field(max_length=64)
    event_type: str = Field(max_length=16)
    source: str | None = Field(default=None, max_length=200, description="trigger or schedule")
    idempotency_key: str | None = Field(default=None, max_length=300)
    status: str = Field(max_length=24)
    attempt: int = 1
    max_attempts: int = 1
    timeout_ms: int = 0
    params: Any = Field(default=None, sa_column=Column(_json()))
    result: Any = Field(default=None, sa_column=Column(_json()))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(_json()))
    logs: str | None = Field(default=None, sa_column=Column(Text))
    note: str | None = Field(default=None, sa_column=Column(Text), description="why: skipped…")
    caller_user_id: str | None = Field(default=None, max_length=64)
    request: dict[str, Any] | None = Field(default=None, sa_column=Column(_json()))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    due_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_ms: float | None = None
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def envelope_dict(self) -> dict[str, Any]:
        """The ``{code, data, error}`` of a finished run."""
        return {
            "code": 0 if self.error is None else 1,
            "data": self.result,
            "error": self.error or {},
        }


invocation_table = Invocation.__table__  # type: ignore[attr-defined]

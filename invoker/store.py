"""Reading and writing invocation records (SQLAlchemy Core on the hot paths)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from firehook.config.db import write_tx
from firehook.config.errors import DatabaseError
from firehook.invoker.records import Invocation, invocation_table

__all__ = ["InvocationFilter", "InvocationStore"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InvocationFilter:
    function: str | None = None
    status: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0


class InvocationStore:
    """The invocation table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, row: dict[str, Any]) -> None:
        """Insert one record and commit before returning."""
        try:
            with write_tx(self.engine) as conn:
                conn.execute(invocation_table.insert(), row)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not record the run: {e}") from e

    def get(self, job_id: str) -> Invocation | None:
        try:
            with Session(self.engine) as session:
                return session.get(Invocation, job_id)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not read invocation {job_id}: {e}") from e

    def find(self, flt: InvocationFilter) -> Sequence[Invocation]:
        """Newest first."""
        query = select(Invocation)
        if flt.function is not None:
            query = query.where(col(Invocation.function) == flt.function)
        if flt.status is not None:
            query = query.where(col(Invocation.status) == flt.status)
        if flt.event_type is not None:
            query = query.where(col(Invocation.event_type) == flt.event_type)
        if flt.since is not None:
            query = query.where(col(Invocation.created_at) >= flt.since)
        if flt.until is not None:
            query = query.where(col(Invocation.created_at) < flt.until)
        query = query.order_by(col(Invocation.created_at).desc(), col(Invocation.id).desc())
        query = query.limit(flt.limit).offset(flt.offset)
        try:
            with Session(self.engine) as session:
                return list(session.scalars(query))
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not list invocations: {e}") from e

    def count(self, status: str | None = None) -> int:
        query = select(func.count()).select_from(invocation_table)
        if status is not None:
            query = query.where(invocation_table.c.status == status)
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not count invocations: {e}") from e

"""Schema version 2 on an existing version-1 database (real SQLite and the real PostgreSQL):
idempotency keys become unique per function, and every run on record is kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, UniqueConstraint, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from firehook.config import create_db_engine, ensure_schema, schema_version
from firehook.invoker.records import invocation_table as inv
from firehook.invoker.records import new_job_id

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def version_1_metadata() -> MetaData:
    """The tables as version 1 made them: the key unique on its own."""
    meta = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        copy = table.to_metadata(meta)
        if copy.name == "invocation":
            for index in list(copy.indexes):
                if index.name == "ux_invocation_function_key":
                    copy.indexes.discard(index)
            copy.append_constraint(UniqueConstraint("idempotency_key"))
    return meta


@pytest.fixture
def v1_engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    version_1_metadata().create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE firehook_schema (id INTEGER PRIMARY KEY, version INTEGER)"))
        conn.execute(text("INSERT INTO firehook_schema (id, version) VALUES (1, 1)"))
    yield engine
    engine.dispose()


def row(function: str, key: str | None, status: str = "waiting") -> dict[str, Any]:
    job_id = new_job_id()
    return {
        "id": job_id,
        "root_id": job_id,
        "function": function,
        "event_type": "cli",
        "idempotency_key": key,
        "status": status,
        "params": {"n": 1},
        "created_at": NOW,
        "due_at": NOW,
    }


def test_version_1_keys_become_unique_per_function_and_no_run_is_lost(v1_engine: Engine) -> None:
    kept = [row("cancelUnpaidOrder", "order-42"), row("hello", None, "fulfilled")]
    with v1_engine.begin() as conn:
        conn.execute(inv.insert(), kept)
    with pytest.raises(IntegrityError), v1_engine.begin() as conn:  # the old, global rule
        conn.execute(inv.insert(), [row("helloWorld", "order-42")])

    assert schema_version(v1_engine) == 1
    assert ensure_schema(v1_engine, SQLModel.metadata) == 2
    assert schema_version(v1_engine) == 2

    with v1_engine.connect() as conn:
        got = conn.execute(select(inv.c.id, inv.c.idempotency_key, inv.c.params)).all()
    assert sorted(got) == sorted((r["id"], r["idempotency_key"], {"n": 1}) for r in kept)
    with v1_engine.begin() as conn:
        conn.execute(inv.insert(), [row("helloWorld", "order-42")])
    with pytest.raises(IntegrityError), v1_engine.begin() as conn:
        conn.execute(inv.insert(), [row("helloWorld", "order-42")])
    indexes = {i["name"] for i in inspect(v1_engine).get_indexes("invocation")}
    assert {
        "ix_invocation_ready",
        "ix_invocation_leased",
        "ix_invocation_function_created",
        "ix_invocation_created",
        "ix_invocation_root",
        "ux_invocation_function_key",
    } <= indexes
    assert ensure_schema(v1_engine, SQLModel.metadata) == 2  # once only

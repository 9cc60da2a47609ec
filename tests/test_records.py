"""Sync runs on record, on real SQLite and the real PostgreSQL (the same tests on both)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from firehook.config import SCHEMA_VERSION, SchemaVersionError, ensure_schema, schema_version
from firehook.config.settings import InvokerSettings
from firehook.invoker.dispatch import Dispatcher, InvokeRequest
from firehook.invoker.envelope import ErrorType, Status
from firehook.invoker.pool import Pool
from firehook.invoker.registry import Registry
from firehook.invoker.store import InvocationFilter, InvocationStore


@pytest.fixture
def dispatcher(engine: Engine, pool: Pool, functions_dir: Path) -> Iterator[Dispatcher]:
    settings = InvokerSettings(sync_timeout=timedelta(seconds=2))
    yield Dispatcher(Registry(functions_dir), pool, InvocationStore(engine), settings)


def test_sync_run_is_committed_with_its_result_before_the_answer(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(
        InvokeRequest("hello", {"name": "allen"}, event_type="sdk", caller_user_id="u1")
    )
    assert out.envelope.to_dict() == {"code": 0, "data": "hello allen", "error": {}}
    assert out.job_id is not None and out.status is Status.FULFILLED
    # a fresh store (new connections) sees it: it was committed
    row = InvocationStore(dispatcher.store.engine).get(out.job_id)
    assert row is not None
    assert (row.function, row.status, row.event_type) == ("hello", "fulfilled", "sdk")
    assert row.params == {"name": "allen"} and row.result == "hello allen" and row.error is None
    assert row.caller_user_id == "u1" and row.root_id == row.id and row.attempt == 1
    assert row.started_at is not None and row.finished_at is not None
    assert row.started_at.tzinfo is not None and row.finished_at >= row.started_at
    assert row.duration_ms is not None and row.duration_ms >= 0
    assert row.timeout_ms == 2000


def test_event_gets_the_job_id_and_limits_of_its_record(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(
        InvokeRequest("echo", {"k": "v"}, request={"meta": {"ip_address": "1"}})
    )
    data = out.envelope.data
    assert data["job_id"] == out.job_id
    assert data["time_limit_ms"] == 2000 and data["memory_limit_mb"] == 512
    assert data["request"] == {"meta": {"ip_address": "1"}}


def test_failed_run_is_recorded_with_type_message_stack_and_logs(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(InvokeRequest("boom"))
    env = out.envelope.to_dict()
    assert env["code"] == 1 and env["data"] is None
    assert env["error"]["type"] == "execution_failed" and env["error"]["message"] == "boom"
    assert out.job_id is not None
    row = dispatcher.store.get(out.job_id)
    assert row is not None and row.status == "execution_failed"
    assert row.error == env["error"]


def test_deadline_exceeded_is_recorded(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(InvokeRequest("spin", timeout=timedelta(seconds=1)))
    assert out.envelope.error is not None
    assert out.envelope.error.type is ErrorType.DEADLINE_EXCEEDED
    assert out.job_id is not None
    row = dispatcher.store.get(out.job_id)
    assert row is not None and row.status == "deadline_exceeded" and row.timeout_ms == 1000


def test_worker_lost_is_recorded(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(InvokeRequest("segfault"))
    assert out.status is Status.WORKER_LOST
    assert out.job_id is not None
    row = dispatcher.store.get(out.job_id)
    assert row is not None and row.status == "worker_lost"


def test_captured_output_is_kept_with_the_run(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(InvokeRequest("chatty"))
    assert out.job_id is not None
    row = dispatcher.store.get(out.job_id)
    assert row is not None and row.logs is not None and "to stdout" in row.logs


def test_unknown_function_answers_not_found_and_records_nothing(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(InvokeRequest("nope"))
    assert out.envelope.to_dict()["error"]["type"] == "not_found"
    assert out.job_id is None
    assert dispatcher.store.count() == 0


def test_params_that_are_not_json_are_invalid_params(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(InvokeRequest("hello", {"x": {1, 2}}))
    assert out.envelope.error is not None
    assert out.envelope.error.type is ErrorType.INVALID_PARAMS
    assert dispatcher.store.count() == 0


def test_function_with_a_load_error_answers_that_error_on_record(dispatcher: Dispatcher) -> None:
    out = dispatcher.run_sync(InvokeRequest("syntaxError"))
    assert out.envelope.error is not None
    assert "SyntaxError" in out.envelope.error.message
    assert out.status is Status.EXECUTION_FAILED


def test_concurrent_sync_runs_are_all_recorded(dispatcher: Dispatcher) -> None:
    with ThreadPoolExecutor(20) as ex:
        outs = list(
            ex.map(lambda i: dispatcher.run_sync(InvokeRequest("hello", {"name": i})), range(20))
        )
    assert [o.envelope.data for o in outs] == [f"hello {i}" for i in range(20)]
    assert dispatcher.store.count(status="fulfilled") == 20


def test_find_filters_and_orders_newest_first(dispatcher: Dispatcher) -> None:
    first = dispatcher.run_sync(InvokeRequest("hello"))
    dispatcher.run_sync(InvokeRequest("boom"))
    last = dispatcher.run_sync(InvokeRequest("hello", event_type="http"))
    store = dispatcher.store
    assert [r.id for r in store.find(InvocationFilter(function="hello"))] == [
        last.job_id,
        first.job_id,
    ]
    assert [r.function for r in store.find(InvocationFilter(status="execution_failed"))] == ["boom"]
    assert [r.id for r in store.find(InvocationFilter(event_type="http"))] == [last.job_id]
    assert len(store.find(InvocationFilter(limit=2))) == 2
    assert [r.id for r in store.find(InvocationFilter(limit=1, offset=2))] == [first.job_id]
    row = store.get(first.job_id or "")
    assert row is not None
    assert store.find(InvocationFilter(since=row.created_at + timedelta(hours=1))) == []


def test_schema_is_stamped_and_ensure_is_idempotent(engine: Engine) -> None:
    assert schema_version(engine) == SCHEMA_VERSION
    assert ensure_schema(engine, SQLModel.metadata) == SCHEMA_VERSION


def test_a_database_newer_than_the_code_is_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE firehook_schema SET version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(SchemaVersionError, match="newer than this firehook"):
        ensure_schema(engine, SQLModel.metadata)


def test_two_processes_preparing_a_fresh_database_at_once_both_succeed(db_url: str) -> None:
    from firehook.config import create_db_engine

    engines = [create_db_engine(db_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as ex:
        versions = list(ex.map(lambda e: ensure_schema(e, SQLModel.metadata), engines))
    assert versions == [SCHEMA_VERSION] * 4
    for e in engines:
        e.dispose()

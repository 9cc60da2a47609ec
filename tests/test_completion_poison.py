"""What a function produced is recorded whatever it holds, and a run the store cannot hold
fails alone: a NUL character in a result, a log or an error never wedges the worker or its
completion batch (PostgreSQL refuses ``\\u0000`` in ``jsonb`` and text), on either store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from firehook.app import App
from firehook.config import RetryPolicy, Settings
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.envelope import ErrorType, RunError
from firehook.invoker.queue import Completion
from tests.test_worker import wait_for

POISON = {
    "nulResult.py": "def main(event):\n    return {'text': 'a\\x00b'}\n",
    "nulPrint.py": "def main(event):\n    print('x\\x00y')\n    return 'printed'\n",
    "nulRaise.py": "def main(event):\n    raise ValueError('bad \\x00 thing')\n",
}


def make_app(db_url: str, functions_dir: Path) -> App:
    for name, source in POISON.items():
        (functions_dir / name).write_text(source)
    fh = App(
        Settings(
            database_url=db_url,
            functions_dir=functions_dir,
            worker={"poll_interval": "200ms", "grace_period": "1s"},
        )
    )
    fh.dispatcher.default_retry = RetryPolicy(attempts=1)
    return fh


@pytest.fixture
def app(engine: Engine, db_url: str, functions_dir: Path) -> Iterator[App]:
    fh = make_app(db_url, functions_dir)
    yield fh
    fh.close()


def queue_batch(app: App) -> dict[str, str]:
    names = ["hello", "nulResult", "hello", "nulPrint", "hello", "nulRaise", "hello"]
    queued = app.dispatcher.enqueue_many([(InvokeRequest(n), None, None) for n in names])
    return {f"{n}{i}": q.job_id for i, (n, q) in enumerate(zip(names, queued, strict=True))}


def check_batch(app: App, ids: dict[str, str]) -> None:
    def recorded() -> bool:
        rows = [app.store.get(job_id) for job_id in ids.values()]
        return all(r is not None and r.status not in ("waiting", "executing") for r in rows)

    wait_for(
        recorded,
        30,
        "every run of the batch to be recorded",
    )
    got = {name: app.store.get(job_id) for name, job_id in ids.items()}
    for name, row in got.items():
        assert row is not None
        if name.startswith("hello"):
            assert (row.status, row.result) == ("fulfilled", "hello world")
    result, printed, raised = got["nulResult1"], got["nulPrint3"], got["nulRaise5"]
    assert result is not None and result.status == "execution_failed" and result.error
    assert "cannot be stored" in result.error["message"]  # refused in the pool process
    assert "NUL character" in result.error["message"] and result.result is None
    assert printed is not None and printed.status == "fulfilled"
    assert printed.logs is not None and "x\\u0000y" in printed.logs
    assert raised is not None and raised.status == "execution_failed" and raised.error
    assert raised.error["message"] == "bad \\u0000 thing"


def test_nul_in_a_result_a_log_or_an_error_fails_alone_and_survives_a_restart(
    app: App, db_url: str, functions_dir: Path
) -> None:
    app.start_worker()
    check_batch(app, queue_batch(app))
    worker = app.worker
    assert worker.running
    app.close()
    again = make_app(db_url, functions_dir)
    try:
        ids = queue_batch(again)
        again.start_worker()
        check_batch(again, ids)
        assert again.worker.running
    finally:
        again.close()


def test_completions_holding_nul_are_recorded_in_one_batch_with_good_ones(app: App) -> None:
    """The queue itself makes what a run produced storable, whoever calls it."""
    app.open_db()
    names = ["hello", "hello", "hello", "hello"]
    app.dispatcher.enqueue_many([(InvokeRequest(n), None, None) for n in names])
    runs = app.queue.claim("w", 10, timedelta(minutes=1))
    now = datetime.now(UTC)
    nul = RunError(ErrorType.EXECUTION_FAILED, "bad \x00 message", "stack \x00 here")
    done = [
        Completion(runs[0], "fine", None, "", now, timedelta()),
        Completion(runs[1], ["a\x00b"], None, "", now, timedelta()),
        Completion(runs[2], "logged", None, "log \x00 line", now, timedelta()),
        Completion(runs[3], None, nul, "", now, timedelta()),
    ]
    assert app.queue.complete("w", done, app.dispatcher.retry_policy) == []
    rows = [app.store.get(r.id) for r in runs]
    assert [r.status for r in rows if r] == [
        "fulfilled",
        "execution_failed",
        "fulfilled",
        "execution_failed",
    ]
    assert rows[1] is not None and rows[1].error is not None and rows[1].result is None
    assert rows[1].error["message"] == (
        "the result cannot be stored: "
        "a string holds a NUL character (\\u0000), which cannot be stored"
    )
    assert rows[2] is not None and rows[2].logs == "log \\u0000 line"
    assert rows[3] is not None and rows[3].error == {
        "type": "execution_failed",
        "message": "bad \\u0000 message",
        "stack": "stack \\u0000 here",
    }


def test_a_record_the_store_refuses_fails_alone_and_its_batch_is_recorded(app: App) -> None:
    """Defence in depth: a completion that passes every check but still cannot be written
    (here a result JSON has no form for) costs only its own run."""
    app.open_db()
    app.dispatcher.enqueue_many([(InvokeRequest("hello"), None, None) for _ in range(3)])
    runs = app.queue.claim("w", 10, timedelta(minutes=1))
    now = datetime.now(UTC)
    done = [
        Completion(runs[0], "one", None, "", now, timedelta()),
        Completion(runs[1], {1, 2, 3}, None, "its log", now, timedelta()),
        Completion(runs[2], "three", None, "", now, timedelta()),
    ]
    assert app.queue.complete("w", done, app.dispatcher.retry_policy) == []
    rows = [app.store.get(r.id) for r in runs]
    assert [(r.status, r.result) for r in rows if r] == [
        ("fulfilled", "one"),
        ("execution_failed", None),
        ("fulfilled", "three"),
    ]
    refused = rows[1]
    assert refused is not None and refused.error is not None
    assert "record could not be stored" in refused.error["message"], refused.error
    assert "not JSON serializable" in refused.error["message"]

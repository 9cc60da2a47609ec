"""Nothing one run's bookkeeping or the database does ends the worker: a completion or a
takeover that raises is recorded as failed, a cut connection at any point of the loop costs
a retry, and every driver error leaves the store as ``DatabaseError``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from firehook.app import App
from firehook.config import RetryPolicy, Settings, create_db_engine
from firehook.config.errors import DatabaseError
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.store import InvocationFilter
from tests.test_worker import wait_for


class ExplodingPolicy(RetryPolicy):
    """A retry policy whose back-off raises: a bug in one run's bookkeeping."""

    def delay(self, retry: int, rng: Any = None) -> timedelta:
        raise RuntimeError("the policy exploded")


def make_app(db_url: str, functions_dir: Path, **worker: str) -> App:
    settings = Settings(
        database_url=db_url,
        functions_dir=functions_dir,
        worker={"poll_interval": "200ms", "grace_period": "0s", **worker},
        retry={"backoff": "0s", "max_backoff": "0s"},
    )
    return App(settings)


@pytest.fixture
def app(engine: Engine, db_url: str, functions_dir: Path) -> Iterator[App]:
    fh = make_app(db_url, functions_dir)
    yield fh
    fh.close()


def status_of(app: App, job_id: str) -> str | None:
    row = app.store.get(job_id)
    return None if row is None else row.status


def test_a_completion_that_raises_fails_its_run_and_the_worker_goes_on(app: App) -> None:
    app.dispatcher.default_retry = ExplodingPolicy(attempts=3, jitter=0)
    batch = app.dispatcher.enqueue_many(
        [(InvokeRequest("boom"), None, None)]
        + [(InvokeRequest("hello", {"name": str(i)}), None, None) for i in range(5)]
    )
    worker = app.start_worker()
    wait_for(
        lambda: all(status_of(app, q.job_id) not in ("waiting", "executing") for q in batch),
        30,
        "the batch to be recorded",
    )
    boom = app.store.get(batch[0].job_id)
    assert boom is not None and boom.status == "execution_failed", boom
    assert boom.error is not None
    assert "could not work out this run's outcome" in boom.error["message"]
    assert "the policy exploded" in boom.error["message"]
    assert "the run's own error: execution_failed: boom" in boom.error["message"]
    assert [status_of(app, q.job_id) for q in batch[1:]] == ["fulfilled"] * 5
    later = app.dispatcher.enqueue(InvokeRequest("hello"))
    wait_for(lambda: status_of(app, later.job_id) == "fulfilled", 30, "a later run")
    assert worker.running


def test_a_takeover_that_raises_ends_that_run_and_the_worker_goes_on(app: App) -> None:
    app.dispatcher.default_retry = ExplodingPolicy(attempts=3, jitter=0)
    app.open_db()
    orphan = app.dispatcher.enqueue(InvokeRequest("hello"))
    [claimed] = app.queue.claim("a-worker-that-died", 10, timedelta(milliseconds=1))
    assert claimed.id == orphan.job_id
    worker = app.start_worker()
    wait_for(lambda: status_of(app, orphan.job_id) == "worker_lost", 30, "the takeover")
    row = app.store.get(orphan.job_id)
    assert row is not None and row.note is not None
    assert "could not work out a retry" in row.note and "the policy exploded" in row.note
    later = app.dispatcher.enqueue(InvokeRequest("hello"))
    wait_for(lambda: status_of(app, later.job_id) == "fulfilled", 30, "a later run")
    assert worker.running
    assert app.store.count() == 2  # no retry was queued for the orphan


# connection cuts (PostgreSQL) ----------------------------------------------------------------


class Cut:
    """Terminates the server process behind one of ``engine``'s connections from another
    connection, just before that connection sends a statement ``matches`` picks."""

    def __init__(self, engine: Engine, url: str, matches: Callable[[str, Any], bool]) -> None:
        self.admin = create_db_engine(url)
        self.matches = matches
        self.armed = False
        self.cuts = 0
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if not self.armed or not self.matches(statement, params):
            return
        self.armed = False
        pid = conn.connection.dbapi_connection.info.backend_pid
        with self.admin.connect() as admin:
            admin.execute(
                text("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid = :p"),
                {"p": pid},
            )
        self.cuts += 1


@pytest.fixture
def cut(postgres_url: str) -> Iterator[Callable[..., Cut]]:
    made: list[Cut] = []

    def make(engine: Engine, matches: Callable[[str, Any], bool]) -> Cut:
        made.append(Cut(engine, postgres_url, matches))
        return made[-1]

    yield make
    for c in made:
        c.admin.dispose()


def starts(prefix: str) -> Callable[[str, Any], bool]:
    return lambda statement, _params: statement.lstrip().startswith(prefix)


@pytest.fixture
def pg_app(postgres_url: str, functions_dir: Path) -> Iterator[App]:
    (functions_dir / "slowOnce.py").write_text(
        "import time\n"
        "def main(event):\n"
        "    if event.attempt == 1:\n"
        "        time.sleep((event.data or {}).get('seconds', 30))\n"
        "    return event.attempt\n"
    )
    fh = make_app(postgres_url, functions_dir, lease="3s")
    fh.open_db()
    yield fh
    fh.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("point", "matches"),
    [
        ("claim", starts("WITH picked")),
        ("next_due", starts("SELECT min(invocation.due_at)")),
        ("renew", starts("UPDATE invocation SET lease_expires_at")),
        ("complete", starts("UPDATE invocation AS i SET")),
    ],
)
def test_a_connection_cut_in_the_worker_loop_costs_a_retry_not_the_worker(
    pg_app: App, cut: Callable[..., Cut], point: str, matches: Callable[[str, Any], bool]
) -> None:
    app = pg_app
    cutter = cut(app.engine, matches)
    cutter.armed = True
    if point == "next_due":  # looked at after an empty claim, with a run due later
        queued = app.dispatcher.enqueue(InvokeRequest("hello"), delay=timedelta(seconds=1))
    elif point == "renew":  # a run that outlives a renewal (every lease / 3 = 1 s)
        queued = app.dispatcher.enqueue(InvokeRequest("slowOnce", {"seconds": 2.5}))
    else:
        queued = app.dispatcher.enqueue(InvokeRequest("hello"))
    worker = app.start_worker()
    wait_for(lambda: status_of(app, queued.job_id) == "fulfilled", 30, "the run")
    assert cutter.cuts == 1, f"the {point} statement was never cut"
    assert worker.running
    rows = [r for r in app.store.find(InvocationFilter()) if r.root_id == queued.job_id]
    assert [(r.attempt, r.status) for r in rows] == [(1, "fulfilled")]  # not taken over
    later = app.dispatcher.enqueue(InvokeRequest("hello"))
    wait_for(lambda: status_of(app, later.job_id) == "fulfilled", 30, "a later run")


@pytest.mark.postgres
def test_a_connection_cut_while_releasing_leaves_the_run_to_another_worker(
    pg_app: App, cut: Callable[..., Cut], postgres_url: str, functions_dir: Path
) -> None:
    cutter = cut(
        pg_app.engine,
        lambda statement, params: "released by" in str(params) and "UPDATE" in statement,
    )
    queued = pg_app.dispatcher.enqueue(InvokeRequest("slowOnce", {"seconds": 30}))
    pg_app.start_worker()
    wait_for(lambda: status_of(pg_app, queued.job_id) == "executing", 30, "the run to start")
    cutter.armed = True
    pg_app.worker.stop()  # grace 0: releases the run, and that statement is cut
    assert cutter.cuts == 1 and status_of(pg_app, queued.job_id) == "executing"
    rescuer = make_app(postgres_url, functions_dir)
    try:
        rescuer.start_worker()
        wait_for(
            lambda: status_of(pg_app, queued.job_id) == "worker_lost", 30, "the lease to expire"
        )
        rows = [r for r in pg_app.store.find(InvocationFilter()) if r.root_id == queued.job_id]
        wait_for(
            lambda: any(
                r.attempt == 2 and r.status == "fulfilled"
                for r in pg_app.store.find(InvocationFilter())
            ),
            30,
            "the second attempt",
        )
        assert rows and rescuer.worker.running
    finally:
        rescuer.close()


@pytest.mark.postgres
def test_a_connection_cut_during_cancel_is_a_database_error_and_cancel_works_after(
    pg_app: App, cut: Callable[..., Cut]
) -> None:
    cutter = cut(pg_app.engine, starts("UPDATE invocation SET status"))
    worker = pg_app.start_worker()
    queued = pg_app.dispatcher.enqueue(InvokeRequest("hello"), delay=timedelta(hours=1))
    cutter.armed = True
    with pytest.raises(DatabaseError):
        pg_app.dispatcher.cancel(queued.job_id)
    assert cutter.cuts == 1 and status_of(pg_app, queued.job_id) == "waiting"
    assert pg_app.dispatcher.cancel(queued.job_id) == [queued.job_id]
    assert status_of(pg_app, queued.job_id) == "cancelled" and worker.running


@pytest.mark.postgres
def test_every_store_operation_turns_a_driver_error_into_a_database_error(
    pg_app: App,
) -> None:
    """Not only a lost connection: here the table is missing (a ProgrammingError)."""
    queue, store = pg_app.queue, pg_app.store
    queued = pg_app.dispatcher.enqueue(InvokeRequest("hello"), delay=timedelta(hours=1))
    with pg_app.engine.begin() as conn:
        conn.execute(text("ALTER TABLE invocation RENAME TO invocation_away"))
    try:
        calls: dict[str, Callable[[], object]] = {
            "claim": lambda: queue.claim("w", 10, timedelta(seconds=5)),
            "renew": lambda: queue.renew("w", [queued.job_id], timedelta(seconds=5)),
            "release": lambda: queue.release("w", [queued.job_id]),
            "cancel": lambda: queue.cancel(queued.job_id),
            "next_due": queue.next_due,
            "take_over_expired": lambda: queue.take_over_expired(pg_app.dispatcher.retry_policy),
            "complete": lambda: queue.complete("w", [], pg_app.dispatcher.retry_policy),
            "enqueue": lambda: pg_app.dispatcher.enqueue(InvokeRequest("hello")),
            "store.get": lambda: store.get(queued.job_id),
            "store.find": lambda: store.find(InvocationFilter()),
            "store.count": store.count,
        }
        raised = {}
        for name, call in calls.items():
            try:
                call()
                raised[name] = "nothing"
            except DatabaseError:
                raised[name] = "DatabaseError"
            except Exception as e:
                raised[name] = type(e).__name__
        assert raised == dict.fromkeys(calls, "DatabaseError") | {"complete": "nothing"}
    finally:
        with pg_app.engine.begin() as conn:
            conn.execute(text("ALTER TABLE invocation_away RENAME TO invocation"))

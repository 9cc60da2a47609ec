"""The worker as users run it: woken by new work, surviving restarts and SIGKILL, stopping
gracefully on SIGTERM, and never running one attempt twice with two workers on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text

from firehook.app import App
from firehook.config import Settings, create_db_engine
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.records import Invocation
from firehook.invoker.store import InvocationFilter, InvocationStore
from firehook.invoker.worker import CONTENDED


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def statuses(store: InvocationStore) -> list[str]:
    return [r.status for r in store.find(InvocationFilter(limit=10000))]


def settings_env(db_url: str, functions_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
    env.update(
        FIREHOOK_DATABASE_URL=db_url,
        FIREHOOK_FUNCTIONS_DIR=str(functions_dir),
        FIREHOOK_WORKER__LEASE="2s",
        FIREHOOK_WORKER__GRACE_PERIOD="1s",
        FIREHOOK_RETRY__BACKOFF="0s",
        FIREHOOK_RETRY__MAX_BACKOFF="0s",
    )
    env.update(extra)
    return env


def run_script(script: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a user's Python script to the end; it must succeed."""
    result = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result


class RoleProcess:
    """``firehook <role>`` (worker by default) in its own process, once it says it runs."""

    def __init__(self, env: dict[str, str], cwd: Path, role: str = "worker") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firehook", role],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as under systemd or a shell
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "running" in line, line

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> tuple[int, str]:
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out


@pytest.fixture
def workers(functions_dir: Path, tmp_path: Path) -> Iterator[Callable[..., RoleProcess]]:
    """Start ``firehook worker`` processes on a database; killed at the end if still running."""
    started: list[RoleProcess] = []

    def start(db_url: str, **extra: str) -> RoleProcess:
        w = RoleProcess(settings_env(db_url, functions_dir, **extra), tmp_path)
        started.append(w)
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(10)
        if w.proc.stdout is not None:
            w.proc.stdout.close()


@pytest.fixture
def app(engine: Engine, db_url: str, functions_dir: Path) -> Iterator[App]:
    fh = App(
        Settings(database_url=db_url, functions_dir=functions_dir, worker={"poll_interval": "30s"})
    )
    yield fh.start()
    fh.close()


def test_an_idle_worker_is_woken_by_new_work_not_by_its_poll(app: App) -> None:
    app.start_worker()
    time.sleep(0.3)  # let it go idle: its next poll is 30 s away
    queued = app.dispatcher.enqueue(InvokeRequest("hello", {"name": "now"}))
    wait_for(lambda: statuses(app.store) == ["fulfilled"], 10, "the run to be fulfilled")
    row = app.store.get(queued.job_id)
    assert row is not None and row.result == "hello now"


def test_a_run_that_kills_its_pool_process_mid_batch_costs_only_itself(app: App) -> None:
    """Quick runs go to a pool process in batches: the runs queued behind one that kills
    its process run elsewhere, once each, and every run is on record once."""
    hello = [InvokeRequest("hello", {"name": str(i)}) for i in range(40)]
    before = [app.dispatcher.enqueue(r) for r in hello * 5]  # by then batches are full
    lost = app.dispatcher.enqueue(InvokeRequest("exitOne"))
    after = [app.dispatcher.enqueue(r) for r in hello]
    worker = app.start_worker()

    def rows() -> list[Invocation]:
        return app.store.find(InvocationFilter(limit=1000))

    wait_for(
        lambda: (
            sum(r.status == "fulfilled" for r in rows()) == 240
            and any(r.root_id == lost.job_id and r.finished_at for r in rows())
        ),
        30,
        "240 fulfilled runs and the lost one on record",
    )
    assert worker.largest_batch > 1
    by_id = {r.id: r for r in rows()}
    for i, queued in enumerate(before + after):
        row = by_id[queued.job_id]
        assert (row.status, row.result, row.attempt) == ("fulfilled", f"hello {i % 40}", 1)
    assert sum(r.function == "hello" for r in by_id.values()) == 240  # none ran twice
    first = by_id[lost.job_id]
    assert first.error is not None and first.error["type"] == "worker_lost", first.error


@pytest.mark.postgres
def test_due_runs_locked_by_another_claim_do_not_make_the_worker_spin(
    postgres_url: str, functions_dir: Path
) -> None:
    """While another worker's claim holds the due rows (SKIP LOCKED skips them), an idle
    worker looks again every ``CONTENDED`` seconds instead of claiming in a tight loop."""
    app = App(Settings(database_url=postgres_url, functions_dir=functions_dir)).open_db()
    try:
        queued = app.dispatcher.enqueue(InvokeRequest("hello", {"name": "locked"}))
        claims: list[str] = []

        @event.listens_for(app.engine, "before_cursor_execute")
        def count(_c: object, _cur: object, statement: str, *_rest: object) -> None:
            if statement.lstrip().startswith("WITH picked"):
                claims.append(statement)

        other = create_db_engine(postgres_url)
        with other.begin() as conn:  # another worker's claim, still open
            conn.execute(text("SELECT id FROM invocation FOR UPDATE"))
            app.start_worker()
            time.sleep(1.0)
            held = len(claims)
        wait_for(lambda: statuses(app.store) == ["fulfilled"], 10, "the run once released")
        other.dispose()
        row = app.store.get(queued.job_id)
        assert row is not None and row.result == "hello locked"
        # about one claim per CONTENDED (0.02 s); a spinning worker makes thousands
        assert 5 <= held <= 1.0 / CONTENDED + 10, held
    finally:
        app.close()


@pytest.mark.postgres
def test_work_queued_by_another_process_wakes_the_worker_on_postgres(
    postgres_url: str, functions_dir: Path
) -> None:
    settings = Settings(
        database_url=postgres_url, functions_dir=functions_dir, worker={"poll_interval": "30s"}
    )
    app = App(settings)
    try:
        app.start_worker()
        time.sleep(0.5)  # idle, listening; its next poll is 30 s away
        other = App(Settings(database_url=postgres_url, functions_dir=functions_dir))
        other.open_db().dispatcher.enqueue(InvokeRequest("hello"))  # wakes only via NOTIFY
        other.close()
        wait_for(lambda: statuses(app.store) == ["fulfilled"], 10, "the run to be fulfilled")
    finally:
        app.close()


def test_a_delayed_run_survives_a_restart_of_every_process(
    db_url: str, functions_dir: Path, tmp_path: Path, workers: Callable[..., RoleProcess]
) -> None:
    env = settings_env(db_url, functions_dir)
    enqueue = subprocess.run(
        [sys.executable, "-m", "firehook", "invoke", "hello", "--delay", "6s"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert enqueue.returncode == 0, enqueue.stderr
    job_id = enqueue.stdout.strip()
    first = workers(db_url)
    rc, _ = first.stop()  # stopped before the run was due
    assert rc == 0
    store = InvocationStore(create_db_engine(db_url))
    row = store.get(job_id)
    assert row is not None and row.status == "waiting"
    second = workers(db_url)
    wait_for(
        lambda: (r := store.get(job_id)) is not None and r.status == "fulfilled", 15, "fulfilled"
    )
    rc, out = second.stop()
    assert rc == 0 and "worker: 1 run(s)" in out
    store.engine.dispose()


def test_a_sigkilled_worker_s_run_is_finished_by_another_worker(
    app: App, workers: Callable[..., RoleProcess]
) -> None:
    victim = workers(app.settings.database_url)
    queued = app.dispatcher.enqueue(InvokeRequest("sleepy", {"seconds": 3}))
    wait_for(lambda: statuses(app.store) == ["executing"], 10, "the run to start")
    victim.stop(signal.SIGKILL)
    rescuer = workers(app.settings.database_url)
    wait_for(lambda: "fulfilled" in statuses(app.store), 30, "another worker to finish it")
    rows = sorted(
        (r for r in app.store.find(InvocationFilter()) if r.root_id == queued.job_id),
        key=lambda r: r.attempt,
    )
    assert [(r.attempt, r.status) for r in rows] == [(1, "worker_lost"), (2, "fulfilled")]
    rc, _ = rescuer.stop()
    assert rc == 0


def test_sigterm_finishes_short_runs_and_releases_long_ones(
    app: App, workers: Callable[..., RoleProcess]
) -> None:
    worker = workers(app.settings.database_url)
    short, long = app.dispatcher.enqueue_many(  # one transaction: one claim takes both
        [
            (InvokeRequest("sleepy", {"seconds": 0.5}), None, None),
            (InvokeRequest("sleepy", {"seconds": 30}), None, None),
        ]
    )
    wait_for(lambda: statuses(app.store).count("executing") == 2, 30, "both runs to start")
    t0 = time.monotonic()
    rc, out = worker.stop(signal.SIGTERM)
    assert rc == 0, out
    assert time.monotonic() - t0 < 10  # the 1 s grace, not the 30 s run
    s, lg = app.store.get(short.job_id), app.store.get(long.job_id)
    assert s is not None and s.status == "fulfilled"
    assert lg is not None and lg.status == "waiting" and lg.note is not None
    assert "released" in lg.note


def test_sigterm_to_the_whole_process_group_still_lets_runs_finish(
    app: App, workers: Callable[..., RoleProcess]
) -> None:
    worker = workers(app.settings.database_url, FIREHOOK_WORKER__GRACE_PERIOD="15s")
    queued = app.dispatcher.enqueue(InvokeRequest("sleepy", {"seconds": 2}))
    wait_for(lambda: statuses(app.store) == ["executing"], 30, "the run to start")
    os.killpg(worker.proc.pid, signal.SIGTERM)  # as systemd's KillMode=control-group does
    out, _ = worker.proc.communicate(timeout=30)
    assert worker.proc.returncode == 0, out
    row = app.store.get(queued.job_id)
    assert row is not None and row.status == "fulfilled" and row.attempt == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_on_postgres_run_each_of_1000_runs_exactly_once(
    postgres_url: str, functions_dir: Path, tmp_path: Path, workers: Callable[..., RoleProcess]
) -> None:
    ledger = tmp_path / "ledger"
    (functions_dir / "note.py").write_text(
        "import os\n"
        "def main(event):\n"
        f"    fd = os.open({str(ledger)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
        "    os.write(fd, f'{event.job_id} {event.attempt} {os.getppid()}\\n'.encode())\n"
        "    os.close(fd)\n"
    )
    fh = App(Settings(database_url=postgres_url, functions_dir=functions_dir)).open_db()
    fh.dispatcher.enqueue_many([(InvokeRequest("note", {"i": i}), None, None) for i in range(1000)])
    a, b = workers(postgres_url), workers(postgres_url)
    wait_for(lambda: fh.store.count("fulfilled") == 1000, 120, "1000 fulfilled runs")
    assert a.stop()[0] == 0 and b.stop()[0] == 0
    lines = ledger.read_text().splitlines()
    ids = [line.split()[0] for line in lines]
    print(
        f"1000 runs: {len(lines)} executions, {len(set(ids))} distinct, "
        f"{len({line.split()[2] for line in lines})} worker pools"
    )
    assert len(lines) == 1000 and len(set(ids)) == 1000
    assert fh.store.count() == 1000
    fh.close()


def test_firehook_invoke_from_python(db_url: str, functions_dir: Path, tmp_path: Path) -> None:
    (functions_dir / "caller.py").write_text(
        "from firehook import invoke\n"
        "def main(event):\n"
        "    inner = invoke('hello', {'name': 'inner'})\n"
        "    queued = invoke('hello', {'name': 'queued'}, sync=False, key='from-caller')\n"
        "    return {'inner': inner, 'queued': queued['data']['status']}\n"
    )
    script = tmp_path / "app_script.py"
    script.write_text(
        "import json\n"
        "from datetime import timedelta\n"
        "from firehook import invoke\n"
        "if __name__ == '__main__':\n"
        "    out = invoke('caller')\n"
        "    later = invoke('hello', sync=False, delay=timedelta(minutes=30), key='order-42')\n"
        "    again = invoke('hello', sync=False, delay=timedelta(minutes=30), key='order-42')\n"
        "    print(json.dumps([out, later['data']['job_id'] == again['data']['job_id']]))\n"
    )
    result = run_script(script, settings_env(db_url, functions_dir), tmp_path)

    out, same = json.loads(result.stdout)
    assert out == {
        "code": 0,
        "data": {"inner": {"code": 0, "data": "hello inner", "error": {}}, "queued": "ok"},
        "error": {},
    }
    assert same is True
    store = InvocationStore(create_db_engine(db_url))
    rows = store.find(InvocationFilter(limit=100))
    store.engine.dispose()
    kinds = sorted((r.function, r.event_type, r.status) for r in rows)
    assert kinds == [
        ("caller", "sdk", "fulfilled"),
        ("hello", "delayed", "waiting"),
        ("hello", "function", "fulfilled"),
        ("hello", "function", "waiting"),
    ]


def test_a_script_without_a_main_guard_can_call_invoke(
    db_url: str, functions_dir: Path, tmp_path: Path
) -> None:
    """Pool workers must not re-run the caller's script (multiprocessing's default)."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import json\n"
        "from firehook import invoke\n"
        "print('top level ran', flush=True)\n"
        "print(json.dumps(invoke('hello', {'name': 'script'})), flush=True)\n"
    )
    result = run_script(script, settings_env(db_url, functions_dir), tmp_path)
    assert result.stdout.count("top level ran") == 1
    assert '"data": "hello script"' in result.stdout

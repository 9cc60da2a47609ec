"""The worker pool: function styles, deadlines, crashes, memory, captured output."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from firehook.invoker.envelope import ErrorType
from firehook.invoker.event import Event
from firehook.invoker.pool import Pool, PoolClosed, RunResult
from firehook.invoker.registry import Registry
from tests.conftest import kill_idle_workers

FIVE_S = timedelta(seconds=5)


def run(pool: Pool, name: str, data: object = None, timeout: timedelta = FIVE_S) -> RunResult:
    info = Registry(pool.functions_dir).get(name)
    return pool.run(info, Event(data=data, job_id="job-1"), timeout)


def value(result: RunResult) -> object:
    assert result.error is None, result.error
    assert result.result_json is not None
    return json.loads(result.result_json)


def test_plain_main_returns_its_value(pool: Pool) -> None:
    assert value(run(pool, "hello", {"name": "allen"})) == "hello allen"


def test_callback_style_main_answers_through_the_callback(pool: Pool) -> None:
    assert value(run(pool, "callbackStyle", [1, 2])) == {"got": [1, 2]}


def test_callback_error_fails_the_run_with_its_message(pool: Pool) -> None:
    result = run(pool, "callbackError")
    assert result.error is not None
    assert result.error.type is ErrorType.EXECUTION_FAILED
    assert result.error.message == "card declined"


def test_coroutine_main_is_awaited(pool: Pool) -> None:
    assert value(run(pool, "asyncStyle")) == "awaited"


def test_package_function_with_relative_import_runs(pool: Pool) -> None:
    assert value(run(pool, "pkgFunc", "hi")) == "pkg says hi"


def test_event_fields_reach_the_function(pool: Pool) -> None:
    got = value(run(pool, "echo", {"a": 1}, timeout=timedelta(seconds=3)))
    assert got == {
        "data": {"a": 1},
        "event_type": "cli",
        "job_id": "job-1",
        "attempt": 1,
        "time_limit_ms": 0,
        "memory_limit_mb": 0,
        "request": None,
    }


def test_exception_answers_its_message_and_the_function_stack_only(pool: Pool) -> None:
    result = run(pool, "boom")
    assert result.error is not None
    assert result.error.type is ErrorType.EXECUTION_FAILED
    assert result.error.message == "boom"
    assert "in helper" in result.error.stack and "ValueError: boom" in result.error.stack
    assert "_child.py" not in result.error.stack  # firehook's own frames never leak


def test_runaway_function_is_killed_at_its_timeout_and_the_pool_recovers(pool: Pool) -> None:
    t0 = time.monotonic()
    result = run(pool, "spin", timeout=timedelta(seconds=1))
    elapsed = time.monotonic() - t0
    assert result.error is not None and result.error.type is ErrorType.DEADLINE_EXCEEDED
    assert 1.0 <= elapsed < 2.0, elapsed
    assert value(run(pool, "hello")) == "hello world"
    assert pool.replaced == 1


def test_deadline_kill_takes_the_function_s_child_processes_too(
    pool: Pool, functions_dir: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    (functions_dir / "forker.py").write_text(
        "import subprocess, time\n"
        "def main(event):\n"
        "    p = subprocess.Popen(['sleep', '60'])\n"
        f"    open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "    time.sleep(60)\n"
    )
    result = run(pool, "forker", timeout=timedelta(seconds=1))
    assert result.error is not None and result.error.type is ErrorType.DEADLINE_EXCEEDED
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(grandchild, signal.SIGKILL)
        pytest.fail("the function's own child process outlived the deadline kill")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("exitZero", "exited with code 0"),
        ("exitOne", "exited with code 1"),
        ("segfault", "killed by SIGSEGV"),
    ],
)
def test_function_that_kills_its_worker_is_worker_lost_and_pool_stays_full(
    pool: Pool, name: str, reason: str
) -> None:
    result = run(pool, name)
    assert result.error is not None and result.error.type is ErrorType.WORKER_LOST
    assert reason in result.error.message
    with ThreadPoolExecutor(2) as ex:  # both workers answer again
        results = list(ex.map(lambda _: run(pool, "sleepy", {"seconds": 0.3}), range(2)))
    assert [value(r) for r in results] == ["slept", "slept"]


def test_memory_past_the_worker_limit_fails_the_run_not_the_pool(pool: Pool) -> None:
    result = run(pool, "hog")
    assert result.error is not None and result.error.type is ErrorType.EXECUTION_FAILED
    assert "MemoryError" in result.error.message
    assert value(run(pool, "hello")) == "hello world"
    assert pool.replaced == 0


def test_worker_killed_while_idle_is_replaced_before_the_next_run(pool: Pool) -> None:
    kill_idle_workers(pool)
    assert value(run(pool, "hello")) == "hello world"
    assert pool.replaced == 2


def test_stdout_stderr_and_logging_are_captured(pool: Pool) -> None:
    result = run(pool, "chatty")
    assert value(result) == "ok"
    assert "to stdout\n" in result.logs
    assert "to stderr\n" in result.logs
    assert "INFO shop: an info line" in result.logs


def test_ten_megabytes_of_output_leave_a_truncated_log(pool: Pool) -> None:
    result = run(pool, "flood")
    assert value(result) == "flooded"
    assert len(result.logs) < 64 * 1024 + 200
    assert "output cut at 65536 characters" in result.logs
    assert value(run(pool, "hello")) == "hello world"


def test_result_that_is_not_json_fails_with_a_clear_message(pool: Pool) -> None:
    result = run(pool, "notJson")
    assert result.error is not None and result.error.type is ErrorType.EXECUTION_FAILED
    assert "not JSON-serialisable" in result.error.message
    assert "set" in result.error.message


def test_import_error_is_answered_and_the_pool_keeps_working(pool: Pool) -> None:
    result = run(pool, "badImport")
    assert result.error is not None and result.error.type is ErrorType.EXECUTION_FAILED
    assert "ModuleNotFoundError" in result.error.message
    assert "module_that_does_not_exist" in result.error.message
    assert value(run(pool, "hello")) == "hello world"


def test_check_reports_import_errors(pool: Pool) -> None:
    registry = Registry(pool.functions_dir)
    assert pool.check(registry.get("hello")) is None
    error = pool.check(registry.get("badImport"))
    assert error is not None and "module_that_does_not_exist" in error


def test_edited_code_is_picked_up_without_a_restart(pool: Pool, functions_dir: Path) -> None:
    path = functions_dir / "editable.py"
    path.write_text("def main(event):\n    return 1\n")
    assert value(run(pool, "editable")) == 1
    assert value(run(pool, "editable")) == 1  # both workers have it loaded now
    path.write_text("def main(event):\n    return 'second version'\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert value(run(pool, "editable")) == "second version"
    assert value(run(pool, "editable")) == "second version"


def test_twenty_concurrent_invokes_on_a_pool_of_two_all_finish_right(pool: Pool) -> None:
    with ThreadPoolExecutor(20) as ex:
        results = list(ex.map(lambda i: run(pool, "hello", {"name": str(i)}), range(20)))
    assert [value(r) for r in results] == [f"hello {i}" for i in range(20)]


def test_no_free_worker_within_the_acquire_timeout_is_rejected(functions_dir: Path) -> None:
    small = Pool(functions_dir, size=1, acquire_timeout=timedelta(milliseconds=200))
    with small, ThreadPoolExecutor(2) as ex:
        slow = ex.submit(run, small, "sleepy", {"seconds": 1})
        time.sleep(0.1)
        rejected = run(small, "hello")
        assert value(slow.result()) == "slept"
    assert rejected.error is not None and rejected.error.type is ErrorType.REJECTED
    assert "no worker free" in rejected.error.message


def test_a_closed_pool_refuses_runs(functions_dir: Path) -> None:
    p = Pool(functions_dir, size=1)
    with pytest.raises(PoolClosed):
        run(p, "hello")


def test_recycled_workers_keep_answering(functions_dir: Path) -> None:
    with Pool(functions_dir, size=1, max_tasks_per_worker=2) as p:
        assert [value(run(p, "hello")) for _ in range(5)] == ["hello world"] * 5
        assert p.replaced == 2


LONE_SURROGATES = """
import sys

def main(event):
    print("printed \\ud800 here")
    if event.data == "raise":
        raise ValueError("bad \\udc80 value")
    return "\\ud800" if event.data == "return" else "ok"
"""


def test_lone_surrogates_are_escaped_in_logs_and_errors_and_refused_as_a_result(
    pool: Pool,
) -> None:
    (pool.functions_dir / "surrogates.py").write_text(LONE_SURROGATES)
    ok = run(pool, "surrogates")
    assert value(ok) == "ok"
    assert "printed \\ud800 here" in ok.logs
    ok.logs.encode("utf-8")  # valid text: a database takes it
    raised = run(pool, "surrogates", "raise")
    assert raised.error is not None and raised.error.type is ErrorType.EXECUTION_FAILED
    assert "bad \\udc80 value" in raised.error.message
    raised.error.stack.encode("utf-8")
    returned = run(pool, "surrogates", "return")
    assert returned.error is not None and returned.error.type is ErrorType.EXECUTION_FAILED
    assert "cannot be stored" in returned.error.message
    assert "lone surrogate" in returned.error.message

"""Poison for the pool: params it cannot hand over, results it cannot return, functions that
fork or leave processes behind.  None of them may cost a pool process or another caller's run.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from firehook.app import App
from firehook.config.settings import Settings
from firehook.invoker.envelope import ErrorType
from firehook.invoker.event import Event
from firehook.invoker.pool import Pool, RunResult
from firehook.invoker.registry import Registry

FIVE_S = timedelta(seconds=5)


def nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


def run(pool: Pool, name: str, data: object = None, timeout: timedelta = FIVE_S) -> RunResult:
    info = Registry(pool.functions_dir).get(name)
    return pool.run(info, Event(data=data, job_id="job-1"), timeout)


def value(result: RunResult | None) -> object:
    assert result is not None and result.error is None, result
    assert result.result_json is not None
    return json.loads(result.result_json)


def failed(result: RunResult | None, type_: ErrorType) -> str:
    assert result is not None and result.error is not None, result
    assert result.error.type is type_, result.error
    return result.error.message


def batch(pool: Pool, runs: list[tuple[str, object]]) -> list[RunResult | None]:
    registry = Registry(pool.functions_dir)
    items = [
        (registry.get(name), Event(data=data, job_id=f"job-{i}"), FIVE_S)
        for i, (name, data) in enumerate(runs)
    ]
    results: list[RunResult | None] = [None] * len(items)

    def on_result(index: int, result: RunResult) -> None:
        assert results[index] is None, f"run {index} answered twice"
        results[index] = result

    pool.run_many(items, on_result)
    return results


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


# params the pool cannot hand over ----------------------------------------------------------
UNPICKLABLE = [lambda: 1]  # passes the JSON checks (left to the encoder), fails to pickle


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (nested(900), "nested deeper than 64"),
        (nested(5000), "nested deeper than 64"),
        ({"text": "a\x00b"}, "NUL"),
        ({"n": float("nan")}, "not a JSON number"),
        (UNPICKLABLE, "cannot be handed to a pool process"),
    ],
    ids=["nested-900", "nested-5000", "nul", "nan", "unpicklable"],
)
def test_params_the_pool_cannot_hand_over_fail_alone_and_never_cost_a_process(
    functions_dir: Path, data: object, reason: str
) -> None:
    small = Pool(functions_dir, size=2, acquire_timeout=timedelta(seconds=2))
    with small:
        for _ in range(5):  # more than the pool's size: a leaked process would show
            assert reason in failed(run(small, "echo", data), ErrorType.INVALID_PARAMS)
        with ThreadPoolExecutor(2) as ex:  # both processes answer again, none is rejected
            results = list(ex.map(lambda i: run(small, "hello", {"name": str(i)}), range(4)))
        assert [value(r) for r in results] == [f"hello {i}" for i in range(4)]
        assert small.replaced == 0


def test_a_batch_with_params_the_pool_cannot_hand_over_runs_the_rest(pool: Pool) -> None:
    for _ in range(3):  # more than the pool's size
        results = batch(
            pool, [("echo", 1), ("echo", nested(900)), ("echo", UNPICKLABLE), ("echo", 4)]
        )
        assert [value(results[0])["data"], value(results[3])["data"]] == [1, 4]  # type: ignore[index]
        assert "nested deeper than 64" in failed(results[1], ErrorType.INVALID_PARAMS)
        assert "cannot be handed" in failed(results[2], ErrorType.INVALID_PARAMS)
    with ThreadPoolExecutor(2) as ex:
        sums = list(ex.map(lambda i: batch(pool, [("echo", i)] * 3), range(4)))
    assert [[value(r)["data"] for r in rs] for rs in sums] == [[i] * 3 for i in range(4)]  # type: ignore[index]
    assert pool.replaced == 0


# results the pool cannot return -------------------------------------------------------------
RESULTS = """
def main(event):
    kind = event.data
    if kind == "deep":
        value = []
        for _ in range(1000):
            value = [value]
        return value
    if kind == "deep-dict":
        value = {}
        for _ in range(100):
            value = {"a": value}
        return value
    if kind == "nan":
        return {"x": float("nan")}
    if kind == "nul":
        return {"text": "a\\x00b"}
    if kind == "nul-key":
        return {"a\\x00": 1}
    if kind == "surrogate":
        return ["\\ud800"]
    if kind == "digits":
        return 10 ** 5000
    if kind == "big":
        return "x" * (2 * 1024 * 1024)
    if kind == "big-unicode":
        return "\\u00e9" * (600 * 1024)  # 600 Ki characters, 1.2 MiB of UTF-8
    if kind == "at-limit":
        return "x" * (1024 * 1024 - 2)  # with its quotes, exactly the limit
    if kind == "self":
        value = []
        value.append(value)
        return value
    return "ok"
"""


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("deep", "nested deeper than 64"),
        ("deep-dict", "nested deeper than 64"),
        ("self", "nested deeper than 64"),
        ("nan", "not a JSON number"),
        ("nul", "NUL"),
        ("nul-key", "NUL"),
        ("surrogate", "lone surrogate"),
        ("digits", "more than 4300 digits"),
        ("big", "the result is 2097154 bytes of JSON, over the limit of 1048576 bytes"),
        ("big-unicode", "the result is 1228802 bytes of JSON, over the limit of 1048576"),
    ],
)
def test_a_result_that_cannot_be_stored_fails_the_run_and_keeps_the_process(
    pool: Pool, kind: str, reason: str
) -> None:
    (pool.functions_dir / "results.py").write_text(RESULTS)
    for _ in range(3):  # more than the pool's size
        message = failed(run(pool, "results", kind), ErrorType.EXECUTION_FAILED)
        assert reason in message
        assert message.startswith("the result")
    assert value(run(pool, "results", "ok")) == "ok"
    assert pool.replaced == 0


def test_a_result_at_the_size_limit_is_returned(pool: Pool) -> None:
    (pool.functions_dir / "results.py").write_text(RESULTS)
    assert value(run(pool, "results", "at-limit")) == "x" * (1024 * 1024 - 2)


def test_the_result_limit_is_the_pool_s_setting(functions_dir: Path) -> None:
    (functions_dir / "results.py").write_text(RESULTS)
    with Pool(functions_dir, size=1, result_limit_bytes=4096) as p:
        message = failed(run(p, "results", "at-limit"), ErrorType.EXECUTION_FAILED)
        assert "the result is 1048576 bytes of JSON, over the limit of 4096 bytes" in message
        assert value(run(p, "results", "ok")) == "ok"


def test_the_result_limit_comes_from_the_settings(
    functions_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREHOOK_INVOKER__RESULT_LIMIT_BYTES", "4096")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}", functions_dir=functions_dir)
    app = App(settings)
    try:
        assert app.pool.result_limit == 4096
    finally:
        app.close()


def test_results_that_cannot_be_stored_fail_alone_in_a_batch(pool: Pool) -> None:
    (pool.functions_dir / "results.py").write_text(RESULTS)
    results = batch(pool, [("results", "ok"), ("results", "deep"), ("results", "ok")])
    assert value(results[0]) == value(results[2]) == "ok"
    assert "nested deeper than 64" in failed(results[1], ErrorType.EXECUTION_FAILED)
    assert pool.replaced == 0


NOISY = """
def main(event):
    if event.data == "raise":
        raise ValueError("bad\\x00value " + "y" * 200_000)
    print("a\\x00b")
    return "ok"
"""


def test_logs_and_errors_are_made_storable_and_cut(pool: Pool) -> None:
    (pool.functions_dir / "noisy.py").write_text(NOISY)
    ok = run(pool, "noisy")
    assert value(ok) == "ok"
    assert "a\\u0000b" in ok.logs and "\x00" not in ok.logs
    raised = run(pool, "noisy", "raise")
    message = failed(raised, ErrorType.EXECUTION_FAILED)
    assert message.startswith("bad\\u0000value yyy") and "\x00" not in message
    assert len(message) < 64 * 1024 + 200
    assert "[firehook: cut" in message
    assert raised.error is not None and "\x00" not in raised.error.stack
    assert len(raised.error.stack) < 64 * 1024 + 200


# functions that fork or leave processes behind ------------------------------------------------
FORKY = """
import os
import time

def main(event):
    if event.data["fork"] and os.fork() == 0:
        return {"child": True, "of": event.data["n"]}  # returns instead of exiting
    time.sleep(0.02)
    return {"n": event.data["n"]}
"""


def test_a_forked_child_that_returns_never_answers_for_anyone(pool: Pool) -> None:
    (pool.functions_dir / "forky.py").write_text(FORKY)

    def call(n: int) -> object:
        return value(run(pool, "forky", {"n": n, "fork": n % 2 == 0}))

    with ThreadPoolExecutor(6) as ex:
        answers = list(ex.map(call, range(30)))
    assert answers == [{"n": n} for n in range(30)]
    results = batch(pool, [("forky", {"n": n, "fork": True}) for n in range(10)])
    assert [value(r) for r in results] == [{"n": n} for n in range(10)]


LEAVES_A_PROCESS = """
import subprocess

def main(event):
    p = subprocess.Popen(["sleep", "300"], start_new_session=event.data["session"])
    open(event.data["pidfile"], "w").write(str(p.pid))
    return "started"
"""

DAEMONIZES = """
import os
import time

def main(event):
    if os.fork() == 0:  # the classic double fork: the grandchild is orphaned at once
        os.setsid()
        if os.fork() == 0:
            with open(event.data["pidfile"] + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(event.data["pidfile"] + ".tmp", event.data["pidfile"])  # whole or absent
            time.sleep(300)
        os._exit(0)
    os.wait()
    while not os.path.exists(event.data["pidfile"]):
        time.sleep(0.01)
    return "started"
"""


@pytest.mark.parametrize("how", ["popen", "popen-new-session", "double-fork"])
def test_processes_a_run_leaves_behind_end_with_the_run(
    pool: Pool, tmp_path: Path, how: str
) -> None:
    source = DAEMONIZES if how == "double-fork" else LEAVES_A_PROCESS
    (pool.functions_dir / "leaver.py").write_text(source)
    pidfile = tmp_path / "left.pid"
    data = {"pidfile": str(pidfile), "session": how == "popen-new-session"}
    for attempt in range(3):  # the same process serves again, each time cleaning up
        pidfile.unlink(missing_ok=True)
        assert value(run(pool, "leaver", data)) == "started"
        left = int(pidfile.read_text())
        if not gone_within(left, 5):
            os.kill(left, signal.SIGKILL)
            pytest.fail(f"run {attempt}: the process it started outlived the run")
    assert value(run(pool, "hello")) == "hello world"
    assert pool.replaced == 0


LEAVES_A_PROCESS_AND_SPINS = """
import subprocess

def main(event):
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    open(event.data["pidfile"], "w").write(str(p.pid))
    while True:
        pass
"""


def test_a_deadline_kill_takes_processes_in_a_session_of_their_own_too(
    pool: Pool, tmp_path: Path
) -> None:
    (pool.functions_dir / "spinner.py").write_text(LEAVES_A_PROCESS_AND_SPINS)
    pidfile = tmp_path / "left.pid"
    result = run(pool, "spinner", {"pidfile": str(pidfile)}, timeout=timedelta(seconds=1))
    failed(result, ErrorType.DEADLINE_EXCEEDED)
    left = int(pidfile.read_text())
    if not gone_within(left, 5):
        os.kill(left, signal.SIGKILL)
        pytest.fail("the process it started in its own session outlived the deadline kill")


ANSWERS_FOR_ANOTHER = """
import gc
import pickle
import time
from multiprocessing.connection import Connection

def main(event):
    conn = next(o for o in gc.get_objects() if isinstance(o, Connection))
    fake = {"seq": -1, "result": '"forged"', "error": None, "logs": "",
            "started": time.time(), "duration_ms": 0.0}
    conn.send_bytes(pickle.dumps(fake))
    return "real"
"""


def test_a_process_that_answers_for_another_run_is_replaced(pool: Pool) -> None:
    (pool.functions_dir / "forger.py").write_text(ANSWERS_FOR_ANOTHER)
    message = failed(run(pool, "forger"), ErrorType.WORKER_LOST)
    assert "answered for another run" in message
    assert pool.replaced == 1
    results = batch(pool, [("echo", 1), ("forger", None), ("echo", 3)])
    assert value(results[0])["data"] == 1  # type: ignore[index]
    assert "answered for another run" in failed(results[1], ErrorType.WORKER_LOST)
    assert value(results[2])["data"] == 3  # type: ignore[index]
    with ThreadPoolExecutor(2) as ex:
        results2 = list(ex.map(lambda i: run(pool, "hello", {"name": str(i)}), range(4)))
    assert [value(r) for r in results2] == [f"hello {i}" for i in range(4)]


CALLS_INVOKE = """
from datetime import timedelta

import firehook

def main(event):
    return firehook.invoke("hello", sync=True, delay=timedelta(seconds=1))
"""


def test_an_error_raised_inside_firehook_shows_only_the_function_s_frames(pool: Pool) -> None:
    (pool.functions_dir / "callsInvoke.py").write_text(CALLS_INVOKE)
    result = run(pool, "callsInvoke")
    message = failed(result, ErrorType.EXECUTION_FAILED)
    assert "delay, at and key apply to queued runs" in message
    assert result.error is not None
    frames = [line for line in result.error.stack.splitlines() if line.startswith("  File ")]
    assert frames and all("callsInvoke.py" in line for line in frames), result.error.stack
    assert "sdk.py" not in result.error.stack


def test_a_function_file_gone_before_its_run_fails_the_run_and_keeps_the_process(
    pool: Pool,
) -> None:
    path = pool.functions_dir / "vanishing.py"
    path.write_text("def main(event):\n    return 1\n")
    info = Registry(pool.functions_dir).get("vanishing")
    path.unlink()
    for _ in range(3):  # more than the pool's size
        result = pool.run(info, Event(job_id="job-1"), FIVE_S)
        assert "No such file" in failed(result, ErrorType.EXECUTION_FAILED)
        error = pool.check(info)  # it used to end the process (an error _check did not catch)
        assert error is not None and "No such file" in error
    assert value(run(pool, "hello")) == "hello world"
    assert pool.replaced == 0

"""The firehook command line, run as a user runs it: a real process in a project folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_functions

FIREHOOK = [sys.executable, "-m", "firehook"]


def cli(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
    full_env.update(env or {})
    return subprocess.run(
        [*FIREHOOK, *args], cwd=project, env=full_env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = cli(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_init_creates_hello_world_and_a_config_file(tmp_path: Path) -> None:
    result = cli(tmp_path, "init", "app")
    assert result.returncode == 0
    assert (tmp_path / "app" / "functions" / "helloWorld.py").is_file()
    assert "version: 1" in (tmp_path / "app" / "firehook.yaml").read_text()
    again = cli(tmp_path, "init", "app")
    assert "kept" in again.stdout  # never overwrites


def test_invoke_prints_the_envelope_and_records_the_run(project: Path) -> None:
    result = cli(project, "invoke", "helloWorld", "--data", '{"name": "allen"}', "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"code": 0, "data": "hello allen", "error": {}}
    listed = cli(project, "logs", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["function"], r["status"], r["event_type"]) for r in rows] == [
        ("helloWorld", "fulfilled", "cli")
    ]
    one = cli(project, "logs", rows[0]["id"])
    assert one.returncode == 0 and "hello allen" in one.stdout and "fulfilled" in one.stdout


def test_invoke_reads_params_from_a_file(project: Path) -> None:
    (project / "params.json").write_text('{"name": "file"}')
    result = cli(project, "invoke", "helloWorld", "--data-file", "params.json", "--json")
    assert json.loads(result.stdout)["data"] == "hello file"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoke", "helloWorld", "--data", "{bad"], "--data is not valid JSON"),
        (["invoke", "nope"], "function 'nope' not found"),
        (["invoke", "../etc/passwd"], "not found"),
        (["invoke", "helloWorld", "--data-file", "missing.json"], "cannot read --data-file"),
        (["invoke", "helloWorld", "--data", "1", "--data-file", "x"], "not both"),
        (["logs", "0123"], "no run with id '0123'"),
        (["logs", "--status", "happy"], "unknown status 'happy'"),
    ],
)
def test_user_mistakes_are_one_clear_line_and_exit_2(
    project: Path, args: list[str], message: str
) -> None:
    result = cli(project, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_failing_function_prints_its_error_and_exits_1(project: Path) -> None:
    (project / "functions" / "fails.py").write_text("def main(event):\n    raise KeyError('k')\n")
    result = cli(project, "invoke", "fails", "--json")
    assert result.returncode == 1
    env = json.loads(result.stdout)
    assert env["code"] == 1 and env["error"]["type"] == "execution_failed"
    assert "KeyError" in env["error"]["stack"]


def test_functions_lists_load_errors_beside_good_functions(project: Path) -> None:
    write_functions(project / "functions")
    result = cli(project, "functions", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r["error"] for r in json.loads(result.stdout)}
    assert rows["helloWorld"] is None
    assert "SyntaxError" in rows["syntaxError"]
    assert "module_that_does_not_exist" in rows["badImport"]


def test_settings_from_the_environment_choose_database_and_folder(project: Path) -> None:
    other = project / "elsewhere"
    (other / "fns").mkdir(parents=True)
    (other / "fns" / "ping.py").write_text("def main(event):\n    return 'pong'\n")
    env = {
        "FIREHOOK_FUNCTIONS_DIR": str(other / "fns"),
        "FIREHOOK_DATABASE_URL": f"sqlite:///{other / 'runs.db'}",
    }
    result = cli(project, "invoke", "ping", "--json", env=env)
    assert json.loads(result.stdout)["data"] == "pong"
    assert (other / "runs.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x@y/z", "unsupported database 'mysql'"),
        ("not a url", "is not a database URL"),
        ("sqlite:////nonexistent-dir/x/y.db", "database"),
    ],
)
def test_a_bad_database_url_is_a_clear_error(project: Path, url: str, message: str) -> None:
    result = cli(project, "logs", env={"FIREHOOK_DATABASE_URL": url})
    assert result.returncode in (2, 3)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_bad_setting_names_the_field(project: Path) -> None:
    result = cli(project, "logs", env={"FIREHOOK_INVOKER__POOL_SIZE": "many"})
    assert result.returncode == 2
    assert "FIREHOOK_INVOKER__POOL_SIZE" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_async_invoke_prints_the_job_id_and_a_key_returns_the_same(project: Path) -> None:
    first = cli(project, "invoke", "helloWorld", "--delay", "30m", "--key", "order-42")
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.strip()
    assert len(job_id) == 32 and "queued, due" in first.stderr
    again = cli(project, "invoke", "helloWorld", "--async", "--key", "order-42")
    assert again.stdout.strip() == job_id and "already queued" in again.stderr
    shown = cli(project, "logs", job_id, "--json")
    assert json.loads(shown.stdout)["status"] == "waiting"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoke", "helloWorld", "--delay", "soon"], "--delay: expected a duration"),
        (["invoke", "helloWorld", "--at", "2026-12-01T20:00:00"], "--at needs a UTC offset"),
        (["invoke", "helloWorld", "--at", "tomorrow"], "--at: not an ISO 8601 time"),
        (["invoke", "nope", "--async"], "function 'nope' not found"),
        (["cancel"], "name the run"),
        (["cancel", "0" * 32], "no run"),
        (["replay"], "name runs to replay"),
        (["replay", "--since", "yesterday"], "--since: not an ISO 8601 time"),
    ],
)
def test_queue_command_mistakes_are_one_clear_line(
    project: Path, args: list[str], message: str
) -> None:
    result = cli(project, *args)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cancel_and_replay_from_the_command_line(project: Path) -> None:
    job_id = cli(project, "invoke", "helloWorld", "--delay", "1h").stdout.strip()
    cancelled = cli(project, "cancel", job_id)
    assert cancelled.returncode == 0 and f"cancelled {job_id}" in cancelled.stdout
    again = cli(project, "cancel", job_id)
    assert again.returncode == 2 and "only waiting runs can be cancelled" in again.stderr
    dry = cli(project, "replay", "--status", "cancelled", "--dry-run")
    assert f"would replay {job_id}" in dry.stdout and "nothing changed" in dry.stderr
    assert len(json.loads(cli(project, "logs", "--json").stdout)) == 1
    real = cli(project, "replay", job_id)
    assert real.returncode == 0 and f"replayed {job_id}" in real.stdout
    rows = json.loads(cli(project, "logs", "--json").stdout)
    assert sorted(r["status"] for r in rows) == ["cancelled", "waiting"]

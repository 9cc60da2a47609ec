"""Mistakes a new user makes on the command line, and what firehook answers: one clear line,
the documented exit code, and nothing created or changed by a command that only reads."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from firehook.config import create_db_engine
from firehook.config.loader import parse_config
from firehook.templates import CONFIG
from tests.test_cli import FIREHOOK, cli

READ_ONLY = [
    ["logs"],
    ["logs", "0" * 32],
    ["triggers"],
    ["schedules"],
    ["cancel", "0" * 32],
    ["replay", "0" * 32],
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = cli(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    return tmp_path


def assert_one_clear_line(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- init's own config file ------------------------------------------------------------


def test_the_config_file_init_writes_applies_cleanly(project: Path) -> None:
    result = cli(project, "apply", "firehook.yaml")
    assert result.returncode == 0, result.stderr
    assert "0 added" in result.stdout and "Traceback" not in result.stderr


def test_the_examples_in_inits_config_file_are_valid_once_uncommented() -> None:
    text = re.sub(r"^(functions|triggers|schedules): (\{\}|\[\])$", r"\1:", CONFIG, flags=re.M)
    text = re.sub(r"^#(  .*)$", r"\1", text, flags=re.M)
    cfg = parse_config(text, "uncommented.yaml").config
    assert list(cfg.functions) == ["helloWorld"]
    assert [t.name for t in cfg.triggers] == ["cancel-unpaid-orders"]
    assert [s.name for s in cfg.schedules] == ["nightly-lottery"]


def test_a_section_with_only_comments_under_it_is_empty(project: Path) -> None:
    (project / "firehook.yaml").write_text("version: 1\nfunctions:\n  # none yet\ntriggers:\n")
    result = cli(project, "apply", "firehook.yaml")
    assert result.returncode == 0, result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_config_accepts_inits_config_file_and_stops_on_sigterm(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
    args = [*FIREHOOK, "serve", "--config", "firehook.yaml", "--port", str(free_port())]
    proc = subprocess.Popen(
        args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "firehook serve running" in line:
                break
        assert any("applied firehook.yaml" in s for s in seen), seen
        assert any("firehook serve running" in s for s in seen), seen
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


# --- list and dict settings from the environment -----------------------------------------


def test_list_settings_take_comma_separated_values(project: Path) -> None:
    code = (
        "from firehook.cli_common import load_settings; s = load_settings(); "
        "print(list(s.retry.retry_on), s.http.cors_origins, s.auth.jwt_algorithms)"
    )
    env = {
        "FIREHOOK_RETRY__RETRY_ON": "execution_failed",
        "FIREHOOK_HTTP__CORS_ORIGINS": "https://shop.example, https://admin.example",
        "FIREHOOK_AUTH__JWT_ALGORITHMS": '["HS256", "RS256"]',  # JSON lists still work
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")} | env
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=full_env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "['execution_failed'] ['https://shop.example', 'https://admin.example'] ['HS256', 'RS256']"
    )
    # and every command starts with them
    assert cli(project, "logs", env=env).returncode == 0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FIREHOOK_TRIGGERS__SOURCE_KEYS", "shop", "FIREHOOK_TRIGGERS__SOURCE_KEYS: expected"),
        ("FIREHOOK_FUNCTIONS", "helloWorld", "FIREHOOK_FUNCTIONS: expected a JSON object"),
        ("FIREHOOK_HTTP", "port=8000", "FIREHOOK_HTTP: expected a JSON object"),
        ("FIREHOOK_RETRY__RETRY_ON", "sometimes", "FIREHOOK_RETRY__RETRY_ON (item 1): Input"),
    ],
)
def test_a_setting_that_cannot_be_read_is_one_line_naming_the_variable(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    result = cli(tmp_path, "logs", env={name: value})
    assert_one_clear_line(result, 2)
    assert message in result.stderr


def test_a_secret_setting_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    result = cli(tmp_path, "logs", env={"FIREHOOK_TRIGGERS__HOOK_SECRETS": "s3cr3t-value"})
    assert_one_clear_line(result, 2)
    assert "FIREHOOK_TRIGGERS__HOOK_SECRETS" in result.stderr
    assert "s3cr3t-value" not in result.stderr


def test_a_misspelled_variable_is_warned_about_once_with_the_closest_setting(
    project: Path,
) -> None:
    result = cli(project, "logs", env={"FIREHOOK_HTTP__PROT": "9000"})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "FIREHOOK_HTTP__PROT" in line]
    assert len(warnings) == 1, result.stderr
    assert "WARNING" in warnings[0] and "did you mean FIREHOOK_HTTP__PORT?" in warnings[0]


# --- commands that only read ----------------------------------------------------------


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a)[:20])
def test_a_read_only_command_in_the_wrong_folder_creates_no_database(
    tmp_path: Path, args: list[str]
) -> None:
    result = cli(tmp_path, *args)
    assert_one_clear_line(result, 2)
    where = f"sqlite:///{(tmp_path / 'firehook.db').resolve()}"
    assert f"no firehook database at {where} (run `firehook init`" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_a_read_only_command_creates_no_tables_in_a_postgresql_database(
    tmp_path: Path, postgres_url: str
) -> None:
    for args in READ_ONLY:
        result = cli(tmp_path, *args, env={"FIREHOOK_DATABASE_URL": postgres_url})
        assert_one_clear_line(result, 2)
        assert "no firehook database at postgresql" in result.stderr
    engine = create_db_engine(postgres_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_functions_lists_without_creating_a_database(tmp_path: Path) -> None:
    result = cli(tmp_path, "functions")
    assert result.returncode == 0 and "no functions in functions/" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_init_prepares_the_database_in_the_new_project(tmp_path: Path) -> None:
    result = cli(tmp_path, "init", "app")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app" / "firehook.db").is_file()
    assert not (tmp_path / "firehook.db").exists()
    assert cli(tmp_path / "app", "logs").stdout.strip() == "no runs on record"


# --- serve on a port in use --------------------------------------------------------------


def test_serve_on_a_port_in_use_exits_4_with_a_clear_line(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(project, "serve", "--port", str(port))
    assert result.returncode == 4, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr


# --- invoke's options --------------------------------------------------------------------


def test_a_time_in_the_past_is_queued_and_said_so(project: Path) -> None:
    past = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    result = cli(project, "invoke", "helloWorld", "--at", past)
    assert result.returncode == 0, result.stderr
    assert f"--at {past} is in the past: the run is due now" in result.stderr
    shown = json.loads(cli(project, "logs", result.stdout.strip(), "--json").stdout)
    assert shown["status"] == "waiting"


def test_a_time_in_the_future_gets_no_warning(project: Path) -> None:
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat(timespec="seconds")
    result = cli(project, "invoke", "helloWorld", "--at", future)
    assert result.returncode == 0 and "in the past" not in result.stderr


def test_bad_json_in_a_data_file_names_the_file_option(project: Path) -> None:
    (project / "params.json").write_text("{bad")
    result = cli(project, "invoke", "helloWorld", "--data-file", "params.json")
    assert_one_clear_line(result, 2)
    assert "--data-file params.json is not valid JSON" in result.stderr


# --- flags take no value -----------------------------------------------------------------


def test_help_shows_flags_without_a_value() -> None:
    from typer.main import get_command

    from firehook.cli import app

    names = sorted(get_command(app).commands)  # type: ignore[attr-defined]
    assert {"logs", "functions", "invoke", "replay", "apply"} <= set(names)
    runner = CliRunner()
    for name in [None, *names]:
        result = runner.invoke(app, [name, "--help"] if name else ["--help"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, (name, result.output)
        assert re.search(r"^\s+--help\s+Show this message", result.output, re.M), result.output
    logs = runner.invoke(app, ["logs", "--help"]).output
    assert re.search(r"^\s+--json\s+print JSON", logs, re.M), logs


def test_a_value_after_a_flag_is_not_taken_for_it(project: Path) -> None:
    result = cli(project, "logs", "--json", "true")
    assert_one_clear_line(result, 2)
    assert "no run with id 'true' (--json takes no value)" in result.stderr

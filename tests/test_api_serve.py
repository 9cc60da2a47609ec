"""``firehook serve`` and ``firehook api`` as real processes: they answer over HTTP, and on
SIGTERM they stop accepting, let a sync call in flight finish, and exit 0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.api_support import ADMIN_KEY, CLIENT_ID, FirehookProcess
from tests.conftest import write_functions

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def sign_up(base_url: str) -> dict[str, str]:
    res = httpx.post(
        f"{base_url}/hserve/v2.1/register/username/",
        json={"username": "allen", "password": "s3cret-pass"},
        headers={"X-Hydrogen-Client-ID": CLIENT_ID},
    )
    assert res.status_code == 201, res.text
    return {
        "X-Hydrogen-Client-ID": CLIENT_ID,
        "Authorization": f"Hydrogen-r1 {res.json()['token']}",
    }


def test_sigterm_lets_a_sync_call_in_flight_finish(tmp_path: Path) -> None:
    write_functions(tmp_path / "functions")
    with FirehookProcess(tmp_path, f"sqlite:///{tmp_path / 'fh.db'}") as fh:
        headers = sign_up(fh.base_url)
        answer: dict[str, httpx.Response] = {}

        def call() -> None:
            answer["res"] = httpx.post(
                f"{fh.base_url}/hserve/v1/cloud-function/job/",
                json={"function_name": "sleepy", "data": {"seconds": 1.5}},
                headers=headers,
                timeout=30,
            )

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until the run is executing
            runs = httpx.get(f"{fh.base_url}/v1/invocations", headers=ADMIN).json()["items"]
            if runs:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        code, output = fh.stop()
        caller.join(30)
    assert answer["res"].status_code == 200
    assert answer["res"].json() == {"code": 0, "data": "slept", "error": {}}
    assert code == 0, output
    assert "firehook serve stopped" in output and "api: " in output


def test_a_taken_port_is_one_clear_line_and_exit_4(tmp_path: Path) -> None:
    write_functions(tmp_path / "functions")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
        env["FIREHOOK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'fh.db'}"
        result = subprocess.run(
            [sys.executable, "-m", "firehook", "api", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 4  # EXIT_LISTEN: not 3, which is for an unusable database
    assert f"firehook: error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_alone_queues_runs_without_running_them(tmp_path: Path) -> None:
    write_functions(tmp_path / "functions")
    with FirehookProcess(tmp_path, f"sqlite:///{tmp_path / 'fh.db'}", "api") as fh:
        res = httpx.post(
            f"{fh.base_url}/v1/functions/hello/invoke", json={"sync": False}, headers=ADMIN
        )
        assert res.status_code == 202
        time.sleep(0.5)
        view = httpx.get(f"{fh.base_url}/v1/invocations/{res.json()['job_id']}", headers=ADMIN)
        assert view.json()["status"] == "waiting"  # no worker in this process
        sync = httpx.post(f"{fh.base_url}/v1/functions/hello/invoke", json={}, headers=ADMIN)
        assert sync.json() == {"code": 0, "data": "hello world", "error": {}}
        code, output = fh.stop()
    assert code == 0, output
    assert "running: api" in output


def test_serve_with_a_config_file_still_has_the_api_s_tables(tmp_path: Path) -> None:
    write_functions(tmp_path / "functions")
    config = tmp_path / "firehook.yaml"
    config.write_text("version: 1\nfunctions:\n  hello: {allow_anonymous: true}\n")
    db = f"sqlite:///{tmp_path / 'fh.db'}"
    with FirehookProcess(tmp_path, db, "serve", "--config", str(config)) as fh:
        anon = httpx.post(
            f"{fh.base_url}/hserve/v2.0/login/anonymous/",
            headers={"X-Hydrogen-Client-ID": CLIENT_ID},
        )
        assert anon.status_code == 201, anon.text
        headers = {
            "X-Hydrogen-Client-ID": CLIENT_ID,
            "Authorization": f"Hydrogen-r1 {anon.json()['token']}",
        }
        job = f"{fh.base_url}/hserve/v1/cloud-function/job/"
        opened = httpx.post(job, json={"function_name": "hello"}, headers=headers)
        assert opened.status_code == 200  # the config file opens hello to anonymous users
        closed = httpx.post(job, json={"function_name": "echo"}, headers=headers)
        assert closed.status_code == 403
        code, output = fh.stop()
    assert code == 0, output

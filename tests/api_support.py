"""Shared pieces of the HTTP API tests: the real API (uvicorn on a free port of 127.0.0.1,
with the pool and the queue worker) on SQLite or PostgreSQL, and an HTTP client for it.

Use the fixtures in a test module with ``served = api_support.served``.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from firehook.api import ApiRole
from firehook.api.context import ApiContext
from firehook.app import App
from firehook.config import Settings
from tests.conftest import fresh_postgres_schema, write_functions

CLIENT_ID = "test-client-id"
ADMIN_KEY = "test-admin-key"


def api_settings(url: str, functions_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "functions_dir": functions_dir,
        "invoker": {"pool_size": 2, "sync_timeout": "1s"},
        "worker": {"poll_interval": "0.2s", "grace_period": "1s"},
        "retry": {"attempts": 1},
        "auth": {"client_id": CLIENT_ID},
        "admin": {"api_key": ADMIN_KEY},
        "http": {"invoke_rate_per_user": 0, "invoke_rate_per_ip": 0, "signin_rate_per_ip": 0},
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def database_url(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh schema in the real PostgreSQL (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'firehook.db'}"
        return
    with fresh_postgres_schema("fh_api") as url:
        yield url


@dataclass
class Served:
    app: App
    role: ApiRole
    client: httpx.Client

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.role.port}"

    @property
    def ctx(self) -> ApiContext:
        assert self.role.api is not None
        ctx: ApiContext = self.role.api.state.firehook
        return ctx

    def headers(
        self, token: str | None = None, client_id: str | None = CLIENT_ID
    ) -> dict[str, str]:
        out = {}
        if client_id is not None:
            out["X-Hydrogen-Client-ID"] = client_id
        if token is not None:
            out["Authorization"] = f"Hydrogen-r1 {token}"
        return out

    def register(self, password: str = "s3cret-pass") -> tuple[str, int, str]:
        """A new signed-in user: ``(token, user id, username)``."""
        username = f"user-{secrets.token_hex(4)}"
        res = self.client.post(
            "/hserve/v2.1/register/username/",
            json={"username": username, "password": password},
            headers=self.headers(),
        )
        assert res.status_code == 201, res.text
        return res.json()["token"], res.json()["user_id"], username

    def anonymous(self) -> str:
        res = self.client.post("/hserve/v2.0/login/anonymous/", headers=self.headers())
        assert res.status_code == 201, res.text
        token: str = res.json()["token"]
        return token

    def invoke(
        self, token: str | None, name: str, data: Any = None, sync: bool | None = None, **kw: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"function_name": name}
        if data is not None:
            body["data"] = data
        if sync is not None:
            body["sync"] = sync
        headers = kw.pop("headers", None) or self.headers(token)
        return self.client.post("/hserve/v1/cloud-function/job/", json=body, headers=headers, **kw)


@contextmanager
def serving(kind: str, tmp: Path, **overrides: Any) -> Iterator[Served]:
    functions_dir = write_functions(tmp / "functions")
    with database_url(kind, tmp) as url:
        app = App(api_settings(url, functions_dir, **overrides))
        role = ApiRole(app, host="127.0.0.1", port=0)
        try:
            app.start_worker()
            role.start()
            with httpx.Client(base_url=f"http://127.0.0.1:{role.port}", timeout=30) as client:
                yield Served(app, role, client)
        finally:
            role.stop(timedelta(seconds=2))
            app.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    with serving(request.param, tmp_path_factory.mktemp("api")) as s:
        yield s


@pytest.fixture(scope="module")
def served_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving("sqlite", tmp_path_factory.mktemp("api")) as s:
        yield s


class FirehookProcess:
    """``firehook serve`` (or ``api``) as a user runs it, on a free port of 127.0.0.1."""

    def __init__(self, project: Path, db_url: str, *args: str, **env: str) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FIREHOOK_")}
        full_env.update(
            FIREHOOK_DATABASE_URL=db_url,
            FIREHOOK_FUNCTIONS_DIR=str(project / "functions"),
            FIREHOOK_AUTH__CLIENT_ID=CLIENT_ID,
            FIREHOOK_ADMIN__API_KEY=ADMIN_KEY,
            FIREHOOK_WORKER__GRACE_PERIOD="5s",
            **env,
        )
        self.args = args or ("serve",)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firehook", *self.args, "--host", "127.0.0.1", "--port", "0"],
            cwd=project,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.port = self._wait_for_port()
        self.base_url = f"http://127.0.0.1:{self.port}"

    def _wait_for_port(self) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = re.search(r"firehook api: http://127\.0\.0\.1:(\d+)", line)
            if match:
                return int(match.group(1))
        self.__exit__()
        raise AssertionError("firehook did not start:\n" + "".join(self.lines))

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM, then the exit code and everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        assert self.proc.stdout is not None
        # read through the text wrapper: communicate() would skip what it has buffered
        rest = self.proc.stdout.read()
        return self.proc.returncode, "".join(self.lines) + rest

    def __enter__(self) -> FirehookProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

"""End to end with the real client: the npm ``minapp-sdk`` browser build, loaded in headless
Chromium (driven by ``playwright-core``), against a real ``firehook serve``.

Needs node, Chromium (Debian ``chromium``) and ``npm ci`` in ``tests/e2e``; ``.ci/run``
installs all three.  Whether their absence fails or skips is decided in :func:`browser_tools`
only: it fails in CI (``CI=true``) and skips on a developer's machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import CLIENT_ID, FirehookProcess
from tests.conftest import IN_CI

E2E = Path(__file__).parent / "e2e"
REPO = Path(__file__).parent.parent
CHROMIUM = os.environ.get("FIREHOOK_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def browser_tools() -> str:
    """The node binary, once node, Chromium and the npm packages are all there."""
    node = shutil.which("node")
    problems = []
    if node is None:
        problems.append("node is not installed")
    if not Path(CHROMIUM).exists():
        problems.append(f"Chromium is not at {CHROMIUM} (apt-get install chromium)")
    problems.extend(
        f"{package} is not installed (cd tests/e2e && npm ci)"
        for package in ("minapp-sdk", "playwright-core")
        if not (E2E / "node_modules" / package / "package.json").exists()
    )
    if problems:
        message = "; ".join(problems)
        if IN_CI:
            pytest.fail(f"end-to-end browser test cannot run: {message}")
        pytest.skip(message)
    assert node is not None
    return node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_harness(node: str, firehook_url: str, page_port: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "FIREHOOK_URL": firehook_url,
        "CLIENT_ID": CLIENT_ID,
        "PAGE_PORT": str(page_port),
        "CHROMIUM": CHROMIUM,
    }
    done = subprocess.run(
        [node, "harness.mjs"], cwd=E2E, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_real_minapp_sdk_signs_in_and_invokes(browser_tools: str, tmp_path: Path) -> None:
    (tmp_path / "functions").mkdir()
    shutil.copy(REPO / "functions" / "helloWorld.py", tmp_path / "functions")
    page_port = free_port()
    cors = json.dumps([f"http://127.0.0.1:{page_port}"])
    with FirehookProcess(
        tmp_path, f"sqlite:///{tmp_path / 'fh.db'}", FIREHOOK_HTTP__CORS_ORIGINS=cors
    ) as fh:
        out = run_harness(browser_tools, fh.base_url, page_port)
        code, log = fh.stop()
    r = out["results"]
    assert r["register"]["ok"], r
    assert r["invokeSync"] == {"ok": True, "value": {"code": 0, "data": "hello allen", "error": {}}}
    assert r["invokeAsync"]["ok"] and r["invokeAsync"]["value"]["data"] == {"status": "ok"}
    assert r["invokeUnknown"]["ok"] is False and r["invokeUnknown"]["code"] == 404
    assert r["logout"]["ok"] and r["login"]["ok"], r
    assert r["login"]["value"]["id"] == r["register"]["value"]["id"]
    assert r["invokeAfterLogin"]["value"]["data"] == "hello again"
    assert r["anonymousLogin"]["ok"] and r["anonymousLogin"]["value"]["anonymous"] is True, r
    refused = r["invokeAnonymous"]
    assert refused["ok"] is False and refused["code"] == 403
    assert "anonymous users may not invoke" in refused["message"]
    assert "POST /hserve/v1/cloud-function/job/" in out["requests"]
    assert code == 0, log

"""The README's ``order-42`` flow, as a user runs it: the CLI in a project folder, and the
``/v1/`` API of a served firehook (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests import api_support
from tests.api_support import ADMIN_KEY, Served
from tests.test_cli import cli, project

served = api_support.served
__all__ = ["project", "served"]  # fixtures
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_the_readme_order_42_flow_on_the_command_line(project: Path) -> None:
    (project / "functions" / "cancelUnpaidOrder.py").write_text(
        "def main(event):\n    return 'cancelled'\n"
    )
    first = cli(project, "invoke", "cancelUnpaidOrder", "--delay", "30m", "--key", "order-42")
    assert first.returncode == 0, first.stderr
    job = first.stdout.strip()
    repeat = cli(project, "invoke", "cancelUnpaidOrder", "--delay", "30m", "--key", "order-42")
    assert repeat.stdout.strip() == job and "already queued" in repeat.stderr
    # the same key for another function is that function's own run
    hello = cli(project, "invoke", "helloWorld", "--delay", "30m", "--key", "order-42")
    assert hello.returncode == 0 and hello.stdout.strip() not in ("", job)
    ambiguous = cli(project, "cancel", "--key", "order-42")
    assert ambiguous.returncode == 2 and "several functions" in ambiguous.stderr
    cancelled = cli(project, "cancel", "--key", "order-42", "--function", "cancelUnpaidOrder")
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"cancelled {job}"
    # re-arming after the cancel queues a new run
    rearmed = cli(project, "invoke", "cancelUnpaidOrder", "--delay", "30m", "--key", "order-42")
    assert rearmed.returncode == 0 and "queued, due" in rearmed.stderr
    assert rearmed.stdout.strip() not in ("", job)


def post(s: Served, path: str, body: Any = None, **headers: str) -> httpx.Response:
    return s.client.post(f"/v1{path}", json=body, headers={**ADMIN, **headers})


def test_an_idempotency_key_over_http_is_per_function_and_cancel_gives_it_up(
    served: Served,
) -> None:
    key = {"Idempotency-Key": f"order-{time.time_ns()}"}
    first = post(served, "/functions/hello/invoke", {"delay": "1h"}, **key)
    assert first.status_code == 202
    cancel = post(served, f"/invocations/{first.json()['job_id']}/cancel")
    assert cancel.status_code == 200
    other = post(served, "/functions/echo/invoke", {"delay": "1h"}, **key)
    assert other.status_code == 202 and other.json()["created"] is True
    assert other.json()["job_id"] != first.json()["job_id"]
    again = post(served, "/functions/hello/invoke", {"delay": "1h"}, **key)
    assert again.status_code == 202 and again.json()["status"] == "waiting"
    assert again.json()["job_id"] not in (first.json()["job_id"], other.json()["job_id"])
    by_key = post(
        served, "/invocations/cancel", {"key": key["Idempotency-Key"], "function": "echo"}
    )
    assert by_key.json() == {"cancelled": [other.json()["job_id"]]}

"""firehook's own ``/v1/`` API with the admin key: functions, invoke (sync, queued, delayed,
idempotent), cancel, replay, listing runs, and the docs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import api_support
from tests.api_support import ADMIN_KEY, Served, serving

served = api_support.served
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def post(s: Served, path: str, body: Any = None, **headers: str) -> httpx.Response:
    return s.client.post(f"/v1{path}", json=body, headers={**ADMIN, **headers})


def wait_status(s: Served, job_id: str, status: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = s.client.get(f"/v1/invocations/{job_id}", headers=ADMIN).json()
        if body["status"] == status:
            return body
        time.sleep(0.05)
    pytest.fail(f"{job_id} did not reach {status}: {body}")


def test_the_admin_api_needs_the_key(served: Served) -> None:
    missing = served.client.get("/v1/functions")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = served.client.get("/v1/functions", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error_msg"] == "invalid admin API key"
    token, _, _ = served.register()  # an app user is not an admin
    user = served.client.get("/v1/invocations", headers=served.headers(token))
    assert user.status_code == 401


def test_without_an_api_key_setting_the_admin_api_is_off(tmp_path: Path) -> None:
    with serving("sqlite", tmp_path, admin={"api_key": None}) as s:
        res = s.client.get("/v1/functions", headers=ADMIN)
        assert res.status_code == 403 and "FIREHOOK_ADMIN__API_KEY" in res.json()["error_msg"]


def test_functions_are_listed_with_their_load_errors(served: Served) -> None:
    res = served.client.get("/v1/functions", headers=ADMIN)
    items = {f["name"]: f for f in res.json()["items"]}
    assert items["hello"]["ok"] is True
    assert "SyntaxError" in items["syntaxError"]["error"]


def test_sync_invoke_answers_the_envelope(served: Served) -> None:
    res = post(served, "/functions/echo/invoke", {"data": {"x": 1}})
    assert res.status_code == 200 and res.json()["code"] == 0
    event = res.json()["data"]
    assert event["event_type"] == "http"
    assert event["request"]["user"] == {"id": "admin", "anonymous": False}
    assert res.headers["X-Firehook-Job-Id"] == event["job_id"]


def test_invoke_refusals(served: Served) -> None:
    assert post(served, "/functions/nope/invoke", {}).status_code == 404
    both = post(served, "/functions/hello/invoke", {"sync": True, "delay": "5m"})
    assert both.status_code == 400 and "drop sync=true" in both.json()["error_msg"]
    naive = post(served, "/functions/hello/invoke", {"at": "2030-01-01T00:00:00"})
    assert naive.status_code == 400 and "UTC offset" in naive.json()["error_msg"]
    extra = post(served, "/functions/hello/invoke", {"dta": 1})
    assert extra.status_code == 400 and "dta" in extra.json()["error_msg"]
    nan = served.client.post(
        "/v1/functions/hello/invoke",
        content=b'{"data": NaN}',
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert nan.status_code == 400 and "NaN is not a JSON number" in nan.json()["error_msg"]
    bad = served.client.post(
        "/v1/functions/hello/invoke",
        content=b"{oops",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.json()["error_msg"].startswith("the request body is not valid JSON")


def test_a_queued_run_reaches_fulfilled(served: Served) -> None:
    res = post(served, "/functions/hello/invoke", {"sync": False, "data": {"name": "q"}})
    assert res.status_code == 202 and res.json()["created"] is True
    done = wait_status(served, res.json()["job_id"], "fulfilled")
    assert done["envelope"] == {"code": 0, "data": "hello q", "error": {}}


def test_an_idempotency_key_returns_the_first_run(served: Served) -> None:
    key = f"order-{time.time_ns()}"
    first = post(served, "/functions/hello/invoke", {"delay": "1h"}, **{"Idempotency-Key": key})
    second = post(served, "/functions/hello/invoke", {"delay": "1h"}, **{"Idempotency-Key": key})
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["job_id"] == first.json()["job_id"]
    assert second.json()["created"] is False and second.json()["status"] == "waiting"
    runs = served.client.get(
        "/v1/invocations", params={"function": "hello", "limit": 500}, headers=ADMIN
    )
    assert sum(r["idempotency_key"] == key for r in runs.json()["items"]) == 1


def test_cancel_a_delayed_run_by_id_and_by_key(served: Served) -> None:
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    queued = post(served, "/functions/hello/invoke", {"at": at}).json()
    assert queued["status"] == "waiting"
    res = post(served, f"/invocations/{queued['job_id']}/cancel")
    assert res.status_code == 200 and res.json() == {"cancelled": [queued["job_id"]]}
    again = post(served, f"/invocations/{queued['job_id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["error_msg"]
    assert post(served, "/invocations/nosuchid/cancel").status_code == 404
    key = f"k-{time.time_ns()}"
    post(served, "/functions/hello/invoke", {"delay": "1h"}, **{"Idempotency-Key": key})
    by_key = post(served, "/invocations/cancel", {"key": key})
    assert by_key.status_code == 200 and len(by_key.json()["cancelled"]) == 1
    assert post(served, "/invocations/cancel", {"key": "unknown-key"}).status_code == 404


def test_replay_queues_a_finished_run_again(served: Served) -> None:
    job_id = post(served, "/functions/hello/invoke", {"data": {"name": "r"}}).headers[
        "X-Firehook-Job-Id"
    ]
    dry = post(served, "/invocations/replay", {"ids": [job_id], "dry_run": True})
    assert dry.json() == {
        "dry_run": True,
        "count": 1,
        "runs": [{"id": job_id, "function": "hello", "status": "fulfilled", "new_id": None}],
    }
    res = post(served, "/invocations/replay", {"ids": [job_id]})
    new_id = res.json()["runs"][0]["new_id"]
    assert new_id and new_id != job_id
    replayed = wait_status(served, new_id, "fulfilled")
    assert replayed["note"] == f"replay of {job_id}"
    assert post(served, "/invocations/replay", {"ids": ["missing"]}).status_code == 404
    assert post(served, "/invocations/replay", {}).status_code == 400


def test_runs_are_listed_with_filters_and_pages(served: Served) -> None:
    since = datetime.now(UTC).isoformat()
    for _ in range(3):
        post(served, "/functions/callbackStyle/invoke", {"data": 1})
    post(served, "/functions/boom/invoke", {})
    params: dict[str, Any] = {"function": "callbackStyle", "since": since, "limit": 2}
    page1 = served.client.get("/v1/invocations", params=params, headers=ADMIN).json()
    assert len(page1["items"]) == 2 and page1["next_offset"] == 2
    page2 = served.client.get("/v1/invocations", params={**params, "offset": 2}, headers=ADMIN)
    assert len(page2.json()["items"]) == 1 and page2.json()["next_offset"] is None
    failed = served.client.get(
        "/v1/invocations",
        params={"status": "execution_failed", "event_type": "http", "since": since},
        headers=ADMIN,
    ).json()
    assert [r["function"] for r in failed["items"]] == ["boom"]
    assert "logs" not in failed["items"][0]
    bad = served.client.get("/v1/invocations", params={"status": "nope"}, headers=ADMIN)
    assert bad.status_code == 400 and "status" in bad.json()["error_msg"]
    naive = served.client.get(
        "/v1/invocations", params={"since": "2026-01-01T00:00:00"}, headers=ADMIN
    )
    assert naive.status_code == 400


def test_openapi_docs_are_served(served: Served) -> None:
    assert served.client.get("/docs").status_code == 200
    paths = served.client.get("/openapi.json").json()["paths"]
    assert {
        "/hserve/v1/cloud-function/job/",
        "/v1/functions/{name}/invoke",
        "/v1/invocations",
    } <= set(paths)

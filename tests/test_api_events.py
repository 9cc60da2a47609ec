"""Events over HTTP: POST /v1/events and incoming webhooks, through the embedded broker to runs."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from firehook.config.loader import parse_config
from firehook.daemon import ConsumerRole
from firehook.invoker.store import InvocationFilter
from firehook.triggers.events import change_event
from tests.api_support import ADMIN_KEY, Served, serving

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
RULES = """
version: 1
triggers:
  - name: audit-orders
    on: {table: orders, events: [on_create]}
    invoke: echo
  - name: paid
    on: {hook: payment-ok}
    invoke: echo
  - name: open-hook
    on: {hook: ping}
    invoke: hello
"""


@pytest.fixture
def events_api(tmp_path: Path) -> Iterator[Served]:
    overrides = {
        "broker_url": f"sqla+sqlite:///{tmp_path / 'events.db'}",
        "triggers": {"source_keys": {"shop": "shop-key"}, "hook_secrets": {"payment-ok": "psst"}},
    }
    with serving("sqlite", tmp_path, **overrides) as served:
        served.app.rules_store.apply(parse_config(textwrap.dedent(RULES)).config, "test")
        consumer = ConsumerRole(served.app)
        consumer.start()
        try:
            yield served
        finally:
            consumer.stop(timedelta(seconds=3))


def runs(served: Served, n: int, timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(served.app.store.find(InvocationFilter(limit=100)))
        if len(rows) >= n:
            return rows
        time.sleep(0.05)
    pytest.fail(f"expected {n} runs")


def test_an_event_posted_with_the_admin_key_runs_its_rule(events_api: Served) -> None:
    ev = change_event("orders", "on_create", after={"id": 5}, source="shop")
    res = events_api.client.post("/v1/events", json=ev.model_dump(mode="json"), headers=ADMIN)
    assert res.status_code == 202, res.text
    assert res.json() == {"published": [{"id": ev.id, "routing_key": "orders.on_create"}]}
    (row,) = runs(events_api, 1)
    assert row.source == "audit-orders" and row.params["after"] == {"id": 5}


def test_a_source_key_publishes_only_as_its_source(events_api: Served) -> None:
    mine = change_event("orders", "on_create", after={"id": 1}, source="shop").model_dump(
        mode="json"
    )
    other = change_event("orders", "on_create", after={"id": 2}, source="crm").model_dump(
        mode="json"
    )
    ok = events_api.client.post(
        "/v1/events", json=[mine], headers={"Authorization": "Bearer shop-key"}
    )
    assert ok.status_code == 202, ok.text
    wrong = events_api.client.post(
        "/v1/events", json=other, headers={"Authorization": "Bearer shop-key"}
    )
    assert wrong.status_code == 403 and "'shop' only" in wrong.json()["error_msg"]
    bad = events_api.client.post("/v1/events", json=mine, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    none = events_api.client.post("/v1/events", json=mine)
    assert none.status_code == 401 and none.json()["status"] == "error"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the request body is not valid JSON"),
        (b"[]", "send 1 to 1000 events"),
        (b"[1]", "event 0 is not a JSON object"),
        (b'{"id": "x", "source": "s", "type": "other"}', "unknown event type 'other'"),
        (b'{"source": "s", "type": "firehook.record.on_create"}', "id: Field required"),
    ],
)
def test_a_bad_event_is_refused_with_the_reason(
    events_api: Served, body: bytes, message: str
) -> None:
    res = events_api.client.post(
        "/v1/events", content=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert res.status_code == 400 and message in res.json()["error_msg"]


def test_an_incoming_webhook_becomes_the_data_of_its_rule(events_api: Served) -> None:
    assert events_api.client.post("/v1/hooks/nobody", json={}).status_code == 404
    no_secret = events_api.client.post("/v1/hooks/payment-ok", json={"amount": 3})
    assert no_secret.status_code == 401
    res = events_api.client.post(
        "/v1/hooks/payment-ok", json={"amount": 3, "order": 9}, headers={"X-Hook-Secret": "psst"}
    )
    assert res.status_code == 202, res.text
    open_hook = events_api.client.post("/v1/hooks/ping", json={"hello": 1})
    assert open_hook.status_code == 202
    rows = runs(events_api, 2)
    by_rule = {r.source: r for r in rows}
    assert by_rule["paid"].params == {"amount": 3, "order": 9}
    assert by_rule["open-hook"].params == {"hello": 1}


def test_a_broker_that_is_down_answers_503_and_the_api_goes_on(tmp_path: Path) -> None:
    with serving("sqlite", tmp_path, broker_url="amqp://guest:guest@127.0.0.1:1//") as served:
        ev = change_event("orders", "on_create", after={"id": 1})
        res = served.client.post("/v1/events", json=ev.model_dump(mode="json"), headers=ADMIN)
        assert res.status_code == 503 and "broker" in res.json()["error_msg"]
        assert served.client.get("/v1/functions", headers=ADMIN).status_code == 200

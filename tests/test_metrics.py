"""Health and metrics of real role processes: ``/healthz``, ``/readyz``, ``/metrics``.

Each test starts ``firehook <role>`` with ``FIREHOOK_METRICS__PORT=0``, does real work on the
real PostgreSQL (and RabbitMQ), and checks that the scraped figures moved.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from kombu import Exchange, Producer
from sqlalchemy import create_engine

from firehook.app import App
from firehook.config import Settings
from firehook.config.loader import parse_config
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.store import InvocationFilter
from firehook.logfmt import JsonFormatter
from firehook.metrics import Health, Metrics
from firehook.status_http import StatusRole
from firehook.triggers.broker import connect, events_queue
from firehook.triggers.events import change_event
from firehook.triggers.publisher import Publisher
from tests.api_support import serving
from tests.roles import RoleProcess, rabbit_vhost, role_env, scrape, wait_for

RULES = """
version: 1
triggers:
  - name: on-order
    on: {table: orders, events: [on_create]}
    invoke: hello
"""


@pytest.fixture
def app(postgres_url: str, functions_dir: Path) -> Iterator[App]:
    fh = App(Settings(database_url=postgres_url, functions_dir=functions_dir)).open_db()
    yield fh
    fh.close()


def finished(app: App) -> list[str]:
    return [r.status for r in app.store.find(InvocationFilter(limit=1000))]


@pytest.mark.postgres
def test_a_worker_serves_health_and_its_metrics_move_after_work(
    app: App, postgres_url: str, functions_dir: Path, tmp_path: Path
) -> None:
    env = role_env(postgres_url, functions_dir, FIREHOOK_METRICS__PORT="0")
    worker = RoleProcess("worker", env, tmp_path)
    try:
        url = worker.metrics_url
        assert url is not None, worker.output()
        assert httpx.get(f"{url}/healthz").json() == {"status": "alive"}
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        before = scrape(url)
        assert 'firehook_runs_total{function="hello",status="fulfilled"}' not in before
        assert before["firehook_queue_due"] == 0

        for i in range(5):
            app.dispatcher.enqueue(InvokeRequest("hello", {"name": str(i)}))
        app.dispatcher.enqueue(InvokeRequest("boom"))  # 3 attempts, no back-off: 2 retries, dead
        wait_for(lambda: len(finished(app)) == 8 and "waiting" not in finished(app), 30, "runs")
        wait_for(lambda: "executing" not in finished(app), 30, "runs to finish")

        m = scrape(url)
        print({k: v for k, v in m.items() if "bucket" not in k})
        assert m['firehook_runs_total{function="hello",status="fulfilled"}'] == 5
        assert m['firehook_runs_total{function="boom",status="retrying"}'] == 2
        assert m['firehook_runs_total{function="boom",status="dead"}'] == 1
        assert m['firehook_retries_total{function="boom"}'] == 2
        assert m['firehook_dead_runs_total{function="boom"}'] == 1
        assert m['firehook_run_duration_seconds_count{function="hello"}'] == 5
        assert m['firehook_start_lag_seconds_count{event_type="cli"}'] == 8
        assert m["firehook_queue_due"] == 0
        assert m["firehook_queue_executing"] == 0
    finally:
        assert worker.stop() == 0


@pytest.mark.postgres
def test_a_consumer_counts_events_and_dead_letters_and_the_queue_depth_grows(
    app: App, postgres_url: str, functions_dir: Path, tmp_path: Path
) -> None:
    app.rules_store.apply(parse_config(textwrap.dedent(RULES)).config, "test")
    with rabbit_vhost() as rabbit:
        env = role_env(
            postgres_url, functions_dir, FIREHOOK_METRICS__PORT="0", FIREHOOK_BROKER_URL=rabbit
        )
        consumer = RoleProcess("consumer", env, tmp_path)
        try:
            _count_events_and_dead_letters(consumer, rabbit)
        finally:
            assert consumer.stop() == 0


def _count_events_and_dead_letters(consumer: RoleProcess, rabbit: str) -> None:
    url = consumer.metrics_url
    assert url is not None
    assert httpx.get(f"{url}/readyz").json() == {"status": "ready"}  # database and broker
    with Publisher(rabbit) as pub:
        for i in range(10):
            pub.publish(change_event("orders", "on_create", after={"id": i}))
    with connect(rabbit) as conn:
        producer = Producer(conn.default_channel, exchange=Exchange("firehook.events", "topic"))
        for body in (b"{not json", b'{"specversion": "1.0"}'):
            producer.publish(body, routing_key="orders.on_create", declare=[events_queue()])

    def counted() -> bool:
        m = scrape(url)
        return (
            m.get("firehook_consumer_events_total") == 10
            and m.get("firehook_consumer_dead_lettered_total") == 2
        )

    wait_for(counted, 30, "the consumer's counters")
    m = scrape(url)
    print({k: v for k, v in m.items() if k.startswith("firehook_")})
    assert m["firehook_consumer_runs_total"] == 10
    assert m["firehook_queue_due"] == 10  # no worker: they wait
    assert m["firehook_queue_oldest_due_seconds"] > 0


EVERY_SECOND = """
version: 1
schedules:
  - name: tick
    cron: "*/1 * * * * *"
    invoke: hello
"""


@pytest.mark.postgres
def test_a_scheduler_serves_health_and_counts_its_ticks(
    app: App, postgres_url: str, functions_dir: Path, tmp_path: Path
) -> None:
    app.rules_store.apply(parse_config(textwrap.dedent(EVERY_SECOND)).config, "test")
    env = role_env(postgres_url, functions_dir, FIREHOOK_METRICS__PORT="0")
    scheduler = RoleProcess("scheduler", env, tmp_path)
    try:
        url = scheduler.metrics_url
        assert url is not None
        assert httpx.get(f"{url}/readyz").json() == {"status": "ready"}  # the database only
        wait_for(lambda: scrape(url).get("firehook_scheduler_fired_total", 0) >= 3, 20, "ticks")
        m = scrape(url)
        assert m["firehook_queue_due"] + m["firehook_queue_executing"] >= 1  # no worker runs
    finally:
        assert scheduler.stop() == 0


def test_readyz_says_503_and_why_when_the_database_and_broker_are_away() -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    health = Health(engine, "amqp://guest:guest@127.0.0.1:1//", timedelta(seconds=2))
    role = StatusRole(Metrics(), health, "127.0.0.1", 0)
    role.start()
    try:
        base = f"http://127.0.0.1:{role.port}"
        assert httpx.get(f"{base}/healthz").status_code == 200  # alive all the same
        res = httpx.get(f"{base}/readyz", timeout=20)
        assert res.status_code == 503
        msg = res.json()["error_msg"]
        assert "database unreachable" in msg and "broker unreachable" in msg
        assert "127.0.0.1" not in msg and "guest" not in msg  # no addresses or credentials
        assert httpx.get(f"{base}/nothing").status_code == 404
    finally:
        role.stop(timedelta(seconds=1))
        engine.dispose()


def test_the_api_serves_healthz_readyz_and_metrics(tmp_path: Path) -> None:
    with serving("sqlite", tmp_path, broker_url=f"sqla+sqlite:///{tmp_path / 'ev.db'}") as s:
        assert s.client.get("/healthz").json() == {"status": "alive"}
        assert s.client.get("/readyz").json() == {"status": "ready"}
        res = s.invoke(s.register()[0], "hello", {"name": "m"}, sync=False)
        assert res.status_code in (200, 201, 202), res.text
        wait_for(lambda: "fulfilled" in finished(s.app), 20, "the queued run")
        m = scrape(str(s.client.base_url).rstrip("/"))
        assert m['firehook_runs_total{function="hello",status="fulfilled"}'] == 1
        assert "firehook_queue_due" in m


def test_json_logs_are_one_object_a_line_with_the_context() -> None:
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "WARNING", "msg": "run %s lost", "args": ("j1",)}
    )
    record.job_id = "j1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "run j1 lost" and line["level"] == "warning"
    assert line["job_id"] == "j1" and line["logger"] == "x"

"""The shop example (examples/shop): the nightly lottery end to end with time moved forward,
and cancelUnpaidOrder called with an orders event as the trigger will call it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from firehook.app import App
from firehook.apply import apply_file
from firehook.config import Settings
from firehook.config.rules import RulesView, rule_t
from firehook.invoker.dispatch import InvokeRequest
from firehook.invoker.event import Event
from firehook.invoker.queue import Queue
from firehook.invoker.store import InvocationFilter
from firehook.invoker.worker import Worker
from firehook.scheduler.runner import Scheduler
from tests.clock import FakeClock

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The draw counts entries stamped with the real clock up to the tick: the fake evenings are
# tomorrow's and the day after (fixed dates stopped working once they were in the past).
DAY1 = (datetime.now(SHANGHAI) + timedelta(days=1)).date()
DAY2 = DAY1 + timedelta(days=1)
TICK1 = f"{DAY1.isoformat()}T20:00:00+08:00"
TICK2 = f"{DAY2.isoformat()}T20:00:00+08:00"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A copy of the example, so its shop.db is the test's own."""
    return Path(shutil.copytree(EXAMPLE, tmp_path / "shop", ignore=shutil.ignore_patterns("*.db")))


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_the_example_config_applies(shop: Path, tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'fh.db'}", functions_dir=shop / "functions"
    )
    app = App(settings).open_db()
    try:
        diff, version = apply_file(shop / "firehook.yaml", app.rules_store, app.registry, settings)
        assert version == 1
        assert ("schedule", "nightly-lottery") in diff.added
        assert ("trigger", "cancel-unpaid-orders") in diff.added
        (lottery,) = app.rules_store.load().schedules
        assert (lottery.cron, lottery.timezone, lottery.invoke) == (
            "0 20 * * *",
            "Asia/Shanghai",
            "drawLottery",
        )
    finally:
        app.close()


@pytest.fixture
def shop_app(shop: Path, db_url: str) -> Iterator[tuple[App, FakeClock]]:
    clock = FakeClock(datetime.combine(DAY1, wall_time(19, 0), tzinfo=SHANGHAI))
    settings = Settings(database_url=db_url, functions_dir=shop / "functions")
    app = App(settings, pool_size=1)
    app.queue = app.dispatcher.queue = Queue(app.engine, clock=clock)
    app.scheduler = Scheduler(
        app.dispatcher,
        RulesView(app.rules_store, refresh=timedelta(0)),
        settings.scheduler,
        clock=clock,
    )
    app.start()
    apply_file(shop / "firehook.yaml", app.rules_store, app.registry, settings)
    with app.engine.begin() as conn:  # applied "at" the fake clock's time
        conn.execute(update(rule_t).values(updated_at=clock()))
    yield app, clock
    app.close()


def test_the_nightly_lottery_draws_at_20_00_beijing_time_fairly_and_reproducibly(
    shop: Path, shop_app: tuple[App, FakeClock]
) -> None:
    app, clock = shop_app
    worker = Worker(app.dispatcher, app.settings.worker)
    for user in ["ann", "bo", "cy", "di", "ed", "fay", "gus", "hal", "ida", "jo"]:
        entered = app.dispatcher.run_sync(InvokeRequest("enterLottery", {"user": user}))
        assert entered.envelope.ok, entered.envelope
    # 19:59:59.5: the scheduler inserts the tick, due at 20:00 sharp; nothing runs yet
    clock.now = datetime.combine(DAY1, wall_time(19, 59, 59, 500000), tzinfo=SHANGHAI)
    assert app.scheduler.step().fired == 1
    assert worker.run_due() == 0
    clock.now = datetime.combine(DAY1, wall_time(20, 0), tzinfo=SHANGHAI)
    assert worker.run_due() == 1
    (run,) = app.store.find(InvocationFilter(function="drawLottery"))
    assert run.status == "fulfilled", run.error
    result = run.result
    assert result["scheduled_time"] == TICK1
    assert result["prize"] == "phone" and result["entries"] == 10
    assert len({w["entry_id"] for w in result["winners"]}) == 3
    # recorded in the example's own tables, and reproducible from what was recorded
    db = shop / "shop.db"
    ((seed, entry_ids, winners),) = query(
        db,
        "SELECT seed, entry_ids, winners FROM lottery_draws WHERE scheduled_time = ?",
        TICK1,
    )
    shop_module = load(shop / "functions" / "_shop.py", "shop_tables_check")
    assert seed == shop_module.draw_seed("nightly-lottery", TICK1)
    ids = json.loads(entry_ids)
    assert [w["entry_id"] for w in json.loads(winners)] == shop_module.pick(seed, ids, 3)
    assert query(db, "SELECT count(*) FROM lottery_entries WHERE draw_id IS NULL") == [(0,)]
    # a replay of the same tick returns the recorded draw; it never draws again
    (replayed,) = app.dispatcher.replay([run.id])
    worker.run_due()
    again = app.store.get(replayed[1] or "")
    assert again is not None and again.result["draw_id"] == result["draw_id"]
    assert query(db, "SELECT count(*) FROM lottery_draws") == [(1,)]
    # the next evening: only the new entries are in the draw
    for user in ["kim", "lu"]:
        app.dispatcher.run_sync(InvokeRequest("enterLottery", {"user": user}))
    clock.now = datetime.combine(DAY2, wall_time(19, 59, 59, 500000), tzinfo=SHANGHAI)
    assert app.scheduler.step().fired == 1
    clock.now = datetime.combine(DAY2, wall_time(20, 0), tzinfo=SHANGHAI)
    assert worker.run_due() == 1
    draws = query(db, "SELECT scheduled_time, entry_ids, winners FROM lottery_draws ORDER BY id")
    assert [d[0] for d in draws] == [TICK1, TICK2]
    assert len(json.loads(draws[1][1])) == 2
    assert {w["user"] for w in json.loads(draws[1][2])} == {"kim", "lu"}


def test_the_draw_is_uniform_over_entries(shop: Path) -> None:
    shop_module = load(shop / "functions" / "_shop.py", "shop_tables_fair")
    counts = Counter(
        shop_module.pick(shop_module.draw_seed("x", str(i)), list(range(10)), 1)[0]
        for i in range(5000)
    )
    assert set(counts) == set(range(10))
    assert all(400 < n < 600 for n in counts.values()), counts  # 500 each expected
    assert sorted(shop_module.pick("seed", list(range(10)), 10)) == list(range(10))


@pytest.fixture
def cancel_unpaid(shop: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """cancelUnpaidOrder imported as the worker imports it, on the test's shop.db."""
    monkeypatch.setenv("SHOP_DATABASE_URL", f"sqlite:///{shop / 'shop.db'}")
    monkeypatch.syspath_prepend(str(shop / "functions"))
    sys.modules.pop("_shop", None)
    yield load(shop / "functions" / "cancelUnpaidOrder.py", "cancelUnpaidOrder_under_test")
    sys.modules.pop("_shop", None)


def order_event(order: dict[str, Any]) -> Event:
    data = {"table": "orders", "event": "on_create", "before": None, "after": order}
    return Event(data=data, event_type="trigger", trigger="cancel-unpaid-orders")


def test_an_order_still_unpaid_is_cancelled_and_a_paid_one_left_alone(
    shop: Path, cancel_unpaid: ModuleType
) -> None:
    create = load(shop / "functions" / "createOrder.py", "createOrder_under_test")
    pay = load(shop / "functions" / "payOrder.py", "payOrder_under_test")
    unpaid = create.main(Event(data={"customer": "bob", "amount_cents": 1999}))["after"]
    paid_later = create.main(Event(data={"customer": "eve", "amount_cents": 500}))["after"]
    assert unpaid["status"] == paid_later["status"] == "unpaid"
    pay.main(Event(data={"id": paid_later["id"]}))  # paid within the 30 minutes
    # 30 minutes later the trigger runs the function with the creation event (status unpaid)
    assert cancel_unpaid.main(order_event(unpaid)) == {
        "order": unpaid["id"],
        "action": "cancelled",
        "status": "cancelled",
    }
    assert cancel_unpaid.main(order_event(paid_later)) == {
        "order": paid_later["id"],
        "action": "left alone (paid)",
        "status": "paid",
    }
    # a retry of the same event changes nothing
    assert cancel_unpaid.main(order_event(unpaid))["action"] == "left alone (cancelled)"
    rows = query(shop / "shop.db", "SELECT id, status, cancel_reason FROM orders ORDER BY id")
    assert rows == [
        (unpaid["id"], "cancelled", "unpaid 30 minutes after it was created"),
        (paid_later["id"], "paid", None),
    ]
    with pytest.raises(ValueError, match=r"after\.id"):
        cancel_unpaid.main(Event(data={"table": "orders", "before": None, "after": None}))
    assert cancel_unpaid.main(order_event({"id": 999, "status": "unpaid"}))["action"] == (
        "not found"
    )


def test_orders_still_unpaid_30_minutes_after_creation_are_cancelled_end_to_end(
    shop: Path, shop_app: tuple[App, FakeClock], tmp_path: Path
) -> None:
    """createOrder -> an orders.on_create event through the broker -> the consumer queues
    cancelUnpaidOrder 30 minutes out -> time moves forward -> the worker runs it."""
    import threading
    import time

    from firehook.triggers.broker import connect
    from firehook.triggers.consumer import EventConsumer
    from firehook.triggers.events import change_event
    from firehook.triggers.matching import Matcher
    from firehook.triggers.publisher import Publisher

    app, clock = shop_app
    broker = f"sqla+sqlite:///{tmp_path / 'events.db'}"
    consumer = EventConsumer(
        connect(broker), app.dispatcher, Matcher(app.rules.current), app.settings.triggers
    )
    thread = threading.Thread(target=consumer.run_until_stopped)
    thread.start()
    try:
        orders = []
        for customer in ("bob", "eve"):
            created = app.dispatcher.run_sync(InvokeRequest("createOrder", {"customer": customer}))
            assert created.envelope.ok, created.envelope
            orders.append(created.envelope.data["after"])
        eve = orders[1]
        with Publisher(broker) as pub:
            pub.publish_many([change_event("orders", "on_create", after=o) for o in orders])
        deadline = time.monotonic() + 20
        while len(app.store.find(InvocationFilter(function="cancelUnpaidOrder"))) < 2:
            assert time.monotonic() < deadline, "the consumer did not queue the two runs"
            time.sleep(0.05)
    finally:
        consumer.should_stop = True
        thread.join(10)
    paid = app.dispatcher.run_sync(InvokeRequest("payOrder", {"id": eve["id"]}))
    assert paid.envelope.ok, paid.envelope
    worker = Worker(app.dispatcher, app.settings.worker)
    clock.now += timedelta(minutes=29, seconds=59)
    assert worker.run_due() == 0  # not before its time
    clock.now += timedelta(seconds=2)
    assert worker.run_due() == 2
    runs = {
        r.params["after"]["customer"]: r
        for r in app.store.find(InvocationFilter(function="cancelUnpaidOrder"))
    }
    assert runs["bob"].status == runs["eve"].status == "fulfilled"
    assert runs["bob"].result["action"] == "cancelled"
    assert runs["eve"].result["action"] == "left alone (paid)"
    assert runs["bob"].event_type == "trigger" and runs["bob"].source == "cancel-unpaid-orders"
    assert query(shop / "shop.db", "SELECT customer, status FROM orders ORDER BY id") == [
        ("bob", "cancelled"),
        ("eve", "paid"),
    ]

"""Poison events: each fails alone and on record, never its batch or the consumer.

Real brokers (the embedded default and RabbitMQ) and real databases (SQLite and
PostgreSQL): a batch of good events with poison ones between them; the good ones are
queued, each poison one is dead-lettered with its reason, and a restart brings none back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firehook.invoker import dispatch as dispatch_module
from firehook.triggers import events as events_module
from firehook.triggers.broker import connect
from firehook.triggers.events import InvalidEvent, change_event, hook_event
from firehook.triggers.publisher import Publisher, publish
from tests.trigger_support import TOPOLOGY, Rig, broker_for, dead_letters, publish_raw

# one batch: the consumer waits this long after the first message before it records
BATCH = {"flush_interval": "1500ms", "batch_size": 200}


@pytest.fixture(params=["embedded", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from broker_for(request.param, tmp_path)


@pytest.fixture
def rig(broker_url: str, db_url: str, functions_dir: Path, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(broker_url, functions_dir, tmp_path, database_url=db_url, triggers=BATCH)
    yield r
    r.stop()


def _order(event_id: str, after: Any, **fields: Any) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "shop",
            "type": "firehook.record.on_create",
            "data": {"table": "orders", "event": "on_create", "before": None, "after": after},
            **fields,
        }
    )


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _raw(event_id: str, raw: str) -> str:
    """An order whose ``after.raw`` is the JSON text ``raw``, written as it is."""
    return _order(event_id, {"id": 1, "status": "unpaid", "raw": "@@"}).replace('"@@"', raw)


# (message body, what its dead letter's reason says)
POISON = [
    (_order("nul", {"id": 1, "status": "unpaid", "note": "a\x00b"}), "NUL character"),
    (_order("nul-key", {"id": 1, "status": "unpaid", "a\x00": 1}), "NUL character"),
    (_order("nul-subject", {"id": 1, "status": "unpaid"}, subject="x\x00"), "subject: "),
    (_order("nul-source", {"id": 1, "status": "unpaid"}, source="s\x00"), "source: "),
    (_order("nul-ext", {"id": 1, "status": "unpaid"}, tenant="t\x00"), "'tenant'"),
    (_order("nul\x00id", {"id": 1, "status": "unpaid"}), "id: "),
    (_order("lone", {"id": 1, "status": "unpaid", "name": "\ud800"}), "Invalid JSON"),
    (_raw("digits", "7" * 5000), "number"),
    (_raw("deep", _nested(100)), "deeper than 64"),
    (_raw("deeper", _nested(5000)), "Invalid JSON"),
    (
        _order("nan", {"id": 1, "status": "unpaid", "total": float("nan")}),
        "nan is not a JSON number",
    ),
    (
        _order("inf", {"id": 1, "status": "unpaid", "total": float("inf")}),
        "inf is not a JSON number",
    ),
]


def test_poison_events_are_dead_lettered_with_their_reason_and_the_rest_of_their_batch_runs(
    rig: Rig, broker_url: str
) -> None:
    good = [_order(f"good-{i}", {"id": i, "status": "unpaid"}) for i in range(3)]
    bodies = [good[0], *(body for body, _ in POISON[:6]), good[1], *(b for b, _ in POISON[6:])]
    publish_raw(broker_url, [*bodies, good[2]], "orders.on_create")
    rig.start_consumer()
    rig.wait_stat("dead_lettered", len(POISON))
    rows = rig.wait_runs(6)  # notify-unpaid and audit-orders for each good event
    rig.wait_stat("events", 3)
    assert sorted((r.source, r.params["after"]["id"]) for r in rows) == sorted(
        (rule, i) for rule in ("audit-orders", "notify-unpaid") for i in range(3)
    )
    dead = dead_letters(broker_url)
    assert len(dead) == len(POISON), [reason for _, reason in dead]
    reasons = {_text(body): reason for body, reason in dead}
    for body, expected in POISON:
        assert expected in reasons[body], (body[:80], reasons[body])
    assert rig.consumer is not None and rig.consumer.running
    assert rig.stats["events"] == 3 and rig.stats["dead_lettered"] == len(POISON)

    # a restart brings none of them back: the next event is the only one it sees
    rig.stop_consumer()
    rig.start_consumer()
    publish_raw(
        broker_url, [_order("after-restart", {"id": 9, "status": "unpaid"})], "orders.on_create"
    )
    rig.wait_runs(8)
    rig.wait_stat("events", 1)
    assert rig.stats["events"] == 1 and rig.stats["dead_lettered"] == 0
    assert dead_letters(broker_url) == []
    assert len(rig.runs()) == 8


def _text(body: Any) -> str:
    return body.decode() if isinstance(body, bytes) else str(body)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_batch_the_database_refuses_is_queued_event_by_event_and_only_the_refused_one_is_dead(
    rig: Rig, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with the event checks and the params check switched off, a NUL
    reaches PostgreSQL, which refuses the batch insert (a data error, not a lost
    connection). The consumer queues the batch event by event; only that event is
    dead-lettered, with the database's reason."""
    monkeypatch.setattr(events_module, "unstorable", lambda _event: None)
    monkeypatch.setattr(dispatch_module, "check_params", lambda params: params)
    good = [_order(f"good-{i}", {"id": i, "status": "unpaid"}) for i in range(2)]
    poison = _order("nul", {"id": 5, "status": "unpaid", "note": "a\x00b"})
    publish_raw(broker_url, [good[0], poison, good[1]], "orders.on_create")
    rig.start_consumer()
    rig.wait_stat("dead_lettered", 1)
    rows = rig.wait_runs(4)
    rig.wait_stat("events", 2)
    assert sorted(r.params["after"]["id"] for r in rows) == [0, 0, 1, 1]
    ((body, reason),) = dead_letters(broker_url)
    assert _text(body) == poison
    assert reason.startswith("the database refused its runs: unsupported Unicode escape")
    assert "[SQL" not in reason  # the statement and its parameters stay out of the header
    assert rig.consumer is not None and rig.consumer.running


def test_nan_is_refused_when_an_event_is_built_or_published_never_written_as_null(
    tmp_path: Path,
) -> None:
    url = f"sqla+sqlite:///{tmp_path / 'events.db'}"
    with pytest.raises(InvalidEvent, match="data: nan is not a JSON number"):
        publish("orders", "on_create", after={"id": 1, "total": float("nan")}, url=url)
    with pytest.raises(InvalidEvent, match="data: inf is not a JSON number"):
        hook_event("payment-ok", {"amount": float("inf")})
    ev = change_event("orders", "on_create", after={"id": 1, "total": 2.5})
    ev.data["after"]["total"] = float("nan")  # changed after it was built
    assert '"total":NaN' in ev.model_dump_json()  # not null: a consumer refuses it
    ok = change_event("orders", "on_create", after={"id": 2})
    with Publisher(url, TOPOLOGY) as pub, pytest.raises(InvalidEvent, match="event 1 cannot"):
        pub.publish_many([ok, ev])
    assert queued(url) == 0  # nothing of the batch was sent


def queued(url: str) -> int:
    with connect(url) as conn:
        queue = TOPOLOGY.events_queue()(conn.default_channel)
        queue.declare()
        count = 0
        for _ in range(100):
            if queue.get(no_ack=True) is None:
                break
            count += 1
        return count


def test_a_generator_of_events_is_published_whole(tmp_path: Path) -> None:
    url = f"sqla+sqlite:///{tmp_path / 'events.db'}"
    with Publisher(url, TOPOLOGY) as pub:
        sent = pub.publish_many(
            change_event("orders", "on_create", after={"id": i}) for i in range(3)
        )
    assert sent == 3 and queued(url) == 3

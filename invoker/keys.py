"""Idempotency keys: scoped to their function, and which runs a key dedupes against.

The rule (README "Idempotency keys", docs/decisions.md D12):

* A key belongs to one function: ``(function, idempotency_key)`` is unique, so the same key
  given to two functions makes two runs.
* A key a caller gives (``invoke --key``, the ``Idempotency-Key`` header, the SDK's ``key=``)
  dedupes against that function's run holding it while the run is waiting, executing or
  being retried, and after it succeeded for as long as its record is kept (retention).  A run
  that ended any other way (cancelled, failed, timed out, rejected, lost, dead) gives the key
  up: the next call with it queues a new run, which takes the key over (the old record keeps
  its history and a note naming the new run).
* Keys firehook makes itself (a schedule's tick, a trigger's event, cool-down window or
  ``once``: event types ``timer`` and ``trigger``) dedupe against their run however it ended,
  so a tick or an event that was dealt with is never run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, RowMapping

from firehook.invoker.claims import Enqueued
from firehook.invoker.envelope import NotCancellable, Status
from firehook.invoker.event import EventType
from firehook.invoker.pg_bulk import insert_runs
from firehook.invoker.records import invocation_table as t

__all__ = [
    "KEY_COLUMNS",
    "ONCE_KEY_PATTERN",
    "STRICT_EVENT_TYPES",
    "gives_up_its_key",
    "insert_deduped",
    "key_holder",
]

KEY_COLUMNS = ("function", "idempotency_key")
# the key of a ``frequency: once`` trigger's run (triggers.matching); retention keeps that run
ONCE_KEY_PATTERN = "trigger:%:once"
# runs keyed by firehook itself: their key holds whatever the run's outcome
STRICT_EVENT_TYPES = frozenset({EventType.TIMER.value, EventType.TRIGGER.value})
# a caller's key holds while its run's latest attempt is in one of these
_HOLDING = frozenset(
    {Status.WAITING.value, Status.EXECUTING.value, Status.RETRYING.value, Status.FULFILLED.value}
)


def gives_up_its_key(new_event_type: str, latest_status: str) -> bool:
    """Whether a run whose latest attempt is ``latest_status`` lets a new run take its key."""
    return new_event_type not in STRICT_EVENT_TYPES and latest_status not in _HOLDING


def insert_deduped(conn: Connection, pg: bool, rows: Sequence[dict[str, Any]]) -> list[Enqueued]:
    """Insert ``waiting`` rows; a row whose key is held answers the holder's run instead."""
    out: dict[str, Enqueued] = {}
    pending = list(rows)
    for round_ in range(2):  # the second round inserts the rows whose key was given up
        inserted = _insert(conn, pg, pending)
        keyed = [
            r
            for r in pending
            if r["idempotency_key"] is not None and (inserted is None or r["id"] not in inserted)
        ]
        holders = _holders(conn, keyed)
        again = []
        for r in pending:
            m = holders.get((r["function"], r["idempotency_key"]))
            if m is None or m["id"] == r["id"]:
                out[r["id"]] = Enqueued(r["id"], True, Status.WAITING.value, r["due_at"])
            elif round_ == 0 and gives_up_its_key(r["event_type"], _latest_status(conn, m)):
                _release(conn, m, r["id"])
                again.append(r)  # whoever took the key meanwhile is found in the next round
            else:
                out[r["id"]] = Enqueued(m["id"], False, m["status"], m["due_at"])
        if not again:
            break
        pending = again
    return [out[r["id"]] for r in rows]


def _insert(conn: Connection, pg: bool, rows: Sequence[dict[str, Any]]) -> set[str] | None:
    """The ids inserted (PostgreSQL), or None: look every keyed row up (SQLite)."""
    if pg:  # one statement, the rows as one JSON document
        return insert_runs(conn, rows)
    conn.execute(sqlite.insert(t).on_conflict_do_nothing(index_elements=list(KEY_COLUMNS)), rows)
    return None


def _holders(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], RowMapping]:
    pairs = sorted({(r["function"], r["idempotency_key"]) for r in rows})
    found: dict[tuple[str, str], RowMapping] = {}
    columns = (t.c.id, t.c.root_id, t.c.function, t.c.idempotency_key, t.c.status, t.c.due_at)
    for start in range(0, len(pairs), 500):
        query = select(*columns).where(
            tuple_(t.c.function, t.c.idempotency_key).in_(pairs[start : start + 500])
        )
        for m in conn.execute(query).mappings():
            found[(m["function"], m["idempotency_key"])] = m
    return found


def _latest_status(conn: Connection, holder: RowMapping) -> str:
    """The status of the holder's run as a whole: its latest attempt's (retries are rows)."""
    if holder["status"] != Status.RETRYING.value:
        return str(holder["status"])
    latest = conn.execute(
        select(t.c.status)
        .where(t.c.root_id == holder["root_id"])
        .order_by(t.c.attempt.desc())
        .limit(1)
    ).scalar_one()
    return str(latest)


def _release(conn: Connection, holder: RowMapping, new_id: str) -> None:
    note = f"key {holder['idempotency_key']} given up to run {new_id}"
    conn.execute(
        update(t)
        .where(t.c.id == holder["id"], t.c.idempotency_key == holder["idempotency_key"])
        .values(
            idempotency_key=None,
            note=func.coalesce(t.c.note + "; ", "") + note,
        )
    )


def key_holder(conn: Connection, key: str, function: str | None) -> str | None:
    """The root id of the run holding ``key`` (of ``function``, if given); None: no run."""
    query = select(t.c.root_id, t.c.function).where(t.c.idempotency_key == key)
    if function is not None:
        query = query.where(t.c.function == function)
    found = conn.execute(query.limit(20)).all()
    if len(found) > 1:
        names = ", ".join(sorted(row.function for row in found))
        raise NotCancellable(
            f"key {key} is held by runs of several functions ({names}); name the function"
        )
    return str(found[0].root_id) if found else None

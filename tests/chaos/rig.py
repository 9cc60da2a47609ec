"""The crash tests' rig: roles as processes on the real PostgreSQL and RabbitMQ, a bounded
burst of events, and one query that counts what became of every event."""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from firehook.app import App
from firehook.config import Settings, create_db_engine
from firehook.config.loader import parse_config
from firehook.triggers.events import change_event
from firehook.triggers.publisher import Publisher, PublishError
from tests.roles import RoleProcess, role_env

RULES = """
version: 1
triggers:
  - name: on-order
    on: {table: orders, events: [on_create]}
    invoke: sleepy
    params: {seconds: 0.02}
"""

OUTCOMES = text(
    """
    SELECT root.idempotency_key AS key,
           count(*) FILTER (WHERE a.status = 'fulfilled') AS ok,
           count(*) AS attempts,
           count(*) FILTER (WHERE a.status = 'worker_lost') AS lost,
           bool_or(a.status IN ('waiting', 'executing')) AS open
    FROM invocation root JOIN invocation a ON a.root_id = root.id
    WHERE root.idempotency_key LIKE 'trigger:%'
    GROUP BY root.idempotency_key
    """
)


@dataclass
class Counts:
    events: int  # distinct (trigger, event) runs recorded
    fulfilled_once: int
    fulfilled_twice_or_more: int
    unfinished: int  # waiting or executing, or finished without success
    attempts: int
    worker_lost: int

    def done(self, n: int) -> bool:
        return self.events == n and self.fulfilled_once + self.fulfilled_twice_or_more == n


class Rig:
    """Roles started here are killed at the end if they still run."""

    def __init__(self, db_url: str, functions_dir: Path, tmp_path: Path, rabbit: str) -> None:
        self.db_url, self.functions_dir, self.tmp_path, self.rabbit = (
            db_url,
            functions_dir,
            tmp_path,
            rabbit,
        )
        app = App(Settings(database_url=db_url, functions_dir=functions_dir)).open_db()
        app.rules_store.apply(parse_config(textwrap.dedent(RULES)).config, "chaos")
        app.close()
        self.engine = create_db_engine(db_url)
        self.procs: list[RoleProcess] = []
        self.kills = 0
        self.published = 0

    def env(self, **extra: str) -> dict[str, str]:
        extra = {"FIREHOOK_BROKER_URL": self.rabbit, "FIREHOOK_RETRY__ATTEMPTS": "10", **extra}
        return role_env(self.db_url, self.functions_dir, **extra)

    def start(self, role: str, **extra: str) -> RoleProcess:
        p = RoleProcess(role, self.env(**extra), self.tmp_path)
        self.procs.append(p)
        return p

    def crash(self, p: RoleProcess) -> None:
        """SIGKILL the role and everything it started (its pool), as a machine dying would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.kill()
        self.kills += 1

    def publish(self, n: int, seconds: float, at: Callable[[int], None] = lambda i: None) -> None:
        """Publish ``n`` events spread over about ``seconds``; ``at(i)`` before event ``i``.

        A publish that fails (the connection was cut) is retried with the same event id:
        the broker may then hold it twice, which the consumer must absorb.
        """
        pause = seconds / n
        start = time.monotonic()
        with Publisher(self.rabbit) as pub:
            for i in range(n):
                at(i)
                ev = change_event("orders", "on_create", after={"id": i}, event_id=f"ev-{i}")
                for _ in range(20):
                    try:
                        pub.publish(ev)
                        break
                    except PublishError:
                        time.sleep(0.5)
                else:
                    pytest.fail(f"could not publish event {i}")
                self.published += 1
                ahead = start + (i + 1) * pause - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def publish_in_background(self, n: int, seconds: float) -> threading.Thread:
        t = threading.Thread(target=self.publish, args=(n, seconds), daemon=True)
        t.start()
        return t

    def counts(self) -> Counts:
        with self.engine.connect() as conn:
            rows = conn.execute(OUTCOMES).all()
        return Counts(
            events=len(rows),
            fulfilled_once=sum(1 for r in rows if r.ok == 1),
            fulfilled_twice_or_more=sum(1 for r in rows if r.ok > 1),
            unfinished=sum(1 for r in rows if r.ok == 0),
            attempts=sum(r.attempts for r in rows),
            worker_lost=sum(r.lost for r in rows),
        )

    def wait_done(self, n: int, timeout: float) -> Counts:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c = self.counts()
            except Exception:  # the database may be restarting
                time.sleep(0.5)
                continue
            if c.done(n):
                return c
            time.sleep(0.5)
        return self.counts()

    def close(self) -> None:
        for p in self.procs:
            if p.alive():
                self.crash(p)
        self.engine.dispose()


def every(seconds: float, until: threading.Thread, action: Callable[[], None]) -> int:
    """Run ``action`` every ``seconds`` while ``until`` is alive; returns how often."""
    done = 0
    while until.is_alive():
        until.join(seconds)
        if until.is_alive():
            action()
            done += 1
    return done

"""Waking an idle worker when work arrives: in-process on SQLite, LISTEN/NOTIFY on PostgreSQL.

Notifications are hints: the worker also polls, and polls once after every (re)connect of
the listener, because notifications sent while it was disconnected are lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine

from firehook.invoker.queue import NOTIFY_CHANNEL

__all__ = ["PgListener", "Wakeup"]

log = logging.getLogger(__name__)


class Wakeup:
    """A latch the worker waits on; anything may ``notify()`` it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def notify(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(max(0.0, timeout))
        self._event.clear()
        return woke


class PgListener:
    """A thread holding one dedicated autocommit connection that LISTENs for new work."""

    def __init__(self, engine: Engine, wakeup: Wakeup) -> None:
        self.url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.wakeup = wakeup
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="firehook-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3)

    def _run(self) -> None:
        import psycopg

        delay = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    delay = 0.1
                    self.wakeup.notify()  # anything sent while we were away is lost: poll
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.wakeup.notify()
            except psycopg.Error as e:
                log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", e, delay)
                with contextlib.suppress(Exception):
                    self.wakeup.notify()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

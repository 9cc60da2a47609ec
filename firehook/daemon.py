"""Long-running roles: start them, wait for SIGTERM/SIGINT, stop gracefully, exit 0."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from sqlalchemy.engine import make_url

from firehook.app import App

__all__ = ["run_worker"]

log = logging.getLogger(__name__)


def _describe(app: App) -> str:
    url = make_url(app.settings.database_url).render_as_string(hide_password=True)
    return (
        f"pool {app.pool.size}, concurrency {app.worker.concurrency}, database {url}, "
        f"functions {app.settings.functions_dir}"
    )


def run_worker(app: App, role: str = "worker") -> int:
    """Run the queue worker until SIGTERM or SIGINT; returns the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker = app.start_worker()
        print(f"firehook {role} {worker.name} running: {_describe(app)}", flush=True)  # noqa: T201
        while not stop.wait(1.0):
            if not worker.running:
                log.error("the worker loop stopped unexpectedly")
                return 1
        grace = app.settings.worker.grace_period
        print(f"firehook {role} stopping (grace {grace.total_seconds():g}s)", flush=True)  # noqa: T201
        worker.stop(grace)
        print(f"firehook {role} stopped after {worker.completed} run(s)", flush=True)  # noqa: T201
        return 0
    finally:
        app.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

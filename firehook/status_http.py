"""A small HTTP listener for roles without the API: ``/healthz``, ``/readyz``, ``/metrics``.

Standard library only (``ThreadingHTTPServer`` in a daemon thread); off unless
``FIREHOOK_METRICS__PORT`` is set (0 picks a free port, printed at start).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from firehook.config.errors import ListenError
from firehook.metrics import Health, Metrics

__all__ = ["StatusRole", "StatusServerError"]

log = logging.getLogger(__name__)


class StatusServerError(ListenError):
    """The metrics/health listener could not listen."""


def health_body(health: Health) -> tuple[int, bytes]:
    """``/readyz``: 200 ``{"status": "ready"}``, or 503 with what is unreachable."""
    problems = health.problems()
    if problems:
        body = {"status": "error", "error_msg": "; ".join(problems)}
        return 503, json.dumps(body).encode()
    return 200, json.dumps({"status": "ready"}).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b'{"status": "alive"}', "application/json")
        elif path == "/readyz":
            code, body = health_body(self.server.health)
            self._send(code, body, "application/json")
        elif path == "/metrics":
            self._send(200, self.server.metrics.render(), CONTENT_TYPE_LATEST)
        else:
            self._send(404, b'{"status": "error", "error_msg": "not found"}', "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status http: %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], metrics: Metrics, health: Health) -> None:
        self.metrics = metrics
        self.health = health
        super().__init__(address, _Handler)


class StatusRole:
    """Runs the listener beside the other roles of a process (started first, stopped last)."""

    name = "status"

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        self.metrics, self.health = metrics, health
        self.host, self.port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._server = _Server((self.host, self.port), self.metrics, self.health)
        except OSError as e:
            raise StatusServerError(
                f"cannot listen on {self.host}:{self.port} for metrics: {e.strerror}"
            ) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="firehook-status", daemon=True
        )
        self._thread.start()
        print(f"firehook metrics: http://{self.host}:{self.port}/metrics", flush=True)  # noqa: T201

    def stop(self, grace: timedelta) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

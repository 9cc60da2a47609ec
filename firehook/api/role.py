"""``ApiRole``: the HTTP API on uvicorn, in a thread of the daemon (``firehook api``/``serve``).

``start`` binds the socket itself, so a taken port is a clear error at once, and port 0 picks
a free one (``role.port`` tells which).  ``stop`` stops accepting connections and lets requests
in flight finish within the grace period (a sync call ends within its own time limit).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta

import uvicorn
from fastapi import FastAPI

from firehook.api.factory import create_api
from firehook.app import App
from firehook.config.errors import ListenError

__all__ = ["ApiRole", "ApiStartError"]

log = logging.getLogger(__name__)


class ApiStartError(ListenError):
    """The HTTP API could not listen (address taken, bad host)."""


class ApiRole:
    name = "api"

    def __init__(self, app: App, *, host: str | None = None, port: int | None = None) -> None:
        self.app = app
        self.host = host if host is not None else app.settings.http.host
        self.port = port if port is not None else app.settings.http.port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.api: FastAPI | None = None
        self.requests = 0

    def start(self) -> None:
        self.app.start()
        sock = self._bind()
        self.port = sock.getsockname()[1]
        self.api = create_api(self.app)
        config = uvicorn.Config(
            self.api,
            log_config=None,  # the CLI sets up logging
            lifespan="off",
            timeout_graceful_shutdown=int(self.app.settings.worker.grace_period.total_seconds()),
            server_header=False,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="firehook-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise ApiStartError(f"the HTTP API did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        log.info("HTTP API listening on http://%s:%d", self.host, self.port)
        print(f"firehook api: http://{self.host}:{self.port} (docs at /docs)", flush=True)  # noqa: T201

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise ApiStartError(f"cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        sock.set_inheritable(True)
        return sock

    def stop(self, grace: timedelta) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.config.timeout_graceful_shutdown = max(1, int(grace.total_seconds()))
        server.should_exit = True
        thread.join(grace.total_seconds() + 5)
        if thread.is_alive():
            log.warning("the HTTP API did not stop within %s", grace)
            server.force_exit = True
            thread.join(5)
        self.requests = server.server_state.total_requests

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def summary(self) -> str:
        server = self._server
        total = server.server_state.total_requests if server is not None else self.requests
        return f"{total} request(s)"

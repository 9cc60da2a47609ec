"""Limits: a token-bucket rate limiter (per user, per IP) and a request-body size cap.

The buckets live in the API process's memory: each ``firehook api`` process limits on its
own, so behind a load balancer with N processes a client gets up to N times the rate.  That
keeps the check off the database (a lock and two floats per call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firehook.api.errors import TooManyRequests, error_response

__all__ = ["BodyLimit", "RateLimiter"]


class RateLimiter:
    """Token buckets keyed by a string: ``rate`` tokens per second, at most ``burst`` saved."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        what: str = "requests",
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.what = what
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def wait_time(self, key: str) -> float:
        """Take a token for ``key``: 0.0 if one was there, else the seconds until one is."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
        return wait

    def check(self, key: str, who: str) -> None:
        """Raise :class:`TooManyRequests` (429 with ``Retry-After``) when ``key`` is out."""
        wait = self.wait_time(key)
        if wait > 0:
            raise TooManyRequests(
                f"too many {self.what} from this {who}: at most {self.rate:g}/s", wait
            )

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (they equal a fresh one); called under the lock."""
        full = [
            k
            for k, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]


class BodyLimit:
    """ASGI middleware: bodies over ``max_bytes`` get 413, by Content-Length or as they stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request body is larger than {self.max_bytes} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await error_response(413, message)(scope, receive, send)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    # an HTTPException: FastAPI turns other errors while reading into 400
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, limited_receive, send)

"""What the queue tells an observer (the metrics) as it records runs; nothing by default."""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullObserver", "RunObserver"]


class RunObserver(Protocol):
    def claimed(self, event_type: str, lag_seconds: float) -> None:
        """A run was claimed ``lag_seconds`` after it was due."""

    def finished(self, function: str, status: str, duration_seconds: float | None) -> None:
        """A run's outcome was recorded (``duration_seconds`` is None for a takeover)."""

    def retried(self, function: str) -> None:
        """A new attempt of a run was queued."""


class NullObserver:
    def claimed(self, event_type: str, lag_seconds: float) -> None:
        pass

    def finished(self, function: str, status: str, duration_seconds: float | None) -> None:
        pass

    def retried(self, function: str) -> None:
        pass

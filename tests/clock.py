"""A clock the tests move by hand (the queue, scheduler and dispatcher take ``clock=``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now if now is not None else datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by

    def set(self, when: datetime) -> None:
        self.now = when.astimezone(UTC)

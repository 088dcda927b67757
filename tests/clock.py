"""A clock that tests set and move (the ``clock`` of leased tables: tasks, webhook deliveries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """By default far ahead of the platform's own workers (its notifier must not take a test's
    deliveries), and each clock before the previous one's: what an earlier test left pending is
    never due here. ``start``: another "now" to begin at."""

    epochs = iter(range(2900, 2100, -10))

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(next(Clock.epochs), 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

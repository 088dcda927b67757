"""When a failed delivery is tried again, when it is given up, and when a hook is disabled.

A delivery is attempted at once, then after each delay of the schedule
(``VISIONFN_WEBHOOK_RETRY_DELAYS``, by default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 10 h,
10 h: 10 attempts over about 2 days, as Standard Webhooks and Stripe retry for 1-3 days), each
delay drawn within +-``JITTER`` of its value so that many deliveries failing together do not
come back together. Success is a 2xx answer; anything else (another status, a redirect, a
timeout, a refused or unreachable address) is a failed attempt. A receiver that answers 429 or
503 with ``Retry-After`` is tried again when it asked (at most the longest delay from then)
instead of after the drawn delay. After the last delay's attempt fails the delivery is ``failed``.

A hook whose attempts have all failed for ``VISIONFN_WEBHOOK_DISABLE_AFTER_SECONDS`` (3 days)
is disabled (its ``disabled_reason`` says since when and the last error), and so is a hook whose
receiver answers ``410 Gone``, at once; its pending deliveries are given up. A successful ping or
redelivery enables it again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

JITTER = 0.15  # each delay is drawn from [delay * 0.85, delay * 1.15]
DEFAULT_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000)


def next_attempt_at(
    now: datetime,
    failed_attempts: int,
    delays: Sequence[float],
    draw: Callable[[float, float], float] = random.uniform,
) -> datetime | None:
    """When to try again after the ``failed_attempts``-th failed scheduled attempt; None: give up."""
    if failed_attempts < 1 or failed_attempts > len(delays):
        return None
    delay = delays[failed_attempts - 1]
    return now + timedelta(seconds=draw(delay * (1 - JITTER), delay * (1 + JITTER)))


def retry_after_at(now: datetime, retry_after_seconds: float, delays: Sequence[float]) -> datetime:
    """When a receiver that answered 429 or 503 with ``Retry-After`` asked to be tried again, at
    most the schedule's longest delay from now."""
    return now + timedelta(seconds=min(max(retry_after_seconds, 0.0), max(delays)))


def schedule_span_seconds(delays: Sequence[float]) -> float:
    """How long a delivery may keep being retried at most (every delay at its longest)."""
    return sum(delays) * (1 + JITTER)


def should_disable(failing_since: datetime | None, now: datetime, disable_after_seconds: float) -> bool:
    """A hook whose attempts have failed without a success since ``failing_since``."""
    return failing_since is not None and (now - failing_since).total_seconds() >= disable_after_seconds

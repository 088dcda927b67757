"""Webhooks' retry schedule: the delays with jitter, a receiver's ``Retry-After``, and when a
failing hook is disabled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.webhooks import delivery
from shared.webhooks.retries import DEFAULT_DELAYS, JITTER, next_attempt_at, retry_after_at, schedule_span_seconds, should_disable

NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_retry_schedule_follows_the_delays_and_gives_up_after_the_last():
    middle = lambda low, high: (low + high) / 2  # noqa: E731 (no jitter)
    waits = [(next_attempt_at(NOW, attempt, DEFAULT_DELAYS, middle) - NOW).total_seconds() for attempt in range(1, len(DEFAULT_DELAYS) + 1)]
    assert waits == pytest.approx([5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000])
    assert next_attempt_at(NOW, len(DEFAULT_DELAYS) + 1, DEFAULT_DELAYS) is None
    assert next_attempt_at(NOW, 0, DEFAULT_DELAYS) is None


def test_retry_delays_are_jittered_within_bounds_and_spread():
    waits = {(next_attempt_at(NOW, 3, DEFAULT_DELAYS) - NOW).total_seconds() for _ in range(200)}
    assert all(1800 * (1 - JITTER) <= wait <= 1800 * (1 + JITTER) for wait in waits)
    assert max(waits) - min(waits) > 60  # not all at once


def test_the_default_schedule_spans_one_to_three_days_and_matches_the_settings():
    from shared.webhooks.settings import WebhookSettings

    assert tuple(WebhookSettings().webhook_retry_delays) == DEFAULT_DELAYS
    assert 1 * 86400 < sum(DEFAULT_DELAYS) < schedule_span_seconds(DEFAULT_DELAYS) < 3 * 86400


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120),
        (" 5 ", 5),
        ("0", 0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 480),  # an HTTP date, 8 min after "now" below
        ("Wed, 21 Oct 2015 07:10:00 GMT", 0),  # one already past: at once
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00", None),
        ("１２", None),  # full-width digits are not a number of seconds
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header, seconds):
    assert delivery.retry_after_seconds(header, now=datetime(2015, 10, 21, 7, 20, tzinfo=UTC).timestamp()) == seconds


def test_retry_after_is_honoured_up_to_the_schedules_longest_delay():
    assert retry_after_at(NOW, 90, DEFAULT_DELAYS) == NOW + timedelta(seconds=90)
    assert retry_after_at(NOW, 7 * 86400, DEFAULT_DELAYS) == NOW + timedelta(seconds=max(DEFAULT_DELAYS))
    assert retry_after_at(NOW, 0, [5, 60]) == NOW


def test_a_hook_is_disabled_only_after_failing_for_the_whole_bound():
    three_days = 3 * 86400
    assert not should_disable(None, NOW, three_days)
    assert not should_disable(NOW - timedelta(days=2, hours=23), NOW, three_days)
    assert should_disable(NOW - timedelta(days=3), NOW, three_days)

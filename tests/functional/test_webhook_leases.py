"""A delivery's lease against Postgres: one sender at a time, and only the lease's holder records
its attempt."""

from __future__ import annotations

import uuid

import pytest

from shared.platform.errors import Busy, LeaseLost
from shared.webhooks.delivery import AttemptResult
from shared.webhooks.notifier import Notifier
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.service import WebhookService
from tests.functional.webhook_notifiers import Clock, _detail, _notifier
from tests.webhook_receiver import Receiver, answer

OK = AttemptResult(200, None, 12, "ok", "127.0.0.1")


def _two_senders(database_url, **settings) -> tuple[Notifier, Notifier, Clock]:
    """Two notifiers (as two scheduled runs) on one database and one clock."""
    first, clock = _notifier(database_url, **settings)
    second = Notifier(WebhookRepository(database_url, clock), settings=first.settings, clock=clock)
    return first, second, clock


def test_a_sender_whose_lease_lapsed_and_was_taken_over_records_nothing(database_url):
    """GIVEN a due retry claimed by a first sender, which stalls past its lease, and then claimed
    by a second; WHEN the first records its attempt THEN LeaseLost and nothing of it is written;
    the second's attempt is the one logged."""
    first, second, clock = _two_senders(database_url, webhook_retry_delays=[5, 60])
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    with Receiver(answer(503, b"busy")) as receiver:
        hook = WebhookService(first).register(owner, {"url": receiver.url})
        [failed] = first.attempt_all(first.record_event(_detail(owner)), "event")
        clock.advance(seconds=6)
        [held] = first.repository.claim_due(10, first.lease_seconds)
        assert held.delivery_id == failed.id
        assert second.repository.claim_due(10, second.lease_seconds) == []  # one sender while the lease runs
        clock.advance(seconds=first.lease_seconds + 1)
        [taken] = second.repository.claim_due(10, second.lease_seconds)
        assert taken.delivery_id == held.delivery_id and taken.lease.attempt == held.lease.attempt + 1
        before = first.repository.delivery(held.delivery_id)
        assert before.state == "sending" and len(before.attempts) == 1

        with pytest.raises(LeaseLost):
            first.repository.record_attempt(held, "schedule", OK, [5, 60], 3600)
        assert first.repository.delivery(held.delivery_id) == before  # no attempt, no status, no time
        assert first.repository.get(owner, hook.id).failing_since is not None  # nor the hook's health
        with pytest.raises(LeaseLost):  # nor does it send: the lease is renewed before the POST
            first.attempt(held, "schedule")
        assert len(receiver.received) == 1

        receiver.behaviour = answer(200)
        [delivered] = second.attempt_all([taken], "schedule")
        assert delivered.state == "delivered"
        assert [(a.trigger, a.status_code) for a in delivered.attempts] == [("event", 503), ("schedule", 200)]
        assert second.repository.get(owner, hook.id).failing_since is None
        with pytest.raises(LeaseLost):  # a finished delivery is held by no one
            first.repository.record_attempt(held, "schedule", OK, [5, 60], 3600)
        assert first.repository.delivery(held.delivery_id) == delivered


def test_a_lease_lost_during_the_post_leaves_the_outcome_to_the_new_holder(database_url):
    """The first sender's POST is still in flight when its lease lapses and the second sender
    takes the delivery: the first's answer is not recorded, the second's is (at least once)."""
    first, second, clock = _two_senders(database_url, webhook_retry_delays=[5, 60])
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    taken = []

    def stall_past_the_lease(handler):
        if taken:
            return answer(200, b"to the second")(handler)
        clock.advance(seconds=first.lease_seconds + 1)  # the first sender's request: its lease lapses...
        taken.extend(second.repository.claim_due(10, second.lease_seconds))  # ...and the second claims
        return answer(200, b"to the first")(handler)

    with Receiver(answer(503)) as receiver:
        WebhookService(first).register(owner, {"url": receiver.url})
        [failed] = first.attempt_all(first.record_event(_detail(owner)), "event")
        clock.advance(seconds=6)
        [held] = first.repository.claim_due(10, first.lease_seconds)
        receiver.behaviour = stall_past_the_lease
        assert first.attempt_all([held], "schedule") == [None]  # LeaseLost, logged, not raised
        [mine] = taken
        assert mine.delivery_id == failed.id and mine.lease.attempt == held.lease.attempt + 1
        assert first.repository.delivery(failed.id).state == "sending"
        assert [a.trigger for a in first.repository.delivery(failed.id).attempts] == ["event"]
        [delivered] = second.attempt_all(taken, "schedule")
        assert delivered.state == "delivered"
        assert [(a.trigger, a.response_excerpt) for a in delivered.attempts] == [("event", "ok"), ("schedule", "to the second")]
        assert len(receiver.received) == 3
        assert len({request.headers["webhook-id"] for request in receiver.received}) == 1


def test_a_redelivery_waits_for_the_sender_that_holds_the_delivery(database_url):
    """A client's redelivery does not take a delivery from a sender whose lease still runs (409
    Busy, for as long as the lease runs); once that sender has logged its attempt, it does."""
    notifier, clock = _notifier(database_url)
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    service = WebhookService(notifier)
    with Receiver() as receiver:
        hook = service.register(owner, {"url": receiver.url})
        [held] = notifier.record_event(_detail(owner))
        with pytest.raises(Busy) as busy:
            service.redeliver(owner, hook.id, held.delivery_id)
        assert busy.value.status == 409 and "being sent right now" in busy.value.detail
        assert 1 <= busy.value.retry_after_seconds <= notifier.lease_seconds + 2
        assert receiver.received == []
        [delivered] = notifier.attempt_all([held], "event")
        assert delivered.state == "delivered"
        clock.advance(seconds=1)
        again = service.redeliver(owner, hook.id, held.delivery_id)
        assert [a.trigger for a in again.attempts] == ["event", "redeliver"] and len(receiver.received) == 2

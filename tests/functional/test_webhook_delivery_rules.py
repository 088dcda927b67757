"""The delivery rules against Postgres, with a clock: rebinding refused at delivery, the retry
schedule, a hook disabled after failing for the whole bound, a redelivery's same bytes and id."""

from __future__ import annotations

import uuid

from shared.webhooks.models import DeliveryListQuery
from shared.webhooks.service import WebhookService
from tests.functional.webhook_notifiers import SECRET, _detail, _notifier
from tests.webhook_receiver import Receiver, answer


def test_dns_rebinding_is_refused_at_delivery_and_logged_as_a_failed_attempt(database_url):
    answers = {"now": ["93.184.216.34"]}  # public when registered

    def resolver(host, port):
        return answers["now"] if host == "hooks.rebind.example" else []

    notifier, _clock = _notifier(database_url, resolver)
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    hook = WebhookService(notifier).register(owner, {"url": "http://hooks.rebind.example/h", "secret": SECRET})
    answers["now"] = ["10.0.0.1"]  # ...and private when delivered
    [outcome] = notifier.attempt_all(notifier.record_event(_detail(owner)), "event")
    [attempt] = outcome.attempts
    assert attempt.error == "refused: hooks.rebind.example resolves to 10.0.0.1, a private address"
    assert attempt.status_code is None and attempt.address is None
    assert outcome.state == "pending" and outcome.next_attempt_at is not None
    logged = notifier.repository.page(owner, hook.id, 0, 10).deliveries
    assert [d.attempts[0].error for d in logged] == [attempt.error]


def test_retries_follow_the_schedule_then_give_up(database_url):
    notifier, clock = _notifier(database_url, webhook_retry_delays=[5, 60])
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    with Receiver(answer(503, b"busy")) as receiver:
        hook = WebhookService(notifier).register(owner, {"url": receiver.url})
        [first] = notifier.attempt_all(notifier.record_event(_detail(owner)), "event")
        assert first.state == "pending"
        assert 4.25 <= (first.next_attempt_at - clock.now).total_seconds() <= 5.75
        assert notifier.run_due_retries().attempted == 0  # not due yet
        clock.advance(seconds=6)
        assert notifier.run_due_retries().model_dump() == {"attempted": 1, "delivered": 0, "failed": 1}
        second = notifier.repository.delivery(first.id)
        assert 51 <= (second.next_attempt_at - clock.now).total_seconds() <= 69
        clock.advance(seconds=70)
        notifier.run_due_retries()
        final = notifier.repository.delivery(first.id)
        assert final.state == "failed" and final.next_attempt_at is None
        assert [(a.trigger, a.status_code, a.response_excerpt) for a in final.attempts] == [
            ("event", 503, "busy"),
            ("schedule", 503, "busy"),
            ("schedule", 503, "busy"),
        ]
        assert len({request.headers["webhook-id"] for request in receiver.received}) == 1
        # a failing hook's next event waits for the schedule instead of holding the event path
        assert notifier.record_event(_detail(owner)) == []
        waiting = [d for d in notifier.repository.page(owner, hook.id, 0, 10).deliveries if not d.attempts]
        assert len(waiting) == 1 and waiting[0].next_attempt_at == clock.now
        receiver.behaviour = answer(200)
        assert notifier.run_due_retries().delivered == 1
        assert notifier.repository.get(owner, hook.id).failing_since is None


def test_a_hook_failing_for_the_whole_bound_is_disabled_and_a_good_ping_enables_it(database_url):
    notifier, clock = _notifier(database_url, webhook_disable_after_seconds=3600)
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    service = WebhookService(notifier)
    with Receiver(answer(500)) as receiver:
        hook = service.register(owner, {"url": receiver.url})
        notifier.attempt_all(notifier.record_event(_detail(owner)), "event")
        clock.advance(minutes=30)
        notifier.run_due_retries()
        assert notifier.repository.get(owner, hook.id).enabled
        clock.advance(minutes=31)
        notifier.run_due_retries()
        disabled = service.list(owner).root[0]
        assert not disabled.enabled and disabled.failing_since is not None
        assert "every delivery attempt failed since" in disabled.disabled_reason and "HTTP 500" in disabled.disabled_reason
        page = service.deliveries(owner, hook.id, DeliveryListQuery())
        assert {d.state for d in page.deliveries} == {"failed"}
        assert notifier.record_event(_detail(owner)) == []  # a disabled hook gets no new deliveries
        assert service.deliveries(owner, hook.id, DeliveryListQuery()).total == page.total
        receiver.behaviour = answer(200)
        assert service.ping(owner, hook.id).state == "delivered"
        enabled = service.list(owner).root[0]
        assert enabled.enabled and enabled.disabled_reason is None and enabled.failing_since is None


def test_redelivery_sends_the_same_bytes_with_the_same_id(database_url):
    notifier, clock = _notifier(database_url)
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    service = WebhookService(notifier)
    with Receiver() as receiver:
        hook = service.register(owner, {"url": receiver.url, "secret": SECRET})
        [delivered] = notifier.attempt_all(notifier.record_event(_detail(owner)), "event")
        clock.advance(seconds=1)
        again = service.redeliver(owner, hook.id, delivered.id)
        assert again.state == "delivered" and [a.trigger for a in again.attempts] == ["event", "redeliver"]
        first, second = receiver.wait_for(2)
        assert first.body == second.body and first.headers["webhook-id"] == second.headers["webhook-id"] == delivered.id
        assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]

"""Webhooks as Svix users expect: secret rotation with an overlap, 410 Gone, Retry-After, and
redelivering what failed (through the test client, and against Postgres with a clock)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared.webhooks.models import DeliveryListQuery
from shared.webhooks.service import WebhookService
from shared.webhooks.signing import standard_webhooks_secret
from tests.functional.webhook_notifiers import SECRET, _detail, _notifier
from tests.webhook_receiver import Receiver, answer, seed_verify_signature, standard_webhooks_verify


def _signatures(request) -> list[str]:
    return request.headers["webhook-signature"].split(" ")


def test_rotating_a_secret_signs_with_both_during_the_overlap(hooks, receiver):
    hook = hooks.post("/api/v1/webhooks", json={"url": receiver.url, "secret": SECRET}).get_json()
    assert hook["previous_secret_expires_at"] is None
    rotated = hooks.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", json={"secret": "the-new-one", "overlap_seconds": 3600})
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    body = rotated.get_json()
    assert body["secret"] is None and body["has_secret"] and "the-new-one" not in rotated.get_data(as_text=True)
    expires = datetime.fromisoformat(body["previous_secret_expires_at"])
    assert 3590 <= (expires - datetime.now(UTC)).total_seconds() <= 3600
    assert hooks.get("/api/v1/webhooks").get_json()[0]["previous_secret_expires_at"] == body["previous_secret_expires_at"]

    assert hooks.post(f"/api/v1/webhooks/{hook['id']}/ping").get_json()["state"] == "delivered"
    [request] = receiver.wait_for(1)
    assert len(_signatures(request)) == 2
    now = int(request.headers["webhook-timestamp"])
    for secret in ("the-new-one", SECRET):  # a receiver that has switched, and one that has not yet
        assert standard_webhooks_verify(standard_webhooks_secret(secret), request.headers, request.body, now=now)
    assert seed_verify_signature(request.body, "the-new-one", request.headers["x-webhook-signature"])

    made = hooks.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret")  # no body: the server makes one, shown once
    assert made.status_code == 200
    generated = made.get_json()["secret"]
    assert len(generated) >= 32 and generated not in hooks.get("/api/v1/webhooks").get_data(as_text=True)
    expires = datetime.fromisoformat(made.get_json()["previous_secret_expires_at"])
    assert 86390 <= (expires - datetime.now(UTC)).total_seconds() <= 86400  # 24 h by default
    hooks.post(f"/api/v1/webhooks/{hook['id']}/ping")
    second = receiver.wait_for(2)[1]
    for secret, verifies in ((generated, True), ("the-new-one", True), (SECRET, False)):  # two secrets at most
        assert (
            standard_webhooks_verify(
                standard_webhooks_secret(secret), second.headers, second.body, now=int(second.headers["webhook-timestamp"])
            )
            is verifies
        )

    at_once = hooks.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", json={"secret": "alone", "overlap_seconds": 0})
    assert at_once.get_json()["previous_secret_expires_at"] is None
    hooks.post(f"/api/v1/webhooks/{hook['id']}/ping")
    third = receiver.wait_for(3)[2]
    assert len(_signatures(third)) == 1
    assert standard_webhooks_verify(
        standard_webhooks_secret("alone"), third.headers, third.body, now=int(third.headers["webhook-timestamp"])
    )


@pytest.mark.parametrize(
    ("body", "status", "loc"),
    [
        ({"overlap_seconds": -1}, 422, ["body", "overlap_seconds"]),
        ({"overlap_seconds": 8 * 86400}, 422, ["body", "overlap_seconds"]),
        ({"secret": ""}, 422, ["body", "secret"]),
        ({"secret": "a\u0000b"}, 422, ["body", "secret"]),
        ({"secret": "x", "rotate": True}, 422, ["body", "rotate"]),
        ([], 400, None),
    ],
)
def test_bad_rotations_are_refused(hooks, receiver, body, status, loc):
    hook = hooks.post("/api/v1/webhooks", json={"url": receiver.url, "secret": SECRET}).get_json()
    response = hooks.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    if loc:
        assert [problem["loc"] for problem in response.get_json()["detail"]] == [loc]
    assert hooks.post("/api/v1/webhooks/wh_" + "0" * 24 + "/rotate-secret", json={}).status_code == 404


def test_a_secret_rotated_on_a_hook_without_one_has_nothing_to_overlap(database_url):
    notifier, _clock = _notifier(database_url)
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    service = WebhookService(notifier)
    with Receiver() as receiver:
        hook = service.register(owner, {"url": receiver.url})
        rotated = service.rotate_secret(owner, hook.id, {"secret": SECRET})
        assert rotated.has_secret and rotated.previous_secret_expires_at is None
        service.ping(owner, hook.id)
        [request] = receiver.wait_for(1)
        assert len(_signatures(request)) == 1 and seed_verify_signature(request.body, SECRET, request.headers["x-webhook-signature"])


def test_the_previous_secret_stops_signing_when_the_overlap_ends(database_url):
    notifier, clock = _notifier(database_url)
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    service = WebhookService(notifier)
    with Receiver() as receiver:
        hook = service.register(owner, {"url": receiver.url, "secret": SECRET})
        service.rotate_secret(owner, hook.id, {"secret": "next", "overlap_seconds": 600})
        clock.advance(seconds=599)
        service.ping(owner, hook.id)
        clock.advance(seconds=1)
        service.ping(owner, hook.id)
        during, after = receiver.wait_for(2)
        assert len(_signatures(during)) == 2 and len(_signatures(after)) == 1
        assert standard_webhooks_verify(
            standard_webhooks_secret("next"), after.headers, after.body, now=int(after.headers["webhook-timestamp"])
        )


def test_410_gone_disables_the_hook_at_once_and_a_good_ping_enables_it(database_url):
    notifier, clock = _notifier(database_url)
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    service = WebhookService(notifier)
    with Receiver(answer(503)) as receiver:
        hook = service.register(owner, {"url": receiver.url})
        [waiting] = notifier.attempt_all(notifier.record_event(_detail(owner)), "event")
        assert waiting.state == "pending"
        receiver.behaviour = answer(410, b"gone")
        clock.advance(seconds=10)
        assert notifier.run_due_retries().model_dump() == {"attempted": 1, "delivered": 0, "failed": 1}
        gone = service.list(owner).root[0]
        assert not gone.enabled and "410 Gone" in gone.disabled_reason
        delivery = notifier.repository.delivery(waiting.id)
        assert delivery.state == "failed" and delivery.next_attempt_at is None
        assert [(a.trigger, a.status_code) for a in delivery.attempts] == [("event", 503), ("schedule", 410)]
        assert notifier.record_event(_detail(owner)) == []  # a disabled hook gets no new deliveries
        receiver.behaviour = answer(200)
        assert service.ping(owner, hook.id).state == "delivered"
        assert service.list(owner).root[0].enabled and service.list(owner).root[0].disabled_reason is None


def test_a_429_or_503_retry_after_sets_the_next_attempt_bounded_by_the_schedule(database_url):
    notifier, clock = _notifier(database_url, webhook_retry_delays=[5, 600, 3600])
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    service = WebhookService(notifier)
    with Receiver(answer(429, headers=(("Retry-After", "120"),))) as receiver:
        service.register(owner, {"url": receiver.url})
        [first] = notifier.attempt_all(notifier.record_event(_detail(owner)), "event")
        assert first.state == "pending" and first.next_attempt_at == clock.now + timedelta(seconds=120)  # not 5 s
        clock.advance(seconds=120)
        in_ten_minutes = format_datetime(datetime.fromtimestamp(time.time() + 600, UTC), usegmt=True)
        receiver.behaviour = answer(503, headers=(("Retry-After", in_ten_minutes),))
        notifier.run_due_retries()
        second = notifier.repository.delivery(first.id)
        assert 598 <= (second.next_attempt_at - clock.now).total_seconds() <= 600  # an HTTP date, from the answer
        clock.advance(seconds=600)
        receiver.behaviour = answer(503, headers=(("Retry-After", str(30 * 86400)),))
        notifier.run_due_retries()
        third = notifier.repository.delivery(first.id)
        assert third.next_attempt_at == clock.now + timedelta(seconds=3600)  # at most the longest delay
        clock.advance(seconds=3600)
        notifier.run_due_retries()  # the schedule's last attempt: Retry-After adds none
        assert notifier.repository.delivery(first.id).state == "failed"
        assert [a.status_code for a in notifier.repository.delivery(first.id).attempts] == [429, 503, 503, 503]


def test_every_failed_delivery_since_a_time_is_queued_again_in_one_call(database_url):
    notifier, clock = _notifier(database_url, webhook_retry_delays=[5], webhook_disable_after_seconds=2 * 3600)
    owner = f"wh-{uuid.uuid4().hex[:12]}"
    service = WebhookService(notifier)
    with Receiver(answer(500)) as receiver:
        hook = service.register(owner, {"url": receiver.url})
        for _ in range(3):  # three events an hour apart, each failing both its attempts
            notifier.attempt_all(notifier.record_event(_detail(owner)), "event")
            for _round in range(2):
                clock.advance(seconds=10)
                notifier.run_due_retries()
            clock.advance(minutes=60)
        page = service.deliveries(owner, hook.id, DeliveryListQuery())
        assert {d.state for d in page.deliveries} == {"failed"} and page.total == 3
        assert not service.list(owner).root[0].enabled  # failing for two hours: disabled
        service.ping(owner, hook.id)  # a failed ping is not an event: never queued again
        oldest = min(page.deliveries, key=lambda d: d.created_at)
        since = (oldest.created_at + timedelta(seconds=1)).isoformat()

        queued = service.redeliver_failed(owner, hook.id, {"since": since})
        assert queued.queued == 2 and queued.since == oldest.created_at + timedelta(seconds=1)
        assert service.list(owner).root[0].enabled  # enabled again, to send them
        receiver.behaviour = answer(200)
        assert notifier.run_due_retries().model_dump() == {"attempted": 2, "delivered": 2, "failed": 0}
        states = {d.id: d.state for d in service.deliveries(owner, hook.id, DeliveryListQuery()).deliveries if d.event != "ping"}
        assert states[oldest.id] == "failed" and sorted(states.values()) == ["delivered", "delivered", "failed"]
        assert len({r.headers["webhook-id"] for r in receiver.received[-2:]}) == 2
        assert service.redeliver_failed(owner, hook.id, {"since": since}).queued == 0  # nothing failed since


def test_redeliver_failed_answers_how_many_were_queued(hooks, receiver):
    hook = hooks.post("/api/v1/webhooks", json={"url": receiver.url}).get_json()
    path = f"/api/v1/webhooks/{hook['id']}/redeliver-failed"
    response = hooks.post(path, json={"since": "2024-01-15T10:30:00Z"})
    assert (response.status_code, response.get_json()) == (202, {"queued": 0, "since": "2024-01-15T10:30:00Z"})
    naive = hooks.post(path, json={"since": "2024-01-15T10:30:00"})  # no zone: UTC
    assert naive.status_code == 202 and naive.get_json()["since"] == "2024-01-15T10:30:00Z"
    for body, loc in (
        ({}, ["body", "since"]),
        ({"since": "yesterday"}, ["body", "since"]),
        ({"since": "2024-01-15T10:30:00Z", "all": True}, ["body", "all"]),
    ):
        refused = hooks.post(path, json=body)
        assert refused.status_code == 422 and [p["loc"] for p in refused.get_json()["detail"]] == [loc]
    assert hooks.post(path, data=b"[]", content_type="application/json").status_code == 400
    assert hooks.post("/api/v1/webhooks/wh_" + "0" * 24 + "/redeliver-failed", json={"since": "2024-01-15T10:30:00Z"}).status_code == 404

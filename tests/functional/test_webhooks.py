"""The webhooks and notifier functions through the test client, and the delivery rules against
Postgres (a clock far in the future keeps the platform's own notifier off these deliveries)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.platform.errors import Busy, LeaseLost
from shared.webhooks.delivery import AttemptResult
from shared.webhooks.models import DeliveryListQuery, TaskFinishedDetail
from shared.webhooks.notifier import Notifier
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.service import WebhookService
from shared.webhooks.settings import WebhookSettings
from tests.conftest import act_as, load_event
from tests.webhook_receiver import Receiver, answer, seed_verify_signature, standard_webhooks_verify

LOOPBACK = '["127.0.0.0/8"]'
SECRET = "topsecret-6f1b2c"


def owned(client, owner: str | None = None):
    """The client, as a new owner (hooks of one test never get another test's events)."""
    return act_as(client, owner or f"wh-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def hooks(function_client):
    return owned(function_client("webhooks", VISIONFN_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK, VISIONFN_WEBHOOK_MAX_PER_OWNER="3"))


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def test_register_list_delete_and_the_secret_is_never_returned(hooks, receiver):
    created = hooks.post("/api/v1/webhooks", json={"url": receiver.url + "/callback", "secret": SECRET})
    assert created.status_code == 201, created.get_data(as_text=True)
    hook = created.get_json()
    assert re.fullmatch(r"wh_[0-9a-f]{24}", hook["id"])
    assert hook["url"] == receiver.url + "/callback" and hook["created_at"]
    assert hook["events"] == ["task.done", "task.error"] and hook["has_secret"] and hook["enabled"]
    listed = hooks.get("/api/v1/webhooks")
    assert listed.get_json() == [hook]
    deliveries = hooks.get(f"/api/v1/webhooks/{hook['id']}/deliveries")
    assert deliveries.get_json() == {"total": 0, "deliveries": []}
    for response in (created, listed, deliveries):
        assert SECRET not in response.get_data(as_text=True)
    deleted = hooks.delete(f"/api/v1/webhooks/{hook['id']}")
    assert (deleted.status_code, deleted.get_data()) == (204, b"")
    assert hooks.get("/api/v1/webhooks").get_json() == []
    again = hooks.delete(f"/api/v1/webhooks/{hook['id']}")
    assert (again.status_code, again.get_json()) == (404, {"detail": "Webhook not found"})


def test_another_owners_hook_is_not_found(hooks, function_client, receiver):
    hook = hooks.post("/api/v1/webhooks", json={"url": receiver.url, "description": "mine"}).get_json()
    assert hook["has_secret"] is False and hook["description"] == "mine"
    other = owned(function_client("webhooks", VISIONFN_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK))
    assert other.get("/api/v1/webhooks").get_json() == []
    base = f"/api/v1/webhooks/{hook['id']}"
    for response in (other.delete(base), other.get(base + "/deliveries"), other.post(base + "/ping"),
                     other.post(base + "/deliveries/msg_" + "0" * 32 + "/redeliver")):
        assert (response.status_code, response.get_json()) == (404, {"detail": "Webhook not found"})
    assert receiver.received == []
    assert [h["id"] for h in hooks.get("/api/v1/webhooks").get_json()] == [hook["id"]]


@pytest.mark.parametrize(("body", "loc", "kind"), [
    ({}, ["body", "url"], "missing"),
    ({"url": "ftp://example.com/hook"}, ["body", "url"], "value_error"),
    ({"url": "https://user:pw@example.com/"}, ["body", "url"], "value_error"),
    ({"url": 42}, ["body", "url"], "string_type"),
    ({"url": "https://example.com", "secret": ""}, ["body", "secret"], "string_too_short"),
    ({"url": "https://example.com", "secret": "a\u0000b"}, ["body", "secret"], "value_error"),
    ({"url": "https://example.com", "events": ["task.started"]}, ["body", "events", 0], "literal_error"),
    ({"url": "https://example.com", "events": []}, ["body", "events"], "too_short"),
    ({"url": "https://example.com", "active": True}, ["body", "active"], "extra_forbidden"),
    ({"url": "https://example.com", "description": "x" * 300}, ["body", "description"], "string_too_long"),
])
def test_bad_bodies_are_422_in_pydantic_shape(hooks, body, loc, kind):
    response = hooks.post("/api/v1/webhooks", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    [problem] = response.get_json()["detail"]
    assert (problem["loc"], problem["type"]) == (loc, kind)


@pytest.mark.parametrize("data", [b"[]", b"not json", b'"https://example.com"'])
def test_a_body_that_is_not_a_json_object_is_400(hooks, data):
    response = hooks.post("/api/v1/webhooks", data=data, content_type="application/json")
    assert response.status_code == 400 and isinstance(response.get_json()["detail"], str)


@pytest.mark.parametrize(("url", "reason"), [
    ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "the cloud metadata service"),
    ("http://[fd00:ec2::254]/", "the cloud metadata service"),
    ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a loopback address"),
    ("http://0177.0.0.1/", "0177.0.0.1 resolves to 127.0.0.1, a loopback address"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://100.64.1.1/", "carrier-grade NAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://name.invalid/", "does not resolve"),
])
def test_hostile_urls_are_refused_at_registration(function_client, url, reason):
    client = owned(function_client("webhooks"))  # no network allowed beyond the public ones
    response = client.post("/api/v1/webhooks", json={"url": url})
    assert response.status_code == 422
    [problem] = response.get_json()["detail"]
    assert problem["type"] == "url_refused" and problem["loc"] == ["body", "url"] and reason in problem["msg"]
    assert client.get("/api/v1/webhooks").get_json() == []


def test_an_owner_has_a_bounded_number_of_hooks(hooks, receiver):
    for _ in range(3):
        assert hooks.post("/api/v1/webhooks", json={"url": receiver.url}).status_code == 201
    refused = hooks.post("/api/v1/webhooks", json={"url": receiver.url})
    assert refused.status_code == 400 and "at most 3 webhooks" in refused.get_json()["detail"]


def test_unknown_ids_and_bad_queries(hooks, receiver):
    hook = hooks.post("/api/v1/webhooks", json={"url": receiver.url}).get_json()
    for path in ("/api/v1/webhooks/wh_nope", "/api/v1/webhooks/%00", "/api/v1/webhooks/" + "x" * 5000):
        assert hooks.delete(path).status_code == 404
    missing = hooks.post(f"/api/v1/webhooks/{hook['id']}/deliveries/msg_{'0' * 32}/redeliver")
    assert (missing.status_code, missing.get_json()) == (404, {"detail": "Delivery not found"})
    assert hooks.post(f"/api/v1/webhooks/{hook['id']}/deliveries/%00/redeliver").status_code == 404
    invalid = hooks.get(f"/api/v1/webhooks/{hook['id']}/deliveries?limit=0&offset=-1")
    assert invalid.status_code == 422
    assert sorted(tuple(item["loc"]) for item in invalid.get_json()["detail"]) == [("query", "limit"), ("query", "offset")]


def test_ping_is_signed_and_logged(hooks, receiver):
    hook = hooks.post("/api/v1/webhooks", json={"url": receiver.url + "/p", "secret": SECRET}).get_json()
    ping = hooks.post(f"/api/v1/webhooks/{hook['id']}/ping")
    assert ping.status_code == 200
    delivery = ping.get_json()
    assert delivery["event"] == "ping" and delivery["state"] == "delivered"
    assert delivery["attempts"][0]["status_code"] == 200 and delivery["attempts"][0]["trigger"] == "ping"
    [request] = receiver.received
    assert json.loads(request.body)["webhook_id"] == hook["id"]
    assert request.headers["x-webhook-event"] == "ping" and request.headers["webhook-id"] == delivery["id"]
    assert seed_verify_signature(request.body, SECRET, request.headers["x-webhook-signature"])
    assert hooks.get(f"/api/v1/webhooks/{hook['id']}/deliveries").get_json()["deliveries"] == [delivery]


def _task_event(owner: str, status: str = "done") -> dict:
    batch = load_event("sqs_task_finished")
    record = batch["Records"][0]
    body = json.loads(record["body"])
    body["detail"].update(owner=owner, uid=uuid.uuid4().hex, status=status)
    record["body"] = json.dumps(body)
    return batch


def test_the_notifier_delivers_an_event_once_per_hook_signed_both_ways(hooks, function_client, receiver):
    owner = hooks.owner
    hook = hooks.post("/api/v1/webhooks", json={"url": receiver.url + "/all", "secret": SECRET}).get_json()
    errors_only = hooks.post("/api/v1/webhooks", json={"url": receiver.url + "/errors", "events": ["task.error"]}).get_json()
    notifier = function_client("notifier", VISIONFN_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK)
    batch = _task_event(owner)
    for _ in range(2):  # at least once: the second delivery of the same event sends nothing more
        response = notifier.post("/events", json=batch)
        assert (response.status_code, response.get_json()) == (200, {"batchItemFailures": []})
    [request] = receiver.received
    detail = json.loads(batch["Records"][0]["body"])["detail"]
    assert request.path == "/all"
    assert json.loads(request.body) == {key: detail[key] for key in
                                        ("uid", "status", "tool", "result_files", "result_data", "error")}
    assert seed_verify_signature(request.body, SECRET, request.headers["x-webhook-signature"])
    now = int(request.headers["webhook-timestamp"])
    whsec = "whsec_" + base64.b64encode(SECRET.encode()).decode()  # as the README tells receivers
    assert standard_webhooks_verify(whsec, request.headers, request.body, now=now)
    log = hooks.get(f"/api/v1/webhooks/{hook['id']}/deliveries").get_json()
    assert log["total"] == 1 and log["deliveries"][0]["id"] == request.headers["webhook-id"]
    assert log["deliveries"][0]["task_uid"] == detail["uid"] and log["deliveries"][0]["state"] == "delivered"
    assert hooks.get(f"/api/v1/webhooks/{errors_only['id']}/deliveries").get_json()["total"] == 0


def test_the_notifier_drops_what_is_not_a_task_finished_event(function_client):
    notifier = function_client("notifier")
    batch = load_event("sqs_task_finished")
    batch["Records"][0]["body"] = '{"detail-type": "Something Else", "source": "visionfn", "detail": {}}'
    assert notifier.post("/events", json=batch).get_json() == {"batchItemFailures": []}
    assert notifier.post("/events", json={"Records": [{"body": "x"}]}).status_code == 422
    scheduled = notifier.post("/events", json={"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
    assert scheduled.status_code == 200 and set(scheduled.get_json()) == {"attempted", "delivered", "failed"}


# --- the rules, with a clock ---------------------------------------------------------------------

class Clock:
    """Far ahead of the platform's own notifier (which must not take these deliveries), and each
    test's before the previous one's: what an earlier test left pending is never due here."""

    epochs = iter(range(2900, 2100, -10))

    def __init__(self) -> None:
        self.now = datetime(next(Clock.epochs), 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _notifier(database_url, resolver=None, **settings) -> tuple[Notifier, Clock]:
    clock = Clock()
    config = WebhookSettings(database_url=database_url, webhook_allowed_networks=["127.0.0.0/8"], **settings)
    kwargs = {"resolver": resolver} if resolver else {}
    return Notifier(WebhookRepository(database_url, clock), settings=config, clock=clock, **kwargs), clock


def _detail(owner: str, status: str = "done") -> TaskFinishedDetail:
    return TaskFinishedDetail(uid=uuid.uuid4().hex, owner=owner, status=status, tool="template",
                              result_files=[], result_data={"matches_found": 0})


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
            ("event", 503, "busy"), ("schedule", 503, "busy"), ("schedule", 503, "busy")]
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


# --- the lease: one sender at a time, and only its holder records -----------------------------------

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

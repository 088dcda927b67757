"""The webhooks and notifier functions through the test client, and the delivery rules against
Postgres (a clock far in the future keeps the platform's own notifier off these deliveries)."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlsplit

import pytest

from shared.platform.errors import Busy, LeaseLost
from shared.webhooks.delivery import AttemptResult
from shared.webhooks.models import DeliveryListQuery, TaskFinishedDetail
from shared.webhooks.notifier import Notifier
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.service import WebhookService
from shared.webhooks.settings import WebhookSettings
from shared.webhooks.signing import standard_webhooks_secret
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
    for response in (
        other.delete(base),
        other.get(base + "/deliveries"),
        other.post(base + "/ping"),
        other.post(base + "/deliveries/msg_" + "0" * 32 + "/redeliver"),
    ):
        assert (response.status_code, response.get_json()) == (404, {"detail": "Webhook not found"})
    assert receiver.received == []
    assert [h["id"] for h in hooks.get("/api/v1/webhooks").get_json()] == [hook["id"]]


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
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
    ],
)
def test_bad_bodies_are_422_in_pydantic_shape(hooks, body, loc, kind):
    response = hooks.post("/api/v1/webhooks", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    [problem] = response.get_json()["detail"]
    assert (problem["loc"], problem["type"]) == (loc, kind)


@pytest.mark.parametrize("data", [b"[]", b"not json", b'"https://example.com"'])
def test_a_body_that_is_not_a_json_object_is_400(hooks, data):
    response = hooks.post("/api/v1/webhooks", data=data, content_type="application/json")
    assert response.status_code == 400 and isinstance(response.get_json()["detail"], str)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
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
    ],
)
def test_hostile_urls_are_refused_at_registration(function_client, url, reason):
    client = owned(function_client("webhooks", VISIONFN_STAGE="cloud"))  # no network allowed beyond the public ones
    response = client.post("/api/v1/webhooks", json={"url": url})
    assert response.status_code == 422
    [problem] = response.get_json()["detail"]
    assert problem["type"] == "url_refused" and problem["loc"] == ["body", "url"] and reason in problem["msg"]
    assert client.get("/api/v1/webhooks").get_json() == []


@pytest.fixture
def local_hooks(function_client, platform):
    """The webhooks function as the runner starts it on the test platform: the local stage, no
    allowed networks, the platform's ports in its environment."""
    state = platform.state
    base = min(int(urlsplit(url).port) for url in state["functions"].values())
    return owned(
        function_client(
            "webhooks",
            VISIONFN_STAGE="local",
            VISIONFN_LOCALSTACK_PORT=str(urlsplit(state["localstack_url"]).port),
            VISIONFN_GATEWAY_PORT=str(urlsplit(state["gateway_url"]).port),
            VISIONFN_FUNCTION_BASE_PORT=str(base),
        )
    )


def test_on_the_local_stack_a_receiver_on_this_machine_needs_no_setting(local_hooks, receiver):
    for url in (
        receiver.url + "/a",
        receiver.url.replace("127.0.0.1", "localhost") + "/b",
        receiver.url.replace("127.0.0.1", "2130706433") + "/c",
    ):
        created = local_hooks.post("/api/v1/webhooks", json={"url": url})
        assert created.status_code == 201, created.get_data(as_text=True)
    hook = local_hooks.get("/api/v1/webhooks").get_json()[0]
    assert local_hooks.post(f"/api/v1/webhooks/{hook['id']}/ping").get_json()["state"] == "delivered"
    assert receiver.wait_for(1)[0].path == "/a"


def test_on_the_local_stack_the_platforms_own_services_are_422_in_every_written_form(local_hooks, platform, database_url):
    ports = {
        "LocalStack": urlsplit(platform.state["localstack_url"]).port,
        "gateway": urlsplit(platform.state["gateway_url"]).port,
        "database": urlsplit(database_url.replace("+psycopg", "")).port or 5432,
    }
    ports.update((f"function {name}", urlsplit(url).port) for name, url in platform.state["functions"].items())
    for what, port in ports.items():
        for host in (
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0177.1",
            "127.1",
            "[::ffff:127.0.0.1]",
            "１２７.０.０.１",
            "localhost",
            "[::1]",
            "0.0.0.0",
            "[64:ff9b::127.0.0.1]",
            "[2002:7f00:1::]",
        ):
            url = f"http://{host}:{port}/?Action=ListQueues"
            response = local_hooks.post("/api/v1/webhooks", json={"url": url})
            assert response.status_code == 422, (what, url, response.get_data(as_text=True))
            [problem] = response.get_json()["detail"]
            assert problem["type"] == "url_refused" and problem["loc"] == ["body", "url"] and problem["input"] == url
            assert f"(port {port})" in problem["msg"] or "inside" in problem["msg"], (what, url, problem["msg"])
    assert local_hooks.get("/api/v1/webhooks").get_json() == []


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
    assert json.loads(request.body) == {key: detail[key] for key in ("uid", "status", "tool", "result_files", "result_data", "error")}
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
    return TaskFinishedDetail(
        uid=uuid.uuid4().hex, owner=owner, status=status, tool="template", result_files=[], result_data={"matches_found": 0}
    )


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


# --- as Svix users expect: secret rotation, 410 Gone, Retry-After, redelivering what failed --------


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

"""The webhooks and notifier functions through the test client: registering, listing and deleting
hooks, bodies and URLs refused, the local stack's rules, limits, unknown ids, a ping, and the
notifier delivering a task-finished event."""

from __future__ import annotations

import base64
import json
import re
import uuid
from urllib.parse import urlsplit

import pytest

from tests.conftest import load_event
from tests.functional.webhook_notifiers import LOOPBACK, SECRET, owned
from tests.webhook_receiver import seed_verify_signature, standard_webhooks_verify


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

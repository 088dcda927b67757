"""Webhooks on the real stack: a finished task -> bus -> rule -> queue -> bridge -> notifier ->
a receiver on 127.0.0.1 (the local stack allows loopback receivers without any setting; the
platform's own services, never)."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from shared.platform.keys import ApiKeys
from shared.webhooks.models import WebhookCreate
from shared.webhooks.repository import WebhookRepository
from tests.conftest import localstack_client, shared_data
from tests.integration.conftest import wait_for
from tests.webhook_receiver import Receiver, answer, seed_verify_signature, standard_webhooks_verify

MESSI = "matching/opencv_samples/messi5.jpg"
SECRET = "my-secret-key"


@dataclass
class Owner:
    """A new owner of its own (no other test's hooks or tasks), talking to the gateway."""

    name: str
    http: requests.Session
    gateway: str

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.http.post(self.gateway + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.gateway + path, timeout=30, **kwargs)

    def register(self, url: str, **fields) -> dict:
        response = self.post("/api/v1/webhooks", json={"url": url, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def deliveries(self, hook: dict) -> list[dict]:
        return self.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]

    def submit_task(self) -> str:
        """A quick template match; its uid."""
        messi = shared_data(MESSI)
        buffer = io.BytesIO()
        Image.open(io.BytesIO(messi)).crop((200, 50, 260, 110)).save(buffer, format="PNG")
        response = self.post("/api/v1/match/template", files={"image": ("messi5.jpg", messi), "template": ("ball.png", buffer.getvalue())})
        assert response.status_code == 201, response.text
        return response.json()["uid"]


@pytest.fixture
def owner(platform, database_url) -> Owner:
    name = f"wh-{uuid.uuid4().hex[:10]}"
    _record, key = ApiKeys(database_url).create(name, "webhook tests")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return Owner(name, session, platform.gateway)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_finished_task_is_delivered_signed_both_ways_logged_and_redelivered(owner):
    with Receiver() as receiver:
        hook = owner.register(receiver.url + "/callback", secret=SECRET)
        uid = owner.submit_task()
        [request] = receiver.wait_for(1)
        task = owner.get(f"/api/v1/tasks/{uid}").json()
        assert task["status"] == "done"
        payload = json.loads(request.body)
        assert payload == {
            "uid": uid,
            "status": "done",
            "tool": "template",
            "result_files": task["result_files"],
            "result_data": task["result_data"],
            "error": None,
        }
        assert request.path == "/callback" and request.headers["x-webhook-event"] == "task.done"
        assert seed_verify_signature(request.body, SECRET, request.headers["x-webhook-signature"])
        whsec = "whsec_" + base64.b64encode(SECRET.encode()).decode()
        assert standard_webhooks_verify(whsec, request.headers, request.body, now=int(time.time()))

        [delivery] = wait_for(lambda: [d for d in owner.deliveries(hook) if d["state"] == "delivered"])
        assert delivery["id"] == request.headers["webhook-id"] and delivery["task_uid"] == uid
        assert [(a["trigger"], a["status_code"], a["response_excerpt"]) for a in delivery["attempts"]] == [("event", 200, "ok")]

        redelivered = owner.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver")
        assert redelivered.status_code == 200 and [a["trigger"] for a in redelivered.json()["attempts"]] == ["event", "redeliver"]
        first, again = receiver.wait_for(2)
        assert again.body == first.body and again.headers["webhook-id"] == first.headers["webhook-id"]
        assert seed_verify_signature(again.body, SECRET, again.headers["x-webhook-signature"])

        ping = owner.post(f"/api/v1/webhooks/{hook['id']}/ping").json()
        assert ping["state"] == "delivered" and receiver.wait_for(3)[2].headers["x-webhook-event"] == "ping"
        assert len(owner.deliveries(hook)) == 2
        assert SECRET not in owner.get("/api/v1/webhooks").text


def test_a_receiver_down_then_up_gets_the_event_again_with_the_same_webhook_id(owner):
    port = free_port()
    hook = owner.register(f"http://127.0.0.1:{port}/late", secret=SECRET)
    uid = owner.submit_task()

    def failed_once():
        return [d for d in owner.deliveries(hook) if d["attempts"] and d["state"] == "pending"]

    [pending] = wait_for(failed_once, timeout=60)
    assert pending["task_uid"] == uid and pending["attempts"][0]["error"] == "connection refused"
    listed = owner.get("/api/v1/webhooks").json()[0]
    assert listed["enabled"] and listed["failing_since"]
    with Receiver(port=port) as receiver:  # back up: the retry (5 s after the failure) finds it
        [request] = receiver.wait_for(1, timeout=60)
        assert request.headers["webhook-id"] == pending["id"] and json.loads(request.body)["uid"] == uid
        assert seed_verify_signature(request.body, SECRET, request.headers["x-webhook-signature"])
        [delivered] = wait_for(lambda: [d for d in owner.deliveries(hook) if d["state"] == "delivered"])
        assert [a["trigger"] for a in delivered["attempts"]] == ["event", "schedule"]
        assert owner.get("/api/v1/webhooks").json()[0]["failing_since"] is None


def test_a_receiver_that_hangs_delays_neither_another_receiver_nor_the_next_task(owner):
    release = threading.Event()

    def hang(handler):
        release.wait(60)
        answer(200)(handler)

    with Receiver(hang) as stuck, Receiver() as healthy:
        owner.register(stuck.url + "/stuck")
        owner.register(healthy.url + "/healthy")
        try:
            first = owner.submit_task()
            second = owner.submit_task()
            received = healthy.wait_for(2, timeout=60)
            assert {json.loads(r.body)["uid"] for r in received} == {first, second}
            assert not release.is_set()  # both arrived while the other receiver still held its request
        finally:
            release.set()


def test_hostile_urls_are_refused_at_registration(owner):
    for url in (
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://100.64.0.1/",
        "http://0.0.0.0:8888/",
        "http://224.0.0.1/",
        "http://[fc00::1]/",
        "http://192.168.0.1/",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1/",
    ):
        response = owner.post("/api/v1/webhooks", json={"url": url})
        assert response.status_code == 422, url
        assert response.json()["detail"][0]["loc"] == ["body", "url"]
    assert owner.get("/api/v1/webhooks").json() == []


def test_an_address_that_turned_private_after_registration_is_refused_at_delivery(owner, database_url):
    """As if the name had resolved to a public address when it was registered (the registration
    check is skipped here): the delivery checks the address it would connect to."""
    hook = WebhookRepository(database_url).create(owner.name, WebhookCreate(url="http://10.0.0.1:9/hook"), 20)
    uid = owner.submit_task()
    [delivery] = wait_for(lambda: [d for d in owner.deliveries(hook.model_dump()) if d["attempts"]], timeout=60)
    assert delivery["task_uid"] == uid
    [attempt] = delivery["attempts"]
    assert attempt["error"] == "refused: 10.0.0.1 is a private address" and attempt["address"] is None


def platform_ports(platform, database_url: str) -> dict[str, int]:
    """What listens on this machine for the test platform: LocalStack, the gateway, every function, Postgres."""
    ports = {
        "LocalStack": urlsplit(platform.state["localstack_url"]).port,
        "gateway": urlsplit(platform.state["gateway_url"]).port,
        "database": urlsplit(database_url.replace("+psycopg", "")).port or 5432,
    }
    ports.update((f"function {name}", urlsplit(url).port) for name, url in platform.state["functions"].items())
    return ports


def test_a_receiver_on_this_machine_works_without_any_setting(owner, platform):
    """`make up` as it is: no VISIONFN_WEBHOOK_ALLOWED_NETWORKS (the runner says so when it starts)."""
    assert "VISIONFN_WEBHOOK_ALLOWED_NETWORKS" not in os.environ
    assert "receivers on this machine (127.0.0.1, ::1) allowed" in (platform.run_dir / "runner.log").read_text()
    with Receiver() as receiver:
        hook = owner.register(receiver.url.replace("127.0.0.1", "localhost") + "/local")
        assert owner.post(f"/api/v1/webhooks/{hook['id']}/ping").json()["state"] == "delivered"
        [request] = receiver.wait_for(1)
        assert request.path == "/local" and request.headers["x-webhook-event"] == "ping"


THIS_MACHINE = (
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
    "[::]",
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::]",
)


def test_localstack_the_gateway_the_functions_and_the_database_are_422_in_every_written_form(owner, platform, database_url):
    for what, port in platform_ports(platform, database_url).items():
        for host in THIS_MACHINE:
            url = f"http://{host}:{port}/?Action=ListQueues"
            response = owner.post("/api/v1/webhooks", json={"url": url})
            assert response.status_code == 422, (what, url, response.text)
            [problem] = response.json()["detail"]
            assert (problem["type"], problem["loc"], problem["input"]) == ("url_refused", ["body", "url"], url)
            assert f"(port {port})" in problem["msg"] or "inside" in problem["msg"], (what, url, problem["msg"])
    assert owner.get("/api/v1/webhooks").json() == []


def test_a_hook_that_points_at_localstack_after_registration_is_refused_at_delivery(owner, platform, database_url):
    """As if its name had resolved to a public address when registered and to 127.0.0.1 now (the
    registration check is skipped here): the delivery never reaches LocalStack, so no queue is made."""
    port = urlsplit(platform.state["localstack_url"]).port
    name = f"visionfn-test-ssrf-{uuid.uuid4().hex[:8]}"
    url = f"http://0x7f000001:{port}/?Action=CreateQueue&QueueName={name}"
    hook = WebhookRepository(database_url).create(owner.name, WebhookCreate(url=url), 20)
    owner.submit_task()
    [delivery] = wait_for(lambda: [d for d in owner.deliveries(hook.model_dump()) if d["attempts"]], timeout=60)
    [attempt] = delivery["attempts"]
    assert attempt["error"].startswith(f"refused: 0x7f000001 resolves to 127.0.0.1, the platform's own LocalStack (port {port})")
    assert attempt["address"] is None and attempt["response_excerpt"] == ""
    queues = localstack_client(platform, "sqs").list_queues(QueueNamePrefix=name).get("QueueUrls", [])
    assert queues == []

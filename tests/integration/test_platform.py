"""The real stack as `make up` starts it: gateway -> functions, S3 -> SQS -> bridge -> function."""

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

from infra.settings import REUSE_IDLE_SECONDS, SERVER_KEEPALIVE_SECONDS
from shared.platform.idempotency import ProcessedObjects
from shared.platform.settings import PROJECT_ROOT
from shared.platform.tasks import TaskRepository
from tests.conftest import event_file
from tests.integration.conftest import drained, object_exists, wait_for


def test_health_through_the_gateway(platform):
    response = platform.http.get(f"{platform.gateway}/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["stage"] == "local"
    assert {"visionfn-test-thumbnail", "visionfn-test-thumbnail-dlq"} <= set(body["queues"]["queues"])


def test_tasks_through_the_gateway(platform, database_url):
    uid = TaskRepository(database_url).create("feature", {"detector": "SIFT"}, [], owner="local").uid
    listed = platform.http.get(f"{platform.gateway}/api/v1/tasks", params={"limit": 5}, timeout=10)
    assert listed.status_code == 200 and listed.json()["tasks"][0]["uid"] == uid
    one = platform.http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10)
    assert one.json()["params"] == {"detector": "SIFT"}
    missing = platform.http.get(f"{platform.gateway}/api/v1/tasks/{uuid.uuid4().hex}", timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Task not found"})
    invalid = platform.http.get(f"{platform.gateway}/api/v1/tasks", params={"limit": 0}, timeout=10)
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["query", "limit"]
    unknown = platform.http.get(f"{platform.gateway}/api/v2/nothing", timeout=10)
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "No route for GET /api/v2/nothing"})


def test_upload_produces_a_thumbnail_recorded_on_its_task(platform, database_url, s3, bucket):
    uid = TaskRepository(database_url).create("template", {}, []).uid
    s3.put_object(Bucket=bucket, Key=f"uploads/{uid}/scene photo.jpg", Body=event_file("rotated_exif.jpg"))
    thumbnail = f"thumbnails/{uid}/scene photo.jpg"
    wait_for(lambda: object_exists(s3, bucket, thumbnail))
    wait_for(lambda: TaskRepository(database_url).get(uid).thumbnails == [thumbnail])


def test_not_an_image_is_skipped_with_a_log_line_not_retried(platform, aws, s3, bucket):
    key = f"uploads/{uuid.uuid4().hex}/readme.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"plain text")
    skip_line = f"{key}: The file is not a supported image"
    wait_for(lambda: skip_line in platform.log("thumbnail"))
    wait_for(lambda: drained(aws, "visionfn-test-thumbnail"), timeout=60)  # no delivery of it is left
    assert platform.log("thumbnail").count(skip_line) == 1
    assert not any(key in body for body in _dlq_bodies(aws, "visionfn-test-thumbnail-dlq", wait=1))
    assert not object_exists(s3, bucket, key.replace("uploads/", "thumbnails/", 1))


def _dlq_bodies(aws, name: str, wait: int) -> list[str]:
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, VisibilityTimeout=0)
    return [message["Body"] for message in messages.get("Messages", [])]


def test_failing_once_is_redelivered_and_processed_exactly_once(platform, aws, database_url, s3, bucket):
    key = f"uploads/{uuid.uuid4().hex}/flaky.png"
    s3.put_object(Bucket=bucket, Key=key, Body=event_file("landscape.png"), Metadata={"visionfn-fail-attempts": "1"})
    wait_for(lambda: object_exists(s3, bucket, key.replace("uploads/", "thumbnails/", 1)), timeout=30)
    wait_for(lambda: drained(aws, "visionfn-test-thumbnail"), timeout=60)  # every delivery is over
    [entry] = ProcessedObjects("thumbnail", database_url).entries(key)
    assert (entry.status, entry.receive_count, entry.attempts) == ("done", 2, 2)
    assert platform.log("thumbnail").count(f"thumbnail {key.replace('uploads/', 'thumbnails/', 1)} (") == 1  # made once
    assert f"{key}: injected failure on delivery 1 of 1" in platform.log("thumbnail")


def test_a_function_keeps_an_idle_connection_longer_than_its_clients_do(platform):
    """The gateway and the event bridge reuse a connection to a function only while it has been
    idle for less than REUSE_IDLE_SECONDS; the function's server must not close it sooner, or a
    request sent as it closes is lost (gunicorn's default keep-alive, 2 s, lost bridge deliveries)."""
    assert SERVER_KEEPALIVE_SECONDS > REUSE_IDLE_SECONDS
    address = urlsplit(platform.state["functions"]["health"])
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.request("GET", "/")
    connection.getresponse().read()
    opened = connection.sock
    time.sleep(3)  # idle for longer than gunicorn's default keep-alive
    connection.request("GET", "/")
    answer = connection.getresponse()
    answer.read()
    assert connection.sock is opened and answer.status < 500  # answered on the same connection
    connection.close()


def test_poison_message_ends_in_the_dead_letter_queue(platform, aws, s3, bucket):
    key = f"uploads/{uuid.uuid4().hex}/poison.png"
    s3.put_object(Bucket=bucket, Key=key, Body=event_file("landscape.png"), Metadata={"visionfn-fail-attempts": "99"})
    wait_for(lambda: any(key in body for body in _dlq_bodies(aws, "visionfn-test-thumbnail-dlq", wait=1)), timeout=40)
    assert not object_exists(s3, bucket, key.replace("uploads/", "thumbnails/", 1))
    assert platform.log("thumbnail").count(f"{key}: injected failure on delivery") == 5  # maxReceiveCount


def test_a_second_platform_on_taken_ports_fails_clearly(platform):
    gateway_port = platform.gateway.rsplit(":", 1)[1]
    env = {**os.environ, "VISIONFN_GATEWAY_PORT": gateway_port, "VISIONFN_RUN_DIR": str(platform.run_dir / "second")}
    env["VISIONFN_LOCALSTACK_PORT"] = str(int(gateway_port) + 1000)
    result = subprocess.run(
        [sys.executable, "-m", "infra.runner", "up"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # every line a JSON log record
    assert any(
        f"port {gateway_port} on 127.0.0.1 (wanted by the gateway) is already in use" in line["message"] and line["level"] == "ERROR"
        for line in lines
    )

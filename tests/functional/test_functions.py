"""Each function through the functions-framework test client, against LocalStack and Postgres."""

import copy
import json
import time
import uuid

import pytest

from shared.platform.idempotency import ProcessedObjects
from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.conftest import environment, event_file


def test_health_reports_every_part(function_client):
    response = function_client("health").get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == body["bucket"]["status"] == "ok"
    assert any(name.endswith("-thumbnail-dlq") for name in body["queues"]["queues"])


def test_health_flags_dead_letters_found_through_the_redrive_policies(function_client, aws):
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName="visionfn-test-face-inbox-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    try:
        body = function_client("health").get("/health").get_json()
        assert body["status"] == "ok"  # flagged, not an outage
        assert body["queues"]["dead_letters"]["visionfn-test-face-inbox-dlq"] >= 1
        assert body["queues"]["queues"]["visionfn-test-face-inbox-dlq"]["dead_letter"]
        assert not body["queues"]["queues"]["visionfn-test-face-inbox"]["dead_letter"]
    finally:
        sqs.purge_queue(QueueUrl=url)


def test_health_is_degraded_when_the_database_is_down(function_client):
    client = function_client("health")
    with environment(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none"):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["database"]["status"] == "error" and body["database"]["detail"]
    assert body["bucket"]["status"] == "ok"


def test_tasks_list_get_and_errors(function_client, database_url):
    client = function_client("tasks")
    uid = TaskRepository(database_url).create("template", {"method": "TM_CCOEFF_NORMED"}, [], owner="tester").uid
    listed = client.get("/api/v1/tasks?limit=1").get_json()
    assert listed["tasks"][0]["uid"] == uid and listed["total"] >= 1
    assert client.get(f"/api/v1/tasks/{uid}").get_json()["params"] == {"method": "TM_CCOEFF_NORMED"}
    missing = client.get(f"/api/v1/tasks/{uuid.uuid4().hex}")
    assert (missing.status_code, missing.get_json()) == (404, {"detail": "Task not found"})
    invalid = client.get("/api/v1/tasks?offset=-1&limit=500")
    assert invalid.status_code == 422
    assert sorted(tuple(item["loc"]) for item in invalid.get_json()["detail"]) == [
        ("query", "limit"),
        ("query", "offset"),
    ]
    assert client.post("/api/v1/tasks").status_code == 405


def _batch_for(sqs_s3_batch: dict, key: str, etag: str, receive_count: int = 1) -> dict:
    batch = copy.deepcopy(sqs_s3_batch)
    record = batch["Records"][0]
    notification = json.loads(record["body"])
    notification["Records"][0]["s3"]["object"].update(key=key.replace(" ", "+"), eTag=etag)
    record["body"] = json.dumps(notification)
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return batch


def _upload(key: str, data: bytes, metadata: dict | None = None) -> str:
    store = get_object_store()
    store.put(key, data, metadata=metadata)
    return store.get(key).etag


def _delivered(client, batch: dict) -> dict:
    """Deliver until the object is not held by another delivery: the platform's own thumbnail
    function gets every upload too, and while it holds one the answer is "retry later"."""
    deadline = time.monotonic() + 30
    while (answer := client.post("/events", json=batch)).get_json()["batchItemFailures"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer.status_code == 200
    return answer.get_json()


def test_thumbnail_event_writes_records_and_is_idempotent(function_client, database_url, sqs_s3_batch, caplog, platform):
    uid = TaskRepository(database_url).create("template", {}, []).uid
    key = f"uploads/{uid}/team photo.png"
    etag = _upload(key, event_file("landscape.png"))
    client = function_client("thumbnail")
    batch = _batch_for(sqs_s3_batch, key, etag)
    caplog.set_level("INFO", logger="visionfn.thumbnails")
    for _ in range(2):  # a redelivery of the same object does no second piece of work
        assert _delivered(client, batch) == {"batchItemFailures": []}
    # the work done, counted: one thumbnail made, here or by the platform's own thumbnail
    # function (the upload's notification reaches it too; whichever takes the object does it)
    made_here = [record for record in caplog.records if record.getMessage().startswith(f"thumbnail thumbnails/{uid}/")]
    assert len(made_here) + platform.log("thumbnail").count(f"thumbnail thumbnails/{uid}/") == 1
    assert get_object_store().exists(f"thumbnails/{uid}/team photo.png")
    assert TaskRepository(database_url).get(uid).thumbnails == [f"thumbnails/{uid}/team photo.png"]
    [entry] = ProcessedObjects("thumbnail", database_url).entries(key)
    assert (entry.status, entry.attempts, entry.output_key) == ("done", 1, f"thumbnails/{uid}/team photo.png")


def test_thumbnail_event_skips_non_images_and_reports_retryable_failures(function_client, sqs_s3_batch, database_url):
    client = function_client("thumbnail")
    text_key = f"uploads/{uuid.uuid4().hex}/notes.txt"
    assert _delivered(client, _batch_for(sqs_s3_batch, text_key, _upload(text_key, b"hello"))) == {"batchItemFailures": []}
    assert not get_object_store().exists(text_key.replace("uploads/", "thumbnails/", 1))
    [dropped] = ProcessedObjects("thumbnail", database_url).entries(text_key)
    assert dropped.status == "error" and "not a supported image" in dropped.error

    flaky_key = f"uploads/{uuid.uuid4().hex}/flaky.png"
    etag = _upload(flaky_key, event_file("landscape.png"), {"visionfn-fail-attempts": "1"})
    first = client.post("/events", json=_batch_for(sqs_s3_batch, flaky_key, etag, receive_count=1))
    assert first.get_json() == {"batchItemFailures": [{"itemIdentifier": sqs_s3_batch["Records"][0]["messageId"]}]}
    # the platform's own thumbnail function gets this upload too; while it holds the object
    # version the redelivery is told to come back later, then finds it done (or does it)
    assert _delivered(client, _batch_for(sqs_s3_batch, flaky_key, etag, receive_count=2)) == {"batchItemFailures": []}
    [entry] = ProcessedObjects("thumbnail", database_url).entries(flaky_key)
    assert entry.status == "done"

    gone_key = f"uploads/{uuid.uuid4().hex}/deleted.png"
    assert client.post("/events", json=_batch_for(sqs_s3_batch, gone_key, "x")).get_json() == {"batchItemFailures": []}


@pytest.mark.parametrize("body", [b"not json", b'{"Records": [{"body": "x"}]}'])
def test_thumbnail_event_rejects_malformed_batches(function_client, body):
    response = function_client("thumbnail").post("/events", data=body, content_type="application/json")
    assert response.status_code in (400, 422)
    assert "detail" in response.get_json()


def test_storage_round_trip(platform_env):
    from shared.platform.errors import ObjectNotFound

    store = get_object_store()
    key = f"results/{uuid.uuid4().hex}/matches.png"
    store.put(key, event_file("landscape.png"), "image/png", metadata={"tool": "template"})
    stored = store.get(key)
    assert (stored.data, stored.content_type, stored.metadata) == (event_file("landscape.png"), "image/png", {"tool": "template"})
    with pytest.raises(ObjectNotFound):
        store.get(f"results/{uuid.uuid4().hex}/none.png")
    assert not store.exists(f"results/{uuid.uuid4().hex}/none.png")

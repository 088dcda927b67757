"""Partial-batch semantics: client errors are dropped, other failures are reported for retry."""

import json

import pytest

from shared.batch import for_each_created_object, process_sqs_batch
from shared.errors import BadRequest, NotAnImage, RequestValidationFailed, ServiceUnavailable
from shared.events import SqsEvent


def _batch(*bodies: str) -> dict:
    return {
        "Records": [
            {"messageId": f"m-{index}", "receiptHandle": f"r-{index}", "body": body, "attributes": {"ApproximateReceiveCount": "2"}}
            for index, body in enumerate(bodies)
        ]
    }


@pytest.mark.parametrize(
    ("raised", "reported"),
    [
        (None, []),
        (NotAnImage("not an image"), []),  # permanent: dropped, not retried forever
        (ServiceUnavailable("db down"), ["m-0"]),
        (RuntimeError("bug"), ["m-0"]),
    ],
)
def test_failures_reported_only_when_a_retry_may_help(raised, reported):
    def handle(_record):
        if raised:
            raise raised

    response = process_sqs_batch(_batch("{}"), handle)
    assert [item.item_identifier for item in response.batch_item_failures] == reported


def test_one_failing_record_does_not_fail_the_others():
    seen = []

    def handle(record):
        seen.append(record.message_id)
        if record.message_id == "m-1":
            raise RuntimeError("boom")

    response = process_sqs_batch(_batch("a", "b", "c"), handle)
    assert seen == ["m-0", "m-1", "m-2"]
    assert [item.item_identifier for item in response.batch_item_failures] == ["m-1"]


def test_malformed_batch_is_a_validation_error():
    with pytest.raises(RequestValidationFailed) as caught:
        process_sqs_batch({"Records": [{"body": "x"}]}, lambda record: None)
    assert caught.value.status == 422
    assert caught.value.detail[0]["loc"][0] == "body"


def test_object_handler_gets_each_object_and_the_receive_count(sqs_s3_batch):
    calls = []
    handle_record = for_each_created_object(lambda obj, count: calls.append((obj.key, count)))
    response = process_sqs_batch(sqs_s3_batch, handle_record)
    assert response.batch_item_failures == []
    assert calls == [("uploads/0123456789abcdef0123456789abcdef/team photo.png", 1)]


@pytest.mark.parametrize("body", ["not json", json.dumps({"Records": [{"x": 1}]})])
def test_body_that_is_not_an_s3_notification_is_a_client_error(body):
    handle_record = for_each_created_object(lambda obj, count: None)
    record = SqsEvent.model_validate(_batch(body)).records[0]
    with pytest.raises(BadRequest):
        handle_record(record)

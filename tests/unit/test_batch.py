"""Partial-batch semantics: each record's outcome is explicit; only RETRY (or a raise) is reported."""

import json
import time

import pytest
from pydantic import TypeAdapter

from shared.platform.batch import (
    LAMBDA_CONTEXT_HEADER,
    Invocation,
    Outcome,
    for_each_created_object,
    process_sqs_batch,
    read_message,
)
from shared.platform.errors import RequestValidationFailed, ServiceUnavailable
from shared.platform.events import SqsEvent

INVOCATION = Invocation(deadline=time.monotonic() + 60, timeout_seconds=60)


def _batch(*bodies: str) -> dict:
    return {
        "Records": [
            {"messageId": f"m-{index}", "receiptHandle": f"r-{index}", "body": body, "attributes": {"ApproximateReceiveCount": "2"}}
            for index, body in enumerate(bodies)
        ]
    }


@pytest.mark.parametrize(
    ("result", "reported"),
    [
        (Outcome.HANDLED, []),
        (Outcome.DROPPED, []),  # permanent: dropped, not retried forever
        (Outcome.RETRY, ["m-0"]),
        (Outcome.LEFT, ["m-0"]),  # another delivery holds the work: its message is not deleted
        (ServiceUnavailable("db down"), ["m-0"]),  # a handler that raises is retried
        (RuntimeError("bug"), ["m-0"]),
    ],
)
def test_only_retry_and_left_outcomes_and_raises_are_reported(result, reported):
    def handle(_record, _invocation):
        if isinstance(result, Exception):
            raise result
        return result

    response = process_sqs_batch(_batch("{}"), handle, INVOCATION)
    assert [item.item_identifier for item in response.batch_item_failures] == reported


def test_an_unreadable_message_is_dropped_and_a_readable_one_handled(caplog):
    seen = []

    def handle(record, _invocation):
        seen.append(read_message(record, TypeAdapter(dict[str, int]), '{"name": number}'))
        return Outcome.HANDLED

    response = process_sqs_batch(_batch('{"a": 1}', "not json", '{"a": "x"}'), handle, INVOCATION)
    assert seen == [{"a": 1}]
    assert response.batch_item_failures == []  # dropped: not retried
    assert "dropped message m-1: not {\"name\": number}: 'not json'" in caplog.text


def test_one_failing_record_does_not_fail_the_others():
    seen = []

    def handle(record, _invocation):
        seen.append(record.message_id)
        if record.message_id == "m-1":
            raise RuntimeError("boom")
        return Outcome.HANDLED

    response = process_sqs_batch(_batch("a", "b", "c"), handle, INVOCATION)
    assert seen == ["m-0", "m-1", "m-2"]
    assert [item.item_identifier for item in response.batch_item_failures] == ["m-1"]


def test_malformed_batch_is_a_validation_error():
    with pytest.raises(RequestValidationFailed) as caught:
        process_sqs_batch({"Records": [{"body": "x"}]}, lambda record, invocation: Outcome.HANDLED, INVOCATION)
    assert caught.value.status == 422
    assert caught.value.detail[0]["loc"][0] == "body"


def test_object_handler_gets_each_object_and_the_receive_count(sqs_s3_batch):
    calls = []

    def handle_object(obj, count):
        calls.append((obj.key, count))
        return Outcome.HANDLED

    response = process_sqs_batch(sqs_s3_batch, for_each_created_object(handle_object), INVOCATION)
    assert response.batch_item_failures == []
    assert calls == [("uploads/0123456789abcdef0123456789abcdef/team photo.png", 1)]


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([Outcome.HANDLED], Outcome.HANDLED),
        ([Outcome.DROPPED], Outcome.HANDLED),
        ([Outcome.HANDLED, Outcome.RETRY], Outcome.RETRY),
    ],
)
def test_a_record_is_retried_when_one_of_its_objects_asks(sqs_s3_batch, outcomes, expected):
    body = json.loads(sqs_s3_batch["Records"][0]["body"])
    body["Records"] = body["Records"] * len(outcomes)
    record = SqsEvent.model_validate(_batch(json.dumps(body))).records[0]
    answers = iter(outcomes)
    assert for_each_created_object(lambda obj, count: next(answers))(record, INVOCATION) is expected


@pytest.mark.parametrize("body", ["not json", json.dumps({"Records": [{"x": 1}]})])
def test_body_that_is_not_an_s3_notification_is_dropped(body):
    """Dropped by the one mechanism for unreadable messages: not retried."""
    from shared.platform.errors import UnreadableMessage

    handle_record = for_each_created_object(lambda obj, count: Outcome.HANDLED)
    record = SqsEvent.model_validate(_batch(body)).records[0]
    with pytest.raises(UnreadableMessage):
        handle_record(record, INVOCATION)
    assert process_sqs_batch(_batch(body), handle_record, INVOCATION).batch_item_failures == []


def test_invocation_deadline_comes_from_the_lambda_context_header():
    deadline_ms = int((time.time() + 42) * 1000)
    invocation = Invocation.from_headers({LAMBDA_CONTEXT_HEADER: json.dumps({"deadline": deadline_ms})}, 900)
    assert invocation.timeout_seconds == 42
    assert 41 < invocation.remaining() <= 42


@pytest.mark.parametrize("header", [None, "not json", "{}", '{"deadline": "soon"}', "[1]"])
def test_invocation_without_a_readable_deadline_takes_the_default(header):
    invocation = Invocation.from_headers({LAMBDA_CONTEXT_HEADER: header} if header else {}, 7)
    assert invocation.timeout_seconds == 7
    assert 6 < invocation.remaining() <= 7


def test_a_busy_record_comes_back_when_the_other_lease_lapses():
    """The one answer to a busy claim, whatever handler met it: the record is reported and its
    message made visible again just after the other worker's lease ends."""
    from shared.platform.errors import Busy

    delays: list[tuple[str, int]] = []

    def handle(record, _invocation):
        if record.message_id == "m-1":
            raise Busy("held by another worker", retry_after_seconds=7.2)
        return Outcome.HANDLED

    response = process_sqs_batch(_batch("a", "b"), handle, INVOCATION, lambda record, seconds: delays.append((record.message_id, seconds)))
    assert [failure.item_identifier for failure in response.batch_item_failures] == ["m-1"]
    assert delays == [("m-1", 9)]

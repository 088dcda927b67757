"""Which messages the bridge deletes, by the same rules as Lambda's SQS event source."""

import json

import pytest

from infra.event_bridge import QueueBinding, lambda_sqs_event, succeeded_messages
from shared.events import SqsEvent

MESSAGES = [
    {"MessageId": "a", "ReceiptHandle": "ra", "Body": "{}", "Attributes": {"ApproximateReceiveCount": "1"}},
    {"MessageId": "b", "ReceiptHandle": "rb", "Body": "{}", "Attributes": {"ApproximateReceiveCount": "3"}},
]
BINDING = QueueBinding("thumbnail", "http://q", "arn:aws:sqs:us-east-1:0:q", "http://f", 10, 60, True)


def _ids(messages):
    return [message["MessageId"] for message in messages]


@pytest.mark.parametrize(
    ("status", "body", "deleted"),
    [
        (200, b'{"batchItemFailures": []}', ["a", "b"]),
        (200, b"", ["a", "b"]),
        (200, b'{"batchItemFailures": [{"itemIdentifier": "b"}]}', ["a"]),
        (200, b"not json", []),
        (200, b'{"batchItemFailures": [{"wrong": 1}]}', []),
        (500, b'{"batchItemFailures": []}', []),
        (400, b"", []),
    ],
)
def test_succeeded_messages(status, body, deleted):
    assert _ids(succeeded_messages(MESSAGES, status, body, True)) == deleted


def test_without_partial_batch_reporting_2xx_deletes_all():
    body = json.dumps({"batchItemFailures": [{"itemIdentifier": "a"}]}).encode()
    assert _ids(succeeded_messages(MESSAGES, 200, body, False)) == ["a", "b"]


def test_event_has_the_shape_a_function_parses():
    event = SqsEvent.model_validate(lambda_sqs_event(MESSAGES, BINDING, "us-east-1"))
    assert [r.message_id for r in event.records] == ["a", "b"]
    assert event.records[1].attributes.approximate_receive_count == 3
    assert event.records[0].event_source_arn == BINDING.queue_arn

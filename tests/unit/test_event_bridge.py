"""Which messages the bridge deletes, by the same rules as Lambda's SQS event source; its
connections to the functions."""

import dataclasses
import json
import threading

import pytest

from infra.event_bridge import (
    Bindings,
    QueueBinding,
    QueuePoller,
    ScheduleBinding,
    lambda_context,
    lambda_sqs_event,
    scheduled_event,
    succeeded_messages,
)
from infra.settings import REUSE_IDLE_SECONDS
from shared.platform.batch import Invocation
from shared.platform.events import SqsEvent

MESSAGES = [
    {"MessageId": "a", "ReceiptHandle": "ra", "Body": "{}", "Attributes": {"ApproximateReceiveCount": "1"}},
    {"MessageId": "b", "ReceiptHandle": "rb", "Body": "{}", "Attributes": {"ApproximateReceiveCount": "3"}},
]
BINDING = QueueBinding("thumbnail", "http://q", "arn:aws:sqs:us-east-1:0:q", "http://f", 10, 60, True, 2)
SCHEDULE = ScheduleBinding("sweeper", "Sweep", "http://f", 60, 30)


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


def test_the_context_header_gives_the_function_its_deadline():
    invocation = Invocation.from_headers({"x-amzn-lambda-context": lambda_context("match_surface", 300)}, 60)
    assert invocation.timeout_seconds == 300
    assert 299 < invocation.remaining() <= 300


def test_scheduled_event_is_eventbridges_shape():
    event = scheduled_event(SCHEDULE, "us-east-1")
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["time"].endswith("Z")


def test_bindings_round_trip(tmp_path):
    path = tmp_path / "bridge.json"
    path.write_text(Bindings([BINDING], [SCHEDULE]).to_json())
    assert Bindings.load(path) == Bindings([BINDING], [SCHEDULE])


def test_a_delivery_thread_lets_go_of_its_connection_before_the_function_would(monkeypatch):
    """Reused while idle for less than REUSE_IDLE_SECONDS (shorter than the functions' keep-alive);
    after that the pool is closed, so a request never goes out on a connection the server closes."""
    now = [1000.0]
    monkeypatch.setattr("infra.event_bridge.time.monotonic", lambda: now[0])
    poller = QueuePoller(dataclasses.replace(BINDING, endpoint="http://127.0.0.1:9"), threading.Event())
    closed = []
    http = poller.session()
    monkeypatch.setattr(http, "close", lambda: closed.append(now[0]))
    now[0] += REUSE_IDLE_SECONDS - 0.5
    assert poller.session() is http and closed == []
    now[0] += REUSE_IDLE_SECONDS
    assert poller.session() is http and closed == [now[0]]

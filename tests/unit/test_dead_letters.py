"""What a dead letter is about, read from its body alone (the real payloads of events/)."""

import json

import pytest

from shared.platform.tasks import step_uid
from tests.conftest import load_event
from tools.dead_letters import DeadLetterError, DeadLetterQueue, Subject, subject_of


def _body(event: str, index: int = 0) -> str:
    return load_event(event)["Records"][index]["body"]


def test_a_job_names_its_task():
    assert subject_of(_body("sqs_match_job")) == Subject("task job", uid="0123456789abcdef0123456789abcdef")


def test_a_chain_step_names_the_steps_own_task():
    chain = json.loads(_body("sqs_chain_step"))["chain"]
    assert subject_of(_body("sqs_chain_step")) == Subject("chain step", uid=step_uid(chain, 1))


def test_a_task_event_names_its_task_and_owner():
    assert subject_of(_body("sqs_task_finished")) == Subject("task event", uid="a1b2c3d4e5f67890abcdef1234567890", owner="tester")


def test_an_s3_notification_names_its_objects_decoded():
    assert subject_of(_body("sqs_s3_batch")) == Subject(
        "S3 notification", keys=("uploads/0123456789abcdef0123456789abcdef/team photo.png",)
    )  # sent as team+photo.png
    assert subject_of(_body("sqs_s3_batch", 1)).kind == "S3 test event"


@pytest.mark.parametrize("body", ["not json", "[1]", '{"Records": [{"s3": 1}]}', '{"uid": 5}', "{}"])
def test_anything_else_is_unreadable(body):
    assert subject_of(body) == Subject("unreadable")


def test_a_message_goes_back_to_the_queue_it_came_from():
    queue = DeadLetterQueue(
        "x-dlq", "http://q/x-dlq", "arn:aws:sqs:r:1:x-dlq", {"arn:aws:sqs:r:1:a": "http://q/a", "arn:aws:sqs:r:1:b": "http://q/b"}
    )
    assert queue.source_of({"MessageId": "m", "Attributes": {"DeadLetterQueueSourceArn": "arn:aws:sqs:r:1:b"}}) == "http://q/b"
    with pytest.raises(DeadLetterError, match="does not say which"):
        queue.source_of({"MessageId": "m", "Attributes": {}})
    single = DeadLetterQueue("y-dlq", "http://q/y-dlq", "arn:aws:sqs:r:1:y-dlq", {"arn:aws:sqs:r:1:y": "http://q/y"})
    assert single.source_of({"MessageId": "m"}) == "http://q/y"

"""The sweeper's net under a lost job, against a real SQS queue (LocalStack) and Postgres: a task
left waiting for a worker whose job's message is gone (deleted by hand, its queue purged) gets its
job again, and a job whose message is anywhere (waiting, in flight, dead-lettered) does not."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.platform.db.engine import session_scope
from shared.platform.db.models import Task
from shared.platform.leases import Lease
from shared.platform.messaging import Outbox
from shared.platform.tasks import TaskRepository
from tests.clock import Clock
from tests.conftest import queue_arn, throwaway_queue

IDLE_SECONDS = 300


@contextmanager
def waiting_task(aws, database_url: str, clock: Clock) -> Iterator[tuple[Any, TaskRepository, str, str, str]]:
    """``(sqs, tasks, uid, queue, dead letters)``: a queued task whose job was sent to a queue of
    its own (with a dead-letter queue); ``queue``'s name is the only one the sweeper may look at."""
    sqs = aws("sqs")
    with throwaway_queue(sqs, "lost-dead") as dead:
        redrive = json.dumps({"deadLetterTargetArn": queue_arn(sqs, dead), "maxReceiveCount": "5"})
        with throwaway_queue(sqs, "lost", RedrivePolicy=redrive) as queue:
            tasks = TaskRepository(database_url, Outbox(sqs, aws("events"), "unused", database_url), clock=clock)
            uid = tasks.create("template", {}, [], job_queue=queue).uid
            tasks.dispatch(uid)
            yield sqs, tasks, uid, queue, dead


def _name(queue: str) -> str:
    return queue.rsplit("/", 1)[-1]


def _take_message(sqs, queue: str) -> dict:
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2, MessageAttributeNames=["All"])["Messages"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return message


def test_a_task_whose_message_was_lost_gets_its_job_again_once(aws, database_url):
    with waiting_task(aws, database_url, Clock()) as (sqs, tasks, uid, queue, _dead):  # the clock: centuries later
        _take_message(sqs, queue)  # lost: deleted by hand
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == [uid]
        assert json.loads(_take_message(sqs, queue)["Body"]) == {"uid": uid}
        assert [entry.event for entry in tasks.timeline(uid, "").events] == ["submitted", "queued", "queued"]
        # lost again at once: not sent again before another idle period (SQS's counts may lag)
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == []
        assert tasks.get(uid).status == "queued"


def test_a_job_whose_message_is_waiting_in_flight_or_dead_lettered_is_left_alone(aws, database_url):
    with waiting_task(aws, database_url, Clock()) as (sqs, tasks, uid, queue, dead):
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == []  # waiting
        (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)["Messages"]
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == []  # in flight
        sqs.send_message(QueueUrl=dead, MessageBody=message["Body"])  # dead-lettered (its task ends there)
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == []
        _take_message(sqs, dead)
        assert tasks.resend_lost_jobs(IDLE_SECONDS, "visionfn-another-stack-") == []  # not the sweeper's stack
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == [uid]  # now it is lost


def test_a_task_under_a_live_lease_or_not_idle_long_enough_is_left_alone(aws, database_url):
    clock = Clock(datetime.now(UTC))
    with waiting_task(aws, database_url, clock) as (sqs, tasks, uid, queue, _dead):
        _take_message(sqs, queue)
        clock.advance(seconds=IDLE_SECONDS - 5)
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == []  # not idle long enough
        lease = tasks.claim(uid, IDLE_SECONDS * 2)
        assert isinstance(lease, Lease)
        clock.advance(seconds=IDLE_SECONDS + 10)
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == []  # its worker's lease holds
        clock.advance(seconds=IDLE_SECONDS)
        assert tasks.resend_lost_jobs(IDLE_SECONDS, _name(queue)) == [uid]  # lapsed: its worker is gone
        assert tasks.get(uid).status == "processing"  # the next delivery claims it from the lapsed lease


def test_the_sweeper_function_sends_a_lost_job_again(aws, database_url, function_client):
    with waiting_task(aws, database_url, Clock()) as (sqs, _tasks, uid, queue, _dead):
        _take_message(sqs, queue)
        with session_scope(database_url) as session:
            session.get(Task, uid).updated_at -= timedelta(seconds=120)  # waiting for two minutes
        sweeper = function_client("sweeper", VISIONFN_LOST_JOB_SECONDS="60", VISIONFN_QUEUE_PREFIX=_name(queue))
        answer = sweeper.post("/events", json={"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
        assert answer.status_code == 200 and answer.get_json()["jobs_resent"] == 1
        assert json.loads(_take_message(sqs, queue)["Body"]) == {"uid": uid}

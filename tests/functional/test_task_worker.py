"""The task worker's two holds on a job, against a real SQS queue (LocalStack) and Postgres: the
task's lease (what every write is fenced by) and the message's visibility (what brings the task
back if the worker dies). When a heartbeat comes late, the job is delivered again while the first
attempt still works; each attempt must then leave the other its hold, or the task is lost. And a
heartbeat hides the message for longer than the lease, so that a late one costs nothing."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.platform.batch import Outcome
from shared.platform.events import SqsRecord
from shared.platform.leases import Lease
from shared.platform.messaging import JobQueue
from shared.platform.settings import Settings
from shared.platform.task_jobs import TaskWorker
from shared.platform.tasks import TaskRepository
from tests.clock import Clock
from tests.conftest import queue_arn, throwaway_queue


def _received(sqs, queue: str) -> SqsRecord:
    """The queue's one message as the event bridge hands it to a function."""
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5, AttributeNames=["All"])["Messages"]
    return SqsRecord.model_validate(
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": message["Attributes"]["ApproximateReceiveCount"]},
            "eventSourceARN": queue_arn(sqs, queue),
        }
    )


@contextmanager
def one_job(
    aws, database_url: str, lease_seconds: int = 20
) -> Iterator[tuple[Any, Clock, TaskRepository, TaskWorker, str, str, SqsRecord]]:
    """``(sqs, clock, tasks, worker, uid, queue, record)``: a task whose job was sent to a queue of
    its own (visibility: one lease) and received once, a worker of that lease, the tasks on a test clock."""
    sqs, clock = aws("sqs"), Clock()
    tasks = TaskRepository(database_url, clock=clock)
    worker = TaskWorker("test", tasks, JobQueue(sqs, None), Settings(task_lease_seconds=lease_seconds))
    uid = tasks.create("template", {}, []).uid
    with throwaway_queue(sqs, "worker", VisibilityTimeout=str(lease_seconds)) as queue:
        sqs.send_message(QueueUrl=queue, MessageBody=uid)
        yield sqs, clock, tasks, worker, uid, queue, _received(sqs, queue)


def test_an_attempt_whose_lease_was_taken_over_leaves_the_message_to_the_new_one(aws, database_url):
    with one_job(aws, database_url) as (sqs, _clock, tasks, worker, uid, queue, first):
        taken_over: list[Lease] = []

        def work(lease: Lease) -> tuple[dict, list[str]]:
            # its heartbeat comes late: the message is delivered again and the delivery takes the task
            sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=first.receipt_handle, VisibilityTimeout=0)
            second = _received(sqs, queue)
            claim = tasks.claim(uid, 60, delivery=second.attributes.approximate_receive_count)
            assert isinstance(claim, Lease) and claim.attempt == lease.attempt + 1
            taken_over.append(claim)
            worker.heartbeat(lease, first)  # LeaseLost: this attempt stops
            raise AssertionError("the heartbeat of a lost lease must stop the work")

        assert worker.take(uid, first, work) is Outcome.LEFT  # not HANDLED: that would delete the message
        assert tasks.get(uid).status == "processing"
        assert tasks.complete(taken_over[0], {"ok": True}, []).status == "done"


def test_a_heartbeat_whose_message_is_gone_lets_the_work_finish(aws, database_url):
    with one_job(aws, database_url) as (sqs, _clock, tasks, worker, uid, queue, record):

        def work(lease: Lease) -> tuple[dict, list[str]]:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=record.receipt_handle)  # e.g. by an attempt that lost it
            worker.heartbeat(lease, record)  # the lease still holds: the work goes on
            return {"ok": True}, []

        assert worker.take(uid, record, work) is Outcome.HANDLED
    task = tasks.get(uid)
    assert (task.status, task.result_data) == ("done", {"ok": True})


def test_a_worker_starved_past_its_lease_keeps_its_job(aws, database_url):
    """Its heartbeat hides the message for two leases: one that comes a little late finds no
    delivery of its job taking over, and renews the lease that lapsed meanwhile."""
    with one_job(aws, database_url, lease_seconds=2) as (sqs, clock, tasks, worker, uid, queue, record):
        redelivered = []

        def work(lease: Lease) -> tuple[dict, list[str]]:
            worker.heartbeat(lease, record)
            clock.advance(seconds=3.5)  # the lease (2 s) lapses: the next heartbeat is late
            time.sleep(2.5)  # past the lease in SQS's time too (LocalStack brings messages back within a second of due)
            redelivered.extend(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []))
            worker.heartbeat(lease, record)
            return {"ok": True}, []

        assert worker.take(uid, record, work) is Outcome.HANDLED
        assert redelivered == []  # no delivery came back to take the job over
    task = tasks.get(uid)
    assert (task.status, task.attempts) == ("done", 1)


def test_a_heartbeat_writes_the_work_s_progress_with_its_lease(aws, database_url):
    with one_job(aws, database_url) as (_sqs, _clock, tasks, worker, uid, _queue, record):
        seen = []

        def work(lease: Lease) -> tuple[dict, list[str]]:
            worker.heartbeat(lease, record)
            seen.append(tasks.get(uid).result_data)  # no progress given: none written
            worker.heartbeat(lease, record, {"frames_done": 3, "frames_total": 10})
            seen.append(tasks.get(uid).result_data)
            return {"ok": True}, []

        assert worker.take(uid, record, work) is Outcome.HANDLED
        assert seen == [None, {"frames_done": 3, "frames_total": 10}]


def test_the_video_worker_s_heartbeat_thread_writes_its_frames_done(aws, database_url):
    from types import SimpleNamespace

    from shared.faces.video_tasks import _Progress
    from shared.platform.batch import Invocation

    with one_job(aws, database_url) as (_sqs, _clock, tasks, worker, uid, _queue, record):

        def work(lease: Lease) -> tuple[dict, list[str]]:
            invocation = Invocation(time.monotonic() + 60, 60)
            with _Progress(SimpleNamespace(worker=worker), lease, record, invocation, total=8, lease_seconds=1) as progress:
                progress(5)
                deadline = time.monotonic() + 10
                while tasks.get(uid).result_data is None and time.monotonic() < deadline:
                    time.sleep(0.05)
            return tasks.get(uid).result_data or {}, []

        assert worker.take(uid, record, work) is Outcome.HANDLED
    assert tasks.get(uid).result_data == {"frames_done": 5, "frames_total": 8}

"""Fixtures of the matching functions' tests: a job queue of each test module's own (and its
dead-letter queue), the match_<tool> clients sending to it, the tasks, and a worker's delivery."""

import json

import pytest

from shared.platform.tasks import TaskRepository
from tests.conftest import deliver_message, queue_arn, throwaway_queue


@pytest.fixture(scope="module")
def dead_jobs(aws):
    """The job queue's dead-letter queue."""
    with throwaway_queue(aws("sqs"), "dead-jobs") as url:
        yield url


@pytest.fixture(scope="module")
def job_queue(aws, dead_jobs):
    """A queue nobody consumes, so the test sees exactly what a submission queued."""
    sqs = aws("sqs")
    redrive = json.dumps({"deadLetterTargetArn": queue_arn(sqs, dead_jobs), "maxReceiveCount": "5"})
    with throwaway_queue(sqs, "jobs", RedrivePolicy=redrive) as url:
        yield url


@pytest.fixture(scope="module")
def match_client(function_client, job_queue):
    """Test client of match_<tool>, handing its tasks to the test's queue (other settings as given)."""

    def make(tool: str, **variables: str):
        return function_client(f"match_{tool}", **{"VISIONFN_JOB_QUEUE_URL": job_queue, **variables})

    return make


@pytest.fixture
def tasks(database_url):
    return TaskRepository(database_url)


@pytest.fixture(scope="module")
def deliver(aws, dead_jobs):
    """Deliver a job to a worker as the event bridge does (``deliver_message``), from a fresh
    queue or from the job queue's DLQ."""
    sqs = aws("sqs")

    def send(client, uid: str, receive_count: int = 1, body: str | None = None, dead_letter: bool = False) -> dict:
        return deliver_message(
            sqs,
            client,
            body if body is not None else json.dumps({"uid": uid}),
            queue=dead_jobs if dead_letter else None,
            receive_count=receive_count,
        )

    return send

"""`python -m tools.dead_letters` on the real stack: a task event put in the task-events DLQ is
listed with its task's owner and last error, moved back by its message id (the notifier then
delivers it to the owner's webhook), and the rest moved back with --all."""

import json
import os
import subprocess
import sys
import uuid

import pytest
import requests

from shared.platform.keys import ApiKeys
from shared.platform.tasks import TaskRepository
from tests.conftest import load_event
from tests.integration.test_webhooks import SECRET, Owner
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def dead_letters(platform, tmp_path_factory):
    """``python -m tools.dead_letters ARGS`` on this platform: its queues from a run dir of its state
    alone, as `make up` writes it (another session's tests may start a platform in .run/test meanwhile),
    or from the stack's queue prefix."""
    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / "state.json").write_text(json.dumps(platform.state))
    env = {**os.environ, **platform.env, "VISIONFN_RUN_DIR": str(run_dir)}

    def run(*args: str, queue_prefix: bool = False) -> subprocess.CompletedProcess:
        prefix = ["--queue-prefix", f"{platform.state['stack_name']}-"] if queue_prefix else []
        return subprocess.run(
            [sys.executable, "-m", "tools.dead_letters", *prefix, *args], env=env, capture_output=True, text=True, timeout=120
        )

    return run


def listed(dead_letters, **options) -> dict[str, dict]:
    """Message id -> what the command says of it (the task-events DLQ's)."""
    result = dead_letters("--queue", "task-events-dlq", "list", "--json", **options)
    assert result.returncode == 0, result.stderr
    return {letter["message_id"]: letter for letter in map(json.loads, result.stdout.splitlines())}


@pytest.fixture
def owner(platform, database_url) -> Owner:
    name = f"dlq-{uuid.uuid4().hex[:10]}"
    _record, key = ApiKeys(database_url).create(name, "dead letter tests")
    owner = Owner(name, requests.Session(), platform.gateway)
    owner.http.headers["Authorization"] = f"Bearer {key}"
    return owner


def failed_task(database_url: str, owner: str, error: str) -> str:
    """A task of ``owner`` that ended in ``error`` (no event sent: the test sends its own)."""
    tasks = TaskRepository(database_url)
    task = tasks.create("template", {}, [], owner=owner)
    tasks.fail(tasks.claim(task.uid, 30), error)
    return task.uid


def task_event(uid: str, owner: str, error: str) -> str:
    """The body EventBridge puts on the task-events queue (events/sqs_task_finished.json's), for this task."""
    event = json.loads(load_event("sqs_task_finished")["Records"][0]["body"])
    event["detail"].update(uid=uid, owner=owner, status="error", tool="template", result_files=[], result_data=None, error=error)
    return json.dumps(event)


def test_a_dead_letter_is_listed_with_its_task_and_redriven_to_its_queue(platform, aws, database_url, owner, dead_letters):
    sqs = aws("sqs")
    dlq = platform.state["outputs"]["TaskEventsDLQUrl"]
    first = failed_task(database_url, owner.name, "Failed after 5 attempts: worker killed")
    second = failed_task(database_url, owner.name, "Failed after 5 attempts: out of memory")
    sent = {
        uid: sqs.send_message(QueueUrl=dlq, MessageBody=task_event(uid, owner.name, "from the event"))["MessageId"]
        for uid in (first, second)
    }

    letters = listed(dead_letters)
    assert {sent[first], sent[second]} <= set(letters)
    letter = letters[sent[first]]
    assert (letter["kind"], letter["uid"], letter["owner"], letter["status"]) == ("task event", first, owner.name, "error")
    assert letter["error"] == "Failed after 5 attempts: worker killed"  # the task's own, from the database
    assert letter["received"] >= 1 and letter["queue"].endswith("-task-events-dlq")
    assert sent[second] in listed(dead_letters, queue_prefix=True)  # the same queues, named by their prefix
    readable = dead_letters("--queue", "task-events-dlq")
    assert first in readable.stdout and "last error: Failed after 5 attempts: worker killed" in readable.stdout

    with Receiver() as receiver:
        owner.register(receiver.url + "/dead-letters", secret=SECRET)
        moved = dead_letters("redrive", sent[first])
        assert moved.returncode == 0 and f"moved {sent[first]} -> {platform.state['stack_name']}-task-events" in moved.stdout, moved
        [delivery] = receiver.wait_for(1, timeout=60)  # back on the task-events queue: the notifier delivered it
        assert json.loads(delivery.body)["uid"] == first
        remaining = listed(dead_letters)
        assert sent[first] not in remaining and sent[second] in remaining

        everything = dead_letters("--queue", "task-events-dlq", "redrive", "--all")
        assert everything.returncode == 0 and "message(s) moved back" in everything.stdout, everything
        assert json.loads(receiver.wait_for(2, timeout=60)[1].body)["uid"] == second
    assert not {sent[first], sent[second]} & set(listed(dead_letters))

    unknown = dead_letters("redrive", "no-such-message")
    assert unknown.returncode == 1 and "no message no-such-message" in unknown.stderr

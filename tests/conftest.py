"""Fixtures shared by every test layer."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: The owner the functional tests' requests come from (what the gateway would pass on).
TEST_OWNER = "tester"
EVENTS = Path(__file__).resolve().parent.parent / "events"


def as_owner(owner: str) -> dict[str, str]:
    """Headers of a request the cloud's authorizer let through as ``owner``: API Gateway's request
    context, as the cloud entry passes it to the function (no platform token: the cloud mode)."""
    return {"x-amzn-request-context": json.dumps({"authorizer": {"lambda": {"owner": owner}}})}


def act_as(client, owner: str | None):
    """A test client whose requests come as ``owner``'s, as API Gateway passes the authorizer's owner
    of a verified key (the cloud mode: no platform token); ``None``: as nobody's."""
    if owner is None:
        client.environ_base.pop("HTTP_X_AMZN_REQUEST_CONTEXT", None)
    else:
        client.environ_base["HTTP_X_AMZN_REQUEST_CONTEXT"] = as_owner(owner)["x-amzn-request-context"]
    client.owner = owner
    return client


def load_event(name: str) -> dict:
    """A real payload from events/ by name (without .json)."""
    return json.loads((EVENTS / f"{name}.json").read_text())


def event_file(name: str) -> bytes:
    """A tiny file from events/files/."""
    return (EVENTS / "files" / name).read_bytes()


@pytest.fixture
def sqs_s3_batch() -> dict:
    return load_event("sqs_s3_batch")


# --- the real stack: Postgres, LocalStack, function processes, bridge, gateway ---------------


@pytest.fixture(scope="session")
def database_url() -> str:
    """Postgres (DATABASE_URL or a throwaway cluster), migrated to head."""
    from shared.platform.db.migrate import upgrade
    from tests.postgres import postgres_url

    with postgres_url() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def platform(database_url: str):
    """The whole local platform, started by the runner exactly as `make up` does."""
    from tests.platform import running_platform

    with running_platform(
        database_url,
        os.environ.get("VISIONFN_TEST_RUN", "test"),  # another name: a second suite beside this one (.run/<name>)
        VISIONFN_FAULT_INJECTION="1",
        VISIONFN_TASK_LEASE_SECONDS="2",  # leases (and the local queues' visibility) of 2 s, renewed every 0.67 s while work runs
        VISIONFN_MAX_RECEIVE_COUNT="5",
        VISIONFN_BRIDGE_WAIT_SECONDS="2",
        VISIONFN_LOCAL_TIMEOUT_SECONDS="15",  # the timeout test waits this long, not 60 s
        VISIONFN_LOCAL_SCHEDULE_SECONDS="1",  # the sweeper every second
        VISIONFN_OUTBOX_GRACE_SECONDS="2",
        VISIONFN_KEY_CACHE_SECONDS="1",
        VISIONFN_REQUEST_READ_TIMEOUT="2",
        VISIONFN_CHAIN_STEP_HEARTBEAT_SECONDS="10",  # a chain step whose worker is gone fails after 10 s
        VISIONFN_FACE_INBOX_HIDE="faces,numbers",  # the stack's FaceInboxHide: the inbox also hides ID numbers
    ) as running:
        subscribe_to_task_events(running)
        yield running


def _forget_process_settings() -> None:
    """What a process reads once from its environment (settings, the store's client) is read again."""
    from infra.settings import get_runner_settings
    from shared.defects.settings import get_defect_settings
    from shared.faces.settings import get_face_settings
    from shared.matching.settings import get_matching_settings
    from shared.platform.http import get_direct_uploads
    from shared.platform.settings import get_settings
    from shared.platform.storage import get_object_store
    from shared.thumbnails import get_thumbnail_settings
    from shared.webhooks.settings import get_webhook_settings

    for cached in (
        get_settings,
        get_face_settings,
        get_matching_settings,
        get_defect_settings,
        get_webhook_settings,
        get_thumbnail_settings,
        get_runner_settings,
        get_object_store,
        get_direct_uploads,
    ):
        cached.cache_clear()


@contextmanager
def environment(**variables: str):
    """The one way tests change settings: these variables set while the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in variables.items():
            patch.setenv(key, value)
        _forget_process_settings()
        try:
            yield
        finally:
            patch.undo()
            _forget_process_settings()


@pytest.fixture(scope="session")
def platform_env(platform):
    """This process configured as a function of the running platform (for the test client)."""
    with environment(**platform.env, VISIONFN_FAULT_INJECTION="1"):
        yield platform.env


def localstack_client(platform, service: str):
    """A boto3 client of the running platform's LocalStack."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=platform.env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture(scope="session")
def aws(platform):
    """boto3 clients of the running platform's LocalStack: ``aws("sqs")``."""
    return functools.partial(localstack_client, platform)


def queue_arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


@contextmanager
def throwaway_queue(sqs, name: str, **attributes: str) -> Iterator[str]:
    """An SQS queue of this test only (``visionfn-test-<name>-<random>``), deleted afterwards."""
    url = sqs.create_queue(QueueName=f"visionfn-test-{name}-{uuid.uuid4().hex[:8]}", Attributes=attributes)["QueueUrl"]
    try:
        yield url
    finally:
        sqs.delete_queue(QueueUrl=url)


def deliver_message(sqs, client, body: str, queue: str | None = None, receive_count: int = 1) -> dict:
    """Post one real SQS message to a function's /events as the event bridge does (its receipt
    handle is what a worker's heartbeat extends): sent to ``queue`` or to a fresh queue, received,
    and deleted afterwards whatever the answer. Returns the function's answer (a 200)."""
    with contextlib.ExitStack() as cleanup:
        if queue is None:
            queue = cleanup.enter_context(throwaway_queue(sqs, "one"))
        sqs.send_message(QueueUrl=queue, MessageBody=body)
        (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5, AttributeNames=["All"])["Messages"]
        cleanup.callback(sqs.delete_message, QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        batch = load_event("sqs_match_job")
        record = batch["Records"][0]
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            eventSourceARN=queue_arn(sqs, queue),
        )
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        response = client.post("/events", json=batch)
        assert response.status_code == 200, response.get_json()
        return response.get_json()


_SUBSCRIBERS: dict[str, str] = {}


def subscribe_to_task_events(platform) -> str:
    """A queue of the tests' own, subscribed to the bus's task-finished rule as a second target
    beside the stack's task-events queue (which the notifier consumes): tests read the events
    there. Made when the platform starts, before any task finishes."""
    sqs, events = localstack_client(platform, "sqs"), localstack_client(platform, "events")
    url = sqs.create_queue(QueueName=f"{platform.env['VISIONFN_QUEUE_PREFIX']}test-task-events")["QueueUrl"]
    arn = queue_arn(sqs, url)
    bus = platform.state["outputs"]["EventBusName"]
    (rule,) = [rule["Name"] for rule in events.list_rules(EventBusName=bus)["Rules"] if "Task Finished" in rule.get("EventPattern", "")]
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "tests", "Arn": arn}])
    _SUBSCRIBERS[platform.gateway] = url
    return url


def task_events_queue(aws, platform) -> str:
    """The tests' subscriber queue of task-finished events (``subscribe_to_task_events``)."""
    return _SUBSCRIBERS[platform.gateway]


@pytest.fixture(scope="session")
def function_client(platform_env):
    """functions-framework test client of functions/<name>/main.py (entry point `handle`)."""
    from functions_framework import create_app

    from shared.platform.settings import PROJECT_ROOT

    def make(name: str, **variables: str):
        """The function as it starts with ``variables`` set (it keeps what it read at start)."""
        with environment(**variables):
            client = create_app("handle", str(PROJECT_ROOT / "functions" / name / "main.py")).test_client()
        return act_as(client, TEST_OWNER)

    return make


SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CROWD_PHOTO = "faces/wider_subset/images/0--Parade/0_Parade_Parade_0_205.jpg"  # several faces
PORTRAIT_PHOTO = "faces/wider_subset/images/1--Handshaking/1_Handshaking_Handshaking_1_107.jpg"  # one large face


def shared_data(relative: str) -> bytes:
    """A file of the real evaluation data beside the repository (../shared/data)."""
    path = SHARED_DATA / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the tests expect ../shared/data beside the repository")
    return path.read_bytes()

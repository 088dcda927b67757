"""Lambda's events in AWS's shapes, and the context awslambdaric passes, for the tests that call every
function's cloud entry (test_cloud_entry*.py)."""

from __future__ import annotations

import copy
import io
import json
import time
import uuid
from base64 import b64decode, b64encode
from collections.abc import Callable
from urllib.parse import parse_qsl

import numpy as np
import urllib3
from PIL import Image

from infra.template import function_specs, load_template
from shared.platform.storage import get_object_store
from tests.conftest import load_event, queue_arn, throwaway_queue

Event = dict

# --- which function gets which kind of event: every pair in template.yaml has a test below ------

COVERED: set[tuple[str, str]] = set()


def covers(*pairs: tuple[str, str]) -> Callable:
    """Records that the test below sends these (function, event kind) pairs through the entry."""

    def mark(test: Callable) -> Callable:
        COVERED.update(pairs)
        return test

    return mark


def template_event_kinds() -> set[tuple[str, str]]:
    template = load_template()
    authorizers = {
        authorizer["FunctionArn"]["Fn::GetAtt"][0]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::HttpApi"
        for authorizer in resource["Properties"].get("Auth", {}).get("Authorizers", {}).values()
    }
    kinds = set()
    for spec in function_specs(template):
        kinds |= {
            (spec.name, kind) for kind, present in (("http", spec.routes), ("sqs", spec.queues), ("schedule", spec.schedules)) if present
        }
        if spec.logical_id in authorizers:
            kinds.add((spec.name, "authorizer"))
    return kinds


# --- the invocation -------------------------------------------------------------------------------


class FakeContext:
    """What awslambdaric passes: the invocation's time left, counted down from ``remaining_ms``."""

    function_name = "visionfn-test"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.deadline_ms = time.time() * 1000 + remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline_ms - time.time() * 1000))


Invoke = Callable[..., dict]


def http_event(
    method: str,
    path: str,
    owner: str | None = None,
    query: str = "",
    body: bytes = b"",
    content_type: str = "",
    headers: dict[str, str] | None = None,
    cookies: tuple[str, ...] = (),
    stage: str = "$default",
) -> Event:
    """An HTTP API (payload 2.0) request from events/apigw_v2_get.json, after the authorizer let
    ``owner``'s key through (``None``: a public route, no authorizer context). Binary bodies are
    base64, as API Gateway passes them; JSON and text are not."""
    event = load_event("apigw_v2_get")
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event.update(rawPath=raw_path, rawQueryString=query, routeKey=f"{method} {path}", cookies=list(cookies))
    event["queryStringParameters"] = dict(parse_qsl(query))
    event["headers"] = {**event["headers"], **{name.lower(): value for name, value in (headers or {}).items()}}
    context = event["requestContext"]
    context["http"].update(method=method, path=raw_path)
    context.update(stage=stage, routeKey=f"{method} {path}")
    if owner is None:
        del context["authorizer"]
    else:
        context["authorizer"] = {"lambda": {"owner": owner}}
    if body:
        binary = not content_type.startswith(("application/json", "text/"))
        event.update(body=b64encode(body).decode() if binary else body.decode(), isBase64Encoded=binary)
        event["headers"].update({"content-type": content_type, "content-length": str(len(body))})
    return event


def form_event(path: str, owner: str | None, fields: list[tuple[str, str | tuple[str, bytes]]], **options) -> Event:
    """A ``multipart/form-data`` POST of ``fields`` (text, or ``(file name, bytes)``)."""
    body, content_type = urllib3.encode_multipart_formdata(fields)
    return http_event("POST", path, owner, body=body, content_type=content_type, **options)


def body_of(answer: dict) -> bytes:
    return b64decode(answer["body"]) if answer["isBase64Encoded"] else answer["body"].encode()


def json_of(answer: dict) -> object:
    assert answer["headers"]["content-type"] == "application/json", answer
    return json.loads(body_of(answer))


def new_owner() -> str:
    return f"cloud-{uuid.uuid4().hex[:12]}"


def png_image(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_crop(data: bytes, box: tuple[int, int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).crop(box).save(buffer, format="PNG")
    return buffer.getvalue()


# --- SQS: real messages of real queues, as the event source mapping hands them over -------------


def sqs_batch(sqs, queue: str, messages: list[dict], receive_count: int = 1) -> Event:
    """The event an SQS event source mapping makes of received ``messages`` (events/sqs_match_job.json)."""
    template = load_event("sqs_match_job")["Records"][0]
    arn = queue_arn(sqs, queue)
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            md5OfBody=message["MD5OfBody"],
            eventSourceARN=arn,
        )
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


def received(sqs, queue: str, count: int = 1, timeout: float = 20) -> list[dict]:
    deadline, messages = time.monotonic() + timeout, []
    while len(messages) < count and time.monotonic() < deadline:
        messages += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(messages) >= count, f"{len(messages)} of {count} messages arrived on {queue}"
    return messages


def deliver(cloud: Invoke, sqs, function: str, body: str, remaining_ms: int = 60_000, **settings: str) -> dict:
    """One message sent to a queue of this test's, received, and handed to ``function``."""
    with throwaway_queue(sqs, "cloud") as queue:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
        return cloud(function, sqs_batch(sqs, queue, received(sqs, queue)), remaining_ms, **settings)


def upload_batch(records: list[tuple[str, str]]) -> Event:
    """S3 notifications (events/sqs_s3_batch.json) of ``(key, etag)`` uploads, one record each."""
    template = load_event("sqs_s3_batch")["Records"][0]
    batch = []
    for key, etag in records:
        record = copy.deepcopy(template)
        notification = json.loads(record["body"])
        notification["Records"][0]["s3"]["object"].update(key=key.replace(" ", "+"), eTag=etag)
        record.update(body=json.dumps(notification), messageId=str(uuid.uuid4()))
        batch.append(record)
    return {"Records": batch}


def put_upload(key: str, data: bytes, metadata: dict | None = None) -> str:
    store = get_object_store()
    store.put(key, data, metadata=metadata)
    return store.get(key).etag


def delivered_uploads(cloud: Invoke, function: str, batch: Event, settled: Callable[[list[str]], bool]) -> list[str]:
    """The failed message ids once ``settled`` says they are what they will stay: the platform's own
    function gets the same uploads and, while it holds one, the answer for it is "retry later"."""
    deadline = time.monotonic() + 30
    while True:
        failed = [failure["itemIdentifier"] for failure in cloud(function, batch)["batchItemFailures"]]
        if settled(failed) or time.monotonic() > deadline:
            return failed
        time.sleep(0.3)

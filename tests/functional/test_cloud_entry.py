"""Every function as Lambda runs it: ``shared.platform.cloud_entry.handler(event, context)`` (what
awslambdaric calls in the image) with each kind of event template.yaml sends it, in AWS's shapes
(events/), against the real local platform (LocalStack + Postgres). Requests arrive as API Gateway
sends them on the API's ``$default`` stage, with the Lambda authorizer's owner in the request context."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from base64 import b64decode, b64encode
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import pytest
import requests
import urllib3
from PIL import Image

from infra.template import function_specs, load_template
from shared import cloud_entry
from shared.platform.faults import FAIL_ATTEMPTS_METADATA, WORK_SECONDS_METADATA
from shared.platform.idempotency import ProcessedObjects
from shared.platform.keys import ApiKeys
from shared.platform.settings import PROJECT_ROOT
from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.conftest import environment, event_file, load_event, queue_arn, shared_data, throwaway_queue
from tests.webhook_receiver import Receiver

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
    authorizers = {authorizer["FunctionArn"]["Fn::GetAtt"][0]
                   for resource in template["Resources"].values() if resource["Type"] == "AWS::Serverless::HttpApi"
                   for authorizer in resource["Properties"].get("Auth", {}).get("Authorizers", {}).values()}
    kinds = set()
    for spec in function_specs(template):
        kinds |= {(spec.name, kind) for kind, present in (("http", spec.routes), ("sqs", spec.queues),
                                                          ("schedule", spec.schedules)) if present}
        if spec.logical_id in authorizers:
            kinds.add((spec.name, "authorizer"))
    return kinds


def test_every_function_and_every_kind_of_event_it_gets_in_the_template_is_tested_here():
    expected = template_event_kinds()
    assert {name for name, _ in expected} == {path.parent.name for path in (PROJECT_ROOT / "functions").glob("*/main.py")}
    assert expected - COVERED == set(), "untested (function, event kind) pairs"
    assert COVERED - expected == set(), "tests claim pairs the template does not have"


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


@pytest.fixture
def cloud(platform_env) -> Iterator[Invoke]:
    """``cloud(function, event, remaining_ms=60_000, **settings)``: the handler as Lambda calls it. Each test
    starts its functions cold (loaded at their first event, with the settings given then)."""

    def invoke(function: str, event: Event, remaining_ms: int = 60_000, **settings: str) -> dict:
        with environment(FUNCTION=function, **settings):
            return cloud_entry.handler(copy.deepcopy(event), FakeContext(remaining_ms))

    cloud_entry._served.cache_clear()
    yield invoke
    cloud_entry._served.cache_clear()


def http_event(method: str, path: str, owner: str | None = None, query: str = "", body: bytes = b"",
               content_type: str = "", headers: dict[str, str] | None = None, cookies: tuple[str, ...] = (),
               stage: str = "$default") -> Event:
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


def _owner() -> str:
    return f"cloud-{uuid.uuid4().hex[:12]}"


def _png(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_crop(data: bytes, box: tuple[int, int, int, int]) -> bytes:
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
        record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"],
                      md5OfBody=message["MD5OfBody"], eventSourceARN=arn)
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


def _upload(key: str, data: bytes, metadata: dict | None = None) -> str:
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


# --- the authorizer ------------------------------------------------------------------------------

@covers(("authorizer", "authorizer"))
def test_the_authorizer_lets_a_valid_key_through_with_its_owner_and_nothing_else(cloud, database_url):
    owner = _owner()
    _record, key = ApiKeys(database_url).create(owner, "cloud entry test")
    event = load_event("authorizer_v2_request")

    def authorize(**headers: str) -> dict:
        asked = copy.deepcopy(event)
        asked["headers"] = {name: value for name, value in asked["headers"].items() if name != "authorization"}
        asked["headers"].update(headers)
        asked["identitySource"] = list(headers.values())
        return cloud("authorizer", asked)

    assert authorize(authorization=f"Bearer {key}") == {"isAuthorized": True, "context": {"owner": owner}}
    assert authorize(**{"x-api-key": key}) == {"isAuthorized": True, "context": {"owner": owner}}
    assert authorize() == {"isAuthorized": False, "context": {"owner": ""}}
    assert authorize(authorization=f"Bearer {key}x") == {"isAuthorized": False, "context": {"owner": ""}}
    forged = authorize(**{"x-visionfn-owner": owner, "x-amzn-request-context": json.dumps(
        {"authorizer": {"lambda": {"owner": owner}}})})
    assert forged == {"isAuthorized": False, "context": {"owner": ""}}


# --- owners in the cloud: only the authorizer's context counts -----------------------------------

@covers(("tasks", "http"))
def test_a_forged_owner_header_without_the_authorizers_context_is_401(cloud, database_url):
    victim = _owner()
    TaskRepository(database_url).create("template", {}, [], owner=victim)
    forged = {"X-Visionfn-Owner": victim, "X-Visionfn-Platform-Token": "guess"}
    answer = cloud("tasks", http_event("GET", "/api/v1/tasks", owner=None, query="limit=200", headers=forged))
    assert answer["statusCode"] == 401, answer
    assert answer["headers"]["www-authenticate"].startswith("Bearer")
    assert victim not in answer["body"]


def test_a_forged_owner_beside_the_authorizers_context_gets_the_authorized_owners_data_only(cloud, database_url):
    tasks = TaskRepository(database_url)
    mine, theirs = _owner(), _owner()
    my_task = tasks.create("template", {}, [], owner=mine).uid
    their_task = tasks.create("template", {}, [], owner=theirs).uid
    forged = {"X-Visionfn-Owner": theirs, "X_Visionfn_Owner": theirs, "X-Visionfn-Platform-Token": "guess",
              "x-amzn-request-context": json.dumps({"authorizer": {"lambda": {"owner": theirs}}})}
    listed = cloud("tasks", http_event("GET", "/api/v1/tasks", owner=mine, query="limit=200", headers=forged))
    assert listed["statusCode"] == 200, listed
    owners = {task["owner"] for task in json_of(listed)["tasks"]}
    assert owners == {mine}
    uids = [task["uid"] for task in json_of(listed)["tasks"]]
    assert my_task in uids and their_task not in uids
    theirs_asked = cloud("tasks", http_event("GET", f"/api/v1/tasks/{their_task}", owner=mine, headers=forged))
    assert (theirs_asked["statusCode"], json_of(theirs_asked)) == (404, {"detail": "Task not found"})


# --- HTTP API requests -----------------------------------------------------------------------------

def test_a_get_with_a_query_string_and_cookies_on_the_default_stage_and_on_a_named_one(cloud, database_url):
    owner = _owner()
    uids = [TaskRepository(database_url).create("template", {"n": n}, [], owner=owner).uid for n in range(3)]
    sample = load_event("apigw_v2_get")  # as API Gateway sends it: limit=2, two cookies
    sample["requestContext"]["authorizer"]["lambda"]["owner"] = owner
    answer = cloud("tasks", sample)
    assert (answer["statusCode"], answer["isBase64Encoded"], answer["cookies"]) == (200, False, [])
    page = json_of(answer)
    assert page["total"] == 3 and len(page["tasks"]) == 2
    second = cloud("tasks", http_event("GET", "/api/v1/tasks", owner, query="limit=2&offset=2", cookies=("a=b",),
                                       stage="prod"))  # rawPath "/prod/api/v1/tasks"
    assert json_of(second)["total"] == 3 and len(json_of(second)["tasks"]) == 1
    assert sorted(task["uid"] for task in [*page["tasks"], *json_of(second)["tasks"]]) == sorted(uids)
    invalid = cloud("tasks", http_event("GET", "/api/v1/tasks", owner, query="limit=500"))
    assert invalid["statusCode"] == 422 and json_of(invalid)["detail"][0]["loc"] == ["query", "limit"]


def test_a_binary_download_comes_back_base64(cloud, database_url):
    owner = _owner()
    uid = TaskRepository(database_url).create("template", {}, [], owner=owner).uid
    png = event_file("landscape.png")
    get_object_store().put(f"results/{uid}/matches.png", png, "image/png")
    answer = cloud("tasks", http_event("GET", f"/api/v1/files/results/{uid}/matches.png", owner))
    assert (answer["statusCode"], answer["isBase64Encoded"]) == (200, True)
    assert b64decode(answer["body"]) == png
    assert answer["headers"]["content-type"] == "image/png"
    assert answer["headers"]["content-disposition"] == 'attachment; filename="matches.png"'


@covers(("health", "http"))
def test_health_on_its_public_route(cloud):
    answer = cloud("health", http_event("GET", "/health", owner=None))
    assert answer["statusCode"] == 200, answer
    assert json_of(answer)["status"] == "ok"


@covers(("face_detect", "http"))
def test_a_base64_multipart_upload_reaches_the_function_whole(cloud):
    answer = cloud("face_detect", load_event("apigw_v2_multipart"))  # events/files/landscape.png, min_confidence 0.5
    assert answer["statusCode"] == 200, answer
    report = json_of(answer)
    landscape = Image.open(io.BytesIO(event_file("landscape.png")))
    assert (report["width"], report["height"]) == landscape.size
    assert report["total_count"] == len(report["faces"]) == 0
    bad = cloud("face_detect", form_event("/detect", "tester", [("min_confidence", "2"), ("image", ("l.png", event_file("landscape.png")))]))
    assert bad["statusCode"] == 422 and json_of(bad)["detail"][0]["loc"] == ["body", "min_confidence"]


@covers(("face_process", "http"))
def test_a_binary_jpeg_answer_comes_back_base64_with_its_headers(cloud):
    photo = shared_data("faces/wider_subset/images/1--Handshaking/1_Handshaking_Handshaking_1_107.jpg")
    answer = cloud("face_process", form_event("/process", "tester", [("image", ("portrait.jpg", photo))], headers={"accept": "*/*"}))
    assert (answer["statusCode"], answer["isBase64Encoded"]) == (200, True), answer.get("body", "")[:300]
    assert answer["headers"]["content-type"] == "image/jpeg"
    assert int(answer["headers"]["x-faces-count"]) >= 1
    picture = Image.open(io.BytesIO(b64decode(answer["body"])))
    assert picture.format == "JPEG" and picture.size == Image.open(io.BytesIO(photo)).size


@covers(("face_process", "sqs"))
def test_the_face_inbox_gets_its_upload_notifications(cloud, database_url):
    key = f"inbox/faces/{uuid.uuid4().hex}/landscape.png"
    batch = upload_batch([(key, _upload(key, event_file("landscape.png")))])
    assert delivered_uploads(cloud, "face_process", batch, lambda failed: not failed) == []
    [entry] = ProcessedObjects("face_inbox", database_url).entries(key)  # here or in the platform's own: once
    assert entry.status == "done" and get_object_store().exists(entry.output_key)


@covers(("thumbnail", "sqs"))
def test_a_batch_with_one_failing_record_reports_only_that_one(cloud, database_url):
    good_key, flaky_key = (f"uploads/{uuid.uuid4().hex}/{name}.png" for name in ("good", "flaky"))
    good_etag = _upload(good_key, event_file("landscape.png"))
    flaky_etag = _upload(flaky_key, event_file("landscape.png"), {FAIL_ATTEMPTS_METADATA: "9"})
    batch = upload_batch([(good_key, good_etag), (flaky_key, flaky_etag)])
    good_id, flaky_id = (record["messageId"] for record in batch["Records"])
    failed = delivered_uploads(cloud, "thumbnail", batch, lambda failed: good_id not in failed)
    assert failed == [flaky_id]
    assert get_object_store().exists(good_key.replace("uploads/", "thumbnails/", 1))
    assert not get_object_store().exists(flaky_key.replace("uploads/", "thumbnails/", 1))
    [entry] = ProcessedObjects("thumbnail", database_url).entries(good_key)
    assert entry.status == "done"


def test_an_event_the_function_refuses_fails_the_invocation_with_the_reason(cloud):
    with pytest.raises(cloud_entry.EventRefused, match=r"thumbnail function answered 422 .*Records"):
        cloud("thumbnail", {"Records": "nope"})
    with pytest.raises(cloud_entry.EventRefused, match=r"sweeper function answered 400 .*SQS batch"):
        cloud("sweeper", load_event("sqs_match_job"))


# --- matching: submissions, jobs, a chain on the real state machine ----------------------------

@pytest.fixture
def sqs(aws):
    return aws("sqs")


@covers(("match_template", "http"), ("match_template", "sqs"))
def test_a_template_submission_and_its_job(cloud, sqs, database_url):
    image = _png(80, 60)
    with throwaway_queue(sqs, "template-jobs") as jobs:
        fields = [("image", ("scene.png", image)), ("template", ("part.png", _png_crop(image, (40, 10, 70, 30)))),
                  ("threshold", "0.9")]
        answer = cloud("match_template", form_event("/api/v1/match/template", "tester", fields), VISIONFN_JOB_QUEUE_URL=jobs)
        assert answer["statusCode"] == 201, answer
        task = json_of(answer)
        assert (task["status"], task["owner"], task["params"]["threshold"]) == ("queued", "tester", 0.9)
        [job] = received(sqs, jobs)
        assert json.loads(job["Body"]) == {"uid": task["uid"]}
        done = cloud("match_template", sqs_batch(sqs, jobs, [job]), VISIONFN_JOB_QUEUE_URL=jobs)
    assert done == {"batchItemFailures": []}
    finished = TaskRepository(database_url).get(task["uid"])
    assert finished.status == "done", finished.error
    assert finished.result_data["matches"][0] == {"x": 40, "y": 10, "w": 30, "h": 20, "score": 1.0}


@covers(("match_feature", "http"), ("match_feature", "sqs"))
def test_a_feature_submission_and_its_job(cloud, sqs, database_url):
    with throwaway_queue(sqs, "feature-jobs") as jobs:
        fields = [("query_image", ("box.png", shared_data("matching/opencv_samples/box.png"))),
                  ("train_image", ("scene.png", shared_data("matching/opencv_samples/box_in_scene.png"))), ("detector", "AKAZE")]
        answer = cloud("match_feature", form_event("/api/v1/match/feature", "tester", fields), VISIONFN_JOB_QUEUE_URL=jobs)
        assert answer["statusCode"] == 201, answer
        done = cloud("match_feature", sqs_batch(sqs, jobs, received(sqs, jobs)), VISIONFN_JOB_QUEUE_URL=jobs)
    assert done == {"batchItemFailures": []}
    finished = TaskRepository(database_url).get(json_of(answer)["uid"])
    assert finished.status == "done" and finished.result_data["located"], finished.error


@covers(("match_surface", "http"), ("match_surface", "sqs"))
def test_a_surface_submission_and_its_job(cloud, sqs, database_url):
    model = shared_data("3d/opencv_surface_matching/parasaurolophus_6700.ply")
    with throwaway_queue(sqs, "surface-jobs") as jobs:
        fields = [("model_file", ("model.ply", model)), ("scene_file", ("scene.ply", model)), ("relative_sampling_step", "0.08")]
        answer = cloud("match_surface", form_event("/api/v1/match/surface", "tester", fields), VISIONFN_JOB_QUEUE_URL=jobs)
        assert answer["statusCode"] == 201, answer
        done = cloud("match_surface", sqs_batch(sqs, jobs, received(sqs, jobs)), VISIONFN_JOB_QUEUE_URL=jobs)
    assert done == {"batchItemFailures": []}
    finished = TaskRepository(database_url).get(json_of(answer)["uid"])
    assert finished.status == "done" and finished.result_data["poses_found"] > 0, finished.error


def test_the_invocations_deadline_reaches_the_worker(cloud, sqs, database_url):
    """A job whose work outlasts the invocation's time left is stopped before Lambda would kill it,
    and says how long it had: the deadline came from the context, not the default timeout."""
    tasks = TaskRepository(database_url)
    uid = uuid.uuid4().hex
    keys = [f"uploads/{uid}/image.png", f"uploads/{uid}/template.png"]
    tasks.create("template", {}, keys, uid=uid)
    for key, data in zip(keys, (_png(40, 40), _png(8, 8)), strict=True):
        get_object_store().put(key, data, metadata={WORK_SECONDS_METADATA: "30"})
    assert deliver(cloud, sqs, "match_template", json.dumps({"uid": uuid.uuid4().hex})) == {"batchItemFailures": []}  # warm
    started = time.monotonic()
    answer = deliver(cloud, sqs, "match_template", json.dumps({"uid": uid}), remaining_ms=5_000)
    assert answer == {"batchItemFailures": []}
    assert time.monotonic() - started < 10
    task = tasks.get(uid)
    assert task.status == "error" and task.error.startswith("Timed out after 5 s"), task.error


@covers(("match_chain", "http"), ("match_chain", "sqs"), ("match_chain", "schedule"))
def test_a_chain_step_message_with_its_task_token_from_the_real_state_machine(cloud, sqs, aws, platform, database_url):
    """The chain's state machine (LocalStack) sends its step to a queue of this test's with
    ``sqs:sendMessage.waitForTaskToken``; the worker's answer on that token lets the execution finish."""
    scene = shared_data("matching/opencv_samples/messi5.jpg")
    machine = platform.state["outputs"]["ChainStateMachineArn"]
    tasks = TaskRepository(database_url)
    with throwaway_queue(sqs, "chain-template-steps") as steps:
        chain_settings = {"VISIONFN_CHAIN_STATE_MACHINE_ARN": machine, "VISIONFN_CHAIN_STEP_QUEUES": json.dumps({"template": steps})}
        fields = [("image", ("messi.jpg", scene)), ("template", ("ball.png", _png_crop(scene, (200, 50, 260, 110)))),
                  ("steps", json.dumps([{"tool": "template"}]))]
        answer = cloud("match_chain", form_event("/api/v1/match/chain", "tester", fields), **chain_settings)
        assert answer["statusCode"] == 201, answer
        chain = json_of(answer)
        [step] = received(sqs, steps, timeout=30)
        message = json.loads(step["Body"])
        assert set(message) == {"chain", "step", "task_token"} and (message["chain"], message["step"]) == (chain["uid"], 1)
        assert set(json.loads(load_event("sqs_chain_step")["Records"][0]["body"])) == set(message)  # the sample's shape
        answered = cloud("match_template", sqs_batch(sqs, steps, [step]), VISIONFN_JOB_QUEUE_URL=steps)
    assert answered == {"batchItemFailures": []}
    execution = _settled(lambda: aws("stepfunctions").describe_execution(executionArn=chain["execution_arn"]),
                         lambda described: described["status"] != "RUNNING")
    assert execution["status"] == "SUCCEEDED", execution
    # the execution's end reaches the platform's chain queue (its own match_chain may finalize first)
    finished = cloud("match_chain", _chain_finished_batch(chain["uid"]), **chain_settings)
    assert finished == {"batchItemFailures": []}
    done = tasks.get(chain["uid"])
    assert done.status == "done" and done.result_data["chain_result"] == "found", done
    recovered = cloud("match_chain", load_event("scheduled_event"), **chain_settings)
    assert set(recovered) == {"finished"} and recovered["finished"] >= 0


def _chain_finished_batch(uid: str) -> Event:
    batch = load_event("sqs_match_job")
    batch["Records"][0]["body"] = json.dumps({"uid": uid})
    return batch


def _settled(get: Callable[[], dict], done: Callable[[dict], bool], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while not done(value := get()) and time.monotonic() < deadline:
        time.sleep(0.3)
    return value


# --- faces: videos -----------------------------------------------------------------------------

@covers(("face_video", "http"), ("face_video", "sqs"))
def test_a_video_submission_and_its_job(cloud, sqs, database_url):
    from tests.bench.bench_video import encode_clip, pan_zoom_clip

    photo = np.asarray(Image.open(io.BytesIO(shared_data("faces/wider_subset/images/0--Parade/0_Parade_Parade_0_205.jpg"))).convert("RGB"))
    frames, _ = pan_zoom_clip(photo, np.zeros((0, 4), np.float32), frames=6, size=(320, 180))
    with throwaway_queue(sqs, "video-jobs") as jobs:
        answer = cloud("face_video", form_event("/api/v1/faces/video", "tester", [("video", ("clip.mp4", encode_clip(frames, fps=6)))]),
                       VISIONFN_FACE_VIDEO_QUEUE_URL=jobs)
        assert answer["statusCode"] == 201, answer
        done = cloud("face_video", sqs_batch(sqs, jobs, received(sqs, jobs)), VISIONFN_FACE_VIDEO_QUEUE_URL=jobs)
    assert done == {"batchItemFailures": []}
    task = TaskRepository(database_url).get(json_of(answer)["uid"])
    assert task.status == "done" and task.result_data["frames_done"] == 6, task.error


# --- defects -------------------------------------------------------------------------------------

@covers(("defect_detect", "http"), ("defect_detect", "sqs"), ("defect_data", "http"))
def test_defects_inspected_by_request_and_by_inbox_then_listed_for_their_owner_only(cloud, database_url):
    owner = _owner()
    images = sorted((PROJECT_ROOT.parent / "shared" / "data" / "defects" / "neu_det" / "images").glob("*.jpg"))[:2]
    fields = [("images", (path.name, path.read_bytes())) for path in images]
    answer = cloud("defect_detect", form_event("/api/detect", owner, fields))
    assert answer["statusCode"] == 200, answer
    assert [entry["name"] for entry in json_of(answer)] == [path.name for path in images]
    key = f"inbox/defects/{owner}/{uuid.uuid4().hex}.jpg"
    batch = upload_batch([(key, _upload(key, images[0].read_bytes()))])
    assert delivered_uploads(cloud, "defect_detect", batch, lambda failed: not failed) == []
    recent = cloud("defect_data", http_event("GET", "/api/data/getRecent", owner, query="limit=10"))
    assert recent["statusCode"] == 200, recent
    assert sorted(entry["name"] for entry in json_of(recent)) == sorted([*(path.name for path in images), key.rsplit("/", 1)[1]])
    stranger = cloud("defect_data", http_event("GET", "/api/data/getRecent", _owner(), query="limit=10"))
    assert json_of(stranger) == []


# --- settings, webhooks and the notifier -----------------------------------------------------------

@covers(("settings", "http"))
def test_settings_put_as_a_json_body_are_the_owners_own(cloud):
    owner = _owner()
    put = cloud("settings", http_event("PUT", "/api/v1/settings/template", owner, body=b'{"threshold": 0.55}',
                                       content_type="application/json"))
    assert put["statusCode"] == 200, put
    assert json_of(put)["params"]["threshold"] == 0.55
    assert json_of(cloud("settings", http_event("GET", "/api/v1/settings/template", owner)))["params"]["threshold"] == 0.55
    assert json_of(cloud("settings", http_event("GET", "/api/v1/settings/template", _owner())))["params"]["threshold"] == 0.8


@covers(("webhooks", "http"), ("notifier", "sqs"), ("notifier", "schedule"))
def test_a_webhook_registered_gets_the_task_event_the_notifier_is_handed(cloud):
    owner, loopback = _owner(), {"VISIONFN_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
    with Receiver() as receiver:
        created = cloud("webhooks", http_event("POST", "/api/v1/webhooks", owner, body=json.dumps({"url": receiver.url + "/hook"}).encode(),
                                               content_type="application/json"), **loopback)
        assert created["statusCode"] == 201, created
        hook = json_of(created)
        assert [listed["id"] for listed in json_of(cloud("webhooks", http_event("GET", "/api/v1/webhooks", owner), **loopback))] == [hook["id"]]
        batch = load_event("sqs_task_finished")
        event = json.loads(batch["Records"][0]["body"])
        event["detail"].update(owner=owner, uid=uuid.uuid4().hex)
        batch["Records"][0]["body"] = json.dumps(event)
        assert cloud("notifier", batch, **loopback) == {"batchItemFailures": []}
        [request] = receiver.wait_for(1)
        assert request.path == "/hook" and json.loads(request.body)["uid"] == event["detail"]["uid"]
        retries = cloud("notifier", load_event("scheduled_event"), **loopback)
        assert set(retries) == {"attempted", "delivered", "failed"}
        deleted = cloud("webhooks", http_event("DELETE", f"/api/v1/webhooks/{hook['id']}", owner), **loopback)
        assert (deleted["statusCode"], deleted["body"]) == (204, "")
        assert json_of(cloud("webhooks", http_event("GET", "/api/v1/webhooks", owner), **loopback)) == []


# --- the sweeper, docs and console ---------------------------------------------------------------

@covers(("sweeper", "schedule"))
def test_the_sweepers_schedule_sends_what_was_left_unsent(cloud, sqs, aws, database_url):
    from shared.platform.messaging import Outbox

    with throwaway_queue(sqs, "swept-jobs") as jobs:
        uid = TaskRepository(database_url, Outbox(sqs, aws("events"), "unused", database_url)).create(
            "template", {}, [], job_queue=jobs).uid  # its job never sent: the sender died
        time.sleep(1.2)
        report = cloud("sweeper", load_event("scheduled_event"), VISIONFN_OUTBOX_GRACE_SECONDS="1")
        assert "relayed" in report, report
        assert {"uid": uid} in [json.loads(message["Body"]) for message in received(sqs, jobs, timeout=5)]


@covers(("docs", "http"), ("console", "http"))
def test_docs_and_console_pages_text_and_binary(cloud):
    document = cloud("docs", http_event("GET", "/openapi.json"))
    assert document["statusCode"] == 200 and "/api/v1/tasks" in json_of(document)["paths"]
    icon = cloud("docs", http_event("GET", "/docs/favicon-32x32.png"))
    assert (icon["statusCode"], icon["isBase64Encoded"]) == (200, True)
    assert b64decode(icon["body"]).startswith(b"\x89PNG")
    page = cloud("console", http_event("GET", "/", stage="prod"))  # rawPath "/prod": a named stage's root
    assert (page["statusCode"], page["isBase64Encoded"]) == (200, False)
    assert page["headers"]["content-type"].startswith("text/html") and "<html" in page["body"]
    svg = cloud("console", http_event("GET", "/console/icon.svg"))
    assert svg["statusCode"] == 200 and body_of(svg) == (PROJECT_ROOT / "functions" / "console" / "static" / "icon.svg").read_bytes()


# --- the image's command (infra/entry.sh): awslambdaric on Lambda, functions-framework elsewhere ---

def _entry_script(env: dict[str, str], log: Path) -> subprocess.Popen:
    """``sh infra/entry.sh`` as the image runs it (its ENV: TARGET, PYTHONPATH), with this virtualenv's
    python and functions-framework."""
    image_env = {"TARGET": "handle", "PYTHONPATH": str(PROJECT_ROOT),
                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with log.open("wb") as output:
        return subprocess.Popen(["sh", "infra/entry.sh"], cwd=PROJECT_ROOT, env={**os.environ, **image_env, **env},
                                stdout=output, stderr=subprocess.STDOUT)


def _stopped(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)

class RuntimeApi(ThreadingHTTPServer):
    """The two calls of the Lambda Runtime API that awslambdaric makes per invocation: ``next``
    hands out ``events`` one by one (then waits), ``response``/``error`` are recorded."""

    daemon_threads = True

    def __init__(self, events: list[Event]) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)
        self.events, self.results, self.answered = list(events), [], threading.Condition()

    def wait_for(self, count: int, timeout: float = 60) -> list[tuple[str, dict]]:
        with self.answered:
            self.answered.wait_for(lambda: len(self.results) >= count, timeout)
        return self.results


class _RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RuntimeApi

    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:  # /2018-06-01/runtime/invocation/next
        if not self.server.events:
            time.sleep(30)  # no more invocations: the process is ended meanwhile
            return
        request_id = str(uuid.uuid4())
        body = json.dumps(self.server.events.pop(0)).encode()
        self.send_response(200)
        for name, value in (("Lambda-Runtime-Aws-Request-Id", request_id), ("Content-Type", "application/json"),
                            ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000)),
                            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:visionfn-test"),
                            ("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700"),
                            ("Content-Length", str(len(body)))):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # .../invocation/<id>/response or .../error
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        with self.server.answered:
            self.server.results.append((self.path.rsplit("/", 1)[1], body))
            self.server.answered.notify_all()


def test_on_lambda_awslambdaric_runs_the_entry_for_a_request_and_fails_a_refused_event(platform_env, database_url, tmp_path):
    owner = _owner()
    uid = TaskRepository(database_url).create("template", {}, [], owner=owner).uid
    request, refused = http_event("GET", f"/api/v1/tasks/{uid}", owner), load_event("scheduled_event")
    with RuntimeApi([request, refused]) as api:
        threading.Thread(target=api.serve_forever, daemon=True).start()
        process = _entry_script({"FUNCTION": "tasks", "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}"},
                                tmp_path / "runtime.log")
        try:
            results = api.wait_for(2)
        finally:
            _stopped(process)
            with contextlib.suppress(Exception):
                api.shutdown()
    output = (tmp_path / "runtime.log").read_text(errors="replace")
    assert [kind for kind, _ in results] == ["response", "error"], output
    response, error = results[0][1], results[1][1]
    assert response["statusCode"] == 200 and json.loads(response["body"])["uid"] == uid
    assert error["errorType"] == "EventRefused" and "answered 404" in error["errorMessage"], error  # tasks takes no events


def test_elsewhere_the_same_command_serves_http_with_functions_framework(platform_env, tmp_path):
    from tests.platform import free_port_block

    port = free_port_block(1, start=41000)
    process = _entry_script({"FUNCTION": "docs", "PORT": str(port)}, tmp_path / "serve.log")
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(requests.ConnectionError):
                answer = requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5)
            time.sleep(0.2)
    finally:
        _stopped(process)
    assert answer is not None and answer.status_code == 200, (tmp_path / "serve.log").read_text(errors="replace")
    assert "/api/v1/tasks" in answer.json()["paths"]

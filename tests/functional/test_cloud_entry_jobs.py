"""Task submissions and their jobs as Lambda runs them: ``shared.platform.cloud_entry.handler(event,
context)`` with the HTTP API's submission and then the SQS job it queued, against the real local
platform (LocalStack + Postgres): matching (and a chain on the real state machine), videos, the
invocation's deadline, and the sweeper's schedule."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from shared.platform.faults import WORK_SECONDS_METADATA
from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.conftest import load_event, shared_data, throwaway_queue
from tests.functional.lambda_events import Event, covers, deliver, form_event, json_of, png_crop, png_image, received, sqs_batch

# --- matching: submissions, jobs, a chain on the real state machine ----------------------------


@pytest.fixture
def sqs(aws):
    return aws("sqs")


@covers(("match_template", "http"), ("match_template", "sqs"))
def test_a_template_submission_and_its_job(cloud, sqs, database_url):
    image = png_image(80, 60)
    with throwaway_queue(sqs, "template-jobs") as jobs:
        fields = [("image", ("scene.png", image)), ("template", ("part.png", png_crop(image, (40, 10, 70, 30)))), ("threshold", "0.9")]
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
        fields = [
            ("query_image", ("box.png", shared_data("matching/opencv_samples/box.png"))),
            ("train_image", ("scene.png", shared_data("matching/opencv_samples/box_in_scene.png"))),
            ("detector", "AKAZE"),
        ]
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
    for key, data in zip(keys, (png_image(40, 40), png_image(8, 8)), strict=True):
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
        fields = [
            ("image", ("messi.jpg", scene)),
            ("template", ("ball.png", png_crop(scene, (200, 50, 260, 110)))),
            ("steps", json.dumps([{"tool": "template"}])),
        ]
        answer = cloud("match_chain", form_event("/api/v1/match/chain", "tester", fields), **chain_settings)
        assert answer["statusCode"] == 201, answer
        chain = json_of(answer)
        [step] = received(sqs, steps, timeout=30)
        message = json.loads(step["Body"])
        assert set(message) == {"chain", "step", "task_token"} and (message["chain"], message["step"]) == (chain["uid"], 1)
        assert set(json.loads(load_event("sqs_chain_step")["Records"][0]["body"])) == set(message)  # the sample's shape
        answered = cloud("match_template", sqs_batch(sqs, steps, [step]), VISIONFN_JOB_QUEUE_URL=steps)
    assert answered == {"batchItemFailures": []}
    execution = _settled(
        lambda: aws("stepfunctions").describe_execution(executionArn=chain["execution_arn"]),
        lambda described: described["status"] != "RUNNING",
    )
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
        answer = cloud(
            "face_video",
            form_event("/api/v1/faces/video", "tester", [("video", ("clip.mp4", encode_clip(frames, fps=6)))]),
            VISIONFN_FACE_VIDEO_QUEUE_URL=jobs,
        )
        assert answer["statusCode"] == 201, answer
        done = cloud("face_video", sqs_batch(sqs, jobs, received(sqs, jobs)), VISIONFN_FACE_VIDEO_QUEUE_URL=jobs)
    assert done == {"batchItemFailures": []}
    task = TaskRepository(database_url).get(json_of(answer)["uid"])
    assert task.status == "done" and task.result_data["frames_done"] == 6, task.error


# --- the sweeper, docs and console ---------------------------------------------------------------


@covers(("sweeper", "schedule"))
def test_the_sweepers_schedule_sends_what_was_left_unsent(cloud, sqs, aws, database_url):
    from shared.platform.messaging import Outbox

    with throwaway_queue(sqs, "swept-jobs") as jobs:
        uid = (
            TaskRepository(database_url, Outbox(sqs, aws("events"), "unused", database_url)).create("template", {}, [], job_queue=jobs).uid
        )  # its job never sent: the sender died
        time.sleep(1.2)
        report = cloud("sweeper", load_event("scheduled_event"), VISIONFN_OUTBOX_GRACE_SECONDS="1")
        assert "relayed" in report, report
        assert {"uid": uid} in [json.loads(message["Body"]) for message in received(sqs, jobs, timeout=5)]

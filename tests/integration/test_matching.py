"""Matching through the real stack: gateway -> submit function -> SQS -> bridge -> worker -> S3/DB."""

import io
import json
import time
import uuid

from PIL import Image

from shared.platform.leases import Lease
from shared.platform.tasks import TaskRepository
from tests.conftest import shared_data
from tests.integration.conftest import wait_for

BOX = "matching/opencv_samples/box.png"
BOX_IN_SCENE = "matching/opencv_samples/box_in_scene.png"
MESSI = "matching/opencv_samples/messi5.jpg"
PARASAUROLOPHUS = "3d/opencv_surface_matching/parasaurolophus_6700.ply"


def _finished(platform, uid: str, timeout: float = 60) -> dict:
    def finished():
        task = platform.http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()
        return task if task["status"] in ("done", "error") else None

    return wait_for(finished, timeout=timeout, interval=0.1)


def _download(platform, key: str) -> bytes:
    response = platform.http.get(f"{platform.gateway}/api/v1/files/{key}", timeout=10)
    assert response.status_code == 200, key
    return response.content


def _crop_png(data: bytes, box: tuple[int, int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).crop(box).save(buffer, format="PNG")
    return buffer.getvalue()


def test_template_task_from_submission_to_downloadable_results(platform):
    messi = shared_data(MESSI)
    response = platform.http.post(
        f"{platform.gateway}/api/v1/match/template",
        files={"image": ("messi5.jpg", messi), "template": ("ball.png", _crop_png(messi, (200, 50, 260, 110)))},
        data={"threshold": "0.9", "max_results": "5"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    queued = response.json()
    assert queued["status"] == "queued"
    task = _finished(platform, queued["uid"])
    assert task["status"] == "done", task["error"]
    assert task["result_data"]["filtered_matches"] == 1
    assert task["result_data"]["matches"][0] == {"x": 200, "y": 50, "w": 60, "h": 60, "score": 1.0}
    for key in task["result_files"]:
        assert Image.open(io.BytesIO(_download(platform, key))).format == "PNG"
    assert _download(platform, task["input_files"][0]) == messi

    def both_thumbnails():
        thumbnails = platform.http.get(f"{platform.gateway}/api/v1/tasks/{task['uid']}", timeout=10).json()["thumbnails"]
        return thumbnails if len(thumbnails) == 2 else None

    assert sorted(wait_for(both_thumbnails)) == sorted(key.replace("uploads/", "thumbnails/", 1) for key in task["input_files"])


def test_feature_task_locates_the_box(platform):
    response = platform.http.post(
        f"{platform.gateway}/api/v1/match/feature",
        files={"query_image": ("box.png", shared_data(BOX)), "train_image": ("scene.png", shared_data(BOX_IN_SCENE))},
        data={"detector": "ORB", "matcher": "BFMatcher"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    task = _finished(platform, response.json()["uid"])
    assert task["status"] == "done", task["error"]
    assert task["result_data"]["located"] and task["result_data"]["good_matches"] > 20
    assert task["result_files"] == [f"results/{task['uid']}/matches.png"]


def test_surface_task_and_its_errors(platform):
    model = shared_data(PARASAUROLOPHUS)
    ok = platform.http.post(
        f"{platform.gateway}/api/v1/match/surface",
        files={"model_file": ("model.ply", model), "scene_file": ("scene.ply", model)},
        data={"relative_sampling_step": "0.08", "use_icp": "false"},
        timeout=30,
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["thumbnails"] == []
    too_fine = platform.http.post(
        f"{platform.gateway}/api/v1/match/surface",
        files={"model_file": ("model.ply", model), "scene_file": ("scene.ply", model)},
        data={"relative_sampling_step": "0.01"},
        timeout=30,
    )
    assert too_fine.status_code == 201
    done = _finished(platform, ok.json()["uid"])
    assert done["status"] == "done" and done["result_data"]["poses_found"] > 0
    assert done["result_data"]["icp_residual"] is None
    refused = _finished(platform, too_fine.json()["uid"])
    assert refused["status"] == "error" and "relative_sampling_step=0.01 keeps" in refused["error"]


def test_a_worker_that_died_mid_task_is_replaced_by_the_redelivery(platform, database_url, aws):
    """The task was claimed (lease 1 s) by a worker that then vanished; its message comes back."""
    from shared.platform.storage import ObjectStore

    tasks = TaskRepository(database_url)
    uid = uuid.uuid4().hex
    messi = shared_data(MESSI)
    keys = [f"uploads/{uid}/messi5.jpg", f"uploads/{uid}/face.png"]
    store = ObjectStore(platform.state["bucket"], aws("s3"))
    tasks.create("template", {"threshold": 0.9}, keys, uid=uid, owner="local")
    store.put(keys[0], messi)
    store.put(keys[1], _crop_png(messi, (210, 60, 250, 100)))
    assert isinstance(tasks.claim(uid, lease_seconds=1), Lease)
    aws("sqs").send_message(QueueUrl=platform.state["outputs"]["TemplateJobsQueueUrl"], MessageBody=json.dumps({"uid": uid}))
    task = _finished(platform, uid, timeout=30)
    assert task["status"] == "done" and task["result_data"]["matches"][0]["x"] == 210


def test_a_job_that_reached_the_dead_letter_queue_ends_its_task_in_error(platform, database_url, aws):
    tasks = TaskRepository(database_url)
    uid = tasks.create("template", {}, [f"uploads/{uuid.uuid4().hex}/never-stored.png"] * 2, owner="local").uid
    assert isinstance(tasks.claim(uid, lease_seconds=1), Lease)  # its worker died on every delivery
    time.sleep(1.2)
    dead_letters = aws("sqs").get_queue_url(QueueName="visionfn-test-template-jobs-dlq")["QueueUrl"]
    aws("sqs").send_message(QueueUrl=dead_letters, MessageBody=json.dumps({"uid": uid}))
    task = _finished(platform, uid, timeout=30)
    assert task["status"] == "error" and "Gave up after 5 deliveries" in task["error"]


def test_settings_through_the_gateway(platform):
    url = f"{platform.gateway}/api/v1/settings/feature"
    try:
        put = platform.http.put(url, json={"detector": "BRISK", "ratio_threshold": 0.7}, timeout=10)
        assert put.status_code == 200 and put.json()["params"]["detector"] == "BRISK"
        submitted = platform.http.post(
            f"{platform.gateway}/api/v1/match/feature",
            files={"query_image": ("box.png", shared_data(BOX)), "train_image": ("scene.png", shared_data(BOX_IN_SCENE))},
            timeout=30,
        ).json()
        assert submitted["params"] == {"detector": "BRISK", "matcher": "FLANN", "ratio_threshold": 0.7, "max_matches": 200}
        assert _finished(platform, submitted["uid"])["result_data"]["detector"] == "BRISK"
    finally:
        platform.http.put(url, json={}, timeout=10)

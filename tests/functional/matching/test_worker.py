"""The matching worker on its job queue's events, against LocalStack and Postgres: tasks finished
and announced, bad inputs, redelivery after a dead worker, a lost lease, failures and retries, and
the dead-letter queue."""

import io
import uuid
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image

from shared.platform.db.models import utc_now
from shared.platform.errors import LeaseLost
from shared.platform.faults import FAIL_ATTEMPTS_METADATA
from shared.platform.leases import Lease
from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.clock import Clock
from tests.conftest import shared_data
from tests.functional.matching.inputs_and_queues import BOX, BOX_IN_SCENE, PARASAUROLOPHUS, _ply, _png, _stored_task, _task_events


def test_worker_finishes_a_template_task_with_pictures_and_announces_it(match_client, deliver, tasks, aws, platform):
    image = np.asarray(Image.open(io.BytesIO(_png(80, 60))))
    template = Image.fromarray(image[10:30, 40:70].copy())
    buffer = io.BytesIO()
    template.save(buffer, format="PNG")
    uid = _stored_task(tasks, "template", {"threshold": 0.9}, {"image.png": _png(80, 60), "template.png": buffer.getvalue()})
    assert deliver(match_client("template"), uid) == {"batchItemFailures": []}
    task = tasks.get(uid)
    assert task.status == "done", task.error
    assert task.attempts == 1
    assert task.result_data["filtered_matches"] == 1
    assert task.result_data["matches"][0] == {"x": 40, "y": 10, "w": 30, "h": 20, "score": 1.0}
    assert task.result_files == [f"results/{uid}/matches.png", f"results/{uid}/heatmap.png"]
    for key in task.result_files:
        assert Image.open(io.BytesIO(get_object_store().get(key).data)).format == "PNG"
    [event] = _task_events(aws, platform, uid)
    assert event["source"] == "visionfn" and event["detail-type"] == "Task Finished"
    assert event["detail"] == {
        "uid": uid,
        "owner": "",
        "status": "done",
        "tool": "template",
        "result_files": task.result_files,
        "result_data": task.result_data,
        "error": None,
        "request_id": None,  # made here, not by a request
    }


def test_worker_feature_and_surface_tasks(match_client, deliver, tasks):
    feature = _stored_task(tasks, "feature", {"detector": "AKAZE"}, {"box.png": shared_data(BOX), "scene.png": shared_data(BOX_IN_SCENE)})
    deliver(match_client("feature"), feature)
    done = tasks.get(feature)
    assert done.status == "done" and done.result_data["located"] and done.result_data["inliers"] >= 10
    assert done.result_data["detector"] == "AKAZE" and done.result_data["matcher"] == "FLANN"

    model = shared_data(PARASAUROLOPHUS)
    surface = _stored_task(tasks, "surface", {"relative_sampling_step": 0.08}, {"model.ply": model, "scene.ply": model})
    deliver(match_client("surface"), surface)
    found = tasks.get(surface)
    assert found.status == "done", found.error
    assert found.result_data["poses_found"] > 0
    assert np.allclose(found.result_data["pose"], np.eye(4), atol=0.02)
    assert found.result_files == [f"results/{surface}/placement.png"]


def test_bad_stored_input_ends_the_task_in_error_without_retries(match_client, deliver, tasks, aws, platform):
    uid = _stored_task(tasks, "surface", {}, {"model.ply": _ply(bad_value="nan"), "scene.ply": _ply()})
    assert deliver(match_client("surface"), uid) == {"batchItemFailures": []}  # retrying cannot help
    task = tasks.get(uid)
    assert task.status == "error" and "NaN" in task.error
    [event] = _task_events(aws, platform, uid)
    assert event["detail"]["status"] == "error" and "NaN" in event["detail"]["error"]


def _claimed_long_ago(database_url, uid: str) -> None:
    """A worker took the task 61 s ago with a 60 s lease and died (it never renewed it): its
    claim made on a clock set back, so that its lease has lapsed now without the test waiting."""
    dead_worker = TaskRepository(database_url, clock=Clock(utc_now() - timedelta(seconds=61)))
    assert isinstance(dead_worker.claim(uid, lease_seconds=60), Lease)


def test_a_task_left_processing_by_a_dead_worker_is_finished_by_the_redelivery(match_client, deliver, tasks, database_url):
    client = match_client("template")
    held = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8, seed=3)})
    assert isinstance(tasks.claim(held, lease_seconds=60), Lease)  # a worker holds it (for a minute from now)
    busy = deliver(client, held, receive_count=2)
    assert len(busy["batchItemFailures"]) == 1  # within the lease: retried later
    assert (tasks.get(held).status, tasks.get(held).attempts) == ("processing", 1)

    lapsed = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8, seed=3)})
    _claimed_long_ago(database_url, lapsed)
    assert deliver(client, lapsed, receive_count=3) == {"batchItemFailures": []}
    task = tasks.get(lapsed)
    assert (task.status, task.attempts) == ("done", 2)


def test_a_worker_that_lost_its_lease_cannot_write(database_url):
    clock = Clock()
    tasks = TaskRepository(database_url, clock=clock)
    uid = tasks.create("template", {}, []).uid
    stale = tasks.claim(uid, lease_seconds=60)
    clock.advance(seconds=61)
    current = tasks.claim(uid, lease_seconds=60)  # the redelivery took over
    assert isinstance(current, Lease) and current.attempt == stale.attempt + 1
    for write in (
        lambda: tasks.complete(stale, {}, []),
        lambda: tasks.fail(stale, "late"),
        lambda: tasks.release(stale),
        lambda: tasks.renew(stale, 60),
    ):
        with pytest.raises(LeaseLost):
            write()
    assert tasks.get(uid).status == "processing"
    assert tasks.complete(current, {"ok": True}, []).status == "done"
    with pytest.raises(LeaseLost):  # a late worker cannot turn `done` into `error`
        tasks.fail(stale, "late")
    assert tasks.get(uid).status == "done"


def test_failures_release_the_task_and_the_last_delivery_records_the_error(match_client, deliver, tasks):
    uid = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8)}, {FAIL_ATTEMPTS_METADATA: "9"})
    client = match_client("template")
    first = deliver(client, uid, receive_count=1)
    assert len(first["batchItemFailures"]) == 1
    assert tasks.get(uid).status == "queued"  # released: the redelivery claims it at once
    assert deliver(client, uid, receive_count=5) == {"batchItemFailures": []}  # maxReceiveCount is 5
    task = tasks.get(uid)
    assert task.status == "error" and task.error.startswith("Failed after 5 attempts: injected failure")
    assert task.attempts == 2


def test_unknown_malformed_and_finished_jobs_are_not_retried(match_client, deliver, tasks, aws, platform):
    client = match_client("template")
    assert deliver(client, uuid.uuid4().hex) == {"batchItemFailures": []}
    assert deliver(client, "", body='{"uid": "../../etc"}') == {"batchItemFailures": []}
    assert client.post("/events", json={"Records": "nope"}).status_code == 422
    uid = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8)})
    deliver(client, uid)
    assert len(_task_events(aws, platform, uid)) == 1
    assert deliver(client, uid, receive_count=2) == {"batchItemFailures": []}
    assert tasks.get(uid).attempts == 1  # not run again
    assert _task_events(aws, platform, uid, timeout=3) == []  # nor announced again


def test_a_job_in_the_dead_letter_queue_ends_its_unfinished_task_in_error(match_client, deliver, tasks, aws, platform, database_url):
    client = match_client("template")
    held = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8)})
    assert isinstance(tasks.claim(held, lease_seconds=60), Lease)  # a worker may still be at it on its last delivery
    waiting = deliver(client, held, dead_letter=True)
    assert len(waiting["batchItemFailures"]) == 1  # it might still be alive: wait for its lease
    assert tasks.get(held).status == "processing"

    uid = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8)})
    _claimed_long_ago(database_url, uid)  # the worker crashed on its last delivery, a minute ago
    assert deliver(client, uid, dead_letter=True) == {"batchItemFailures": []}
    task = tasks.get(uid)
    assert task.status == "error" and task.error.startswith("Gave up after 5 deliveries")
    [event] = _task_events(aws, platform, uid)
    assert event["detail"]["status"] == "error"

    finished = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8)})
    deliver(client, finished)
    deliver(client, finished, dead_letter=True)
    assert tasks.get(finished).status == "done"  # a finished task is left as it is

"""The matching, settings and download functions through the functions-framework test client,
against LocalStack and Postgres: submission, the worker's queue events, errors, redelivery."""

import io
import json
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from shared.matching.defaults import ToolDefaults
from shared.matching.steps import read_steps
from shared.platform.errors import LeaseLost
from shared.platform.faults import FAIL_ATTEMPTS_METADATA
from shared.platform.leases import Lease
from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.conftest import (
    TEST_OWNER,
    act_as,
    as_owner,
    deliver_message,
    event_file,
    queue_arn,
    shared_data,
    task_events_queue,
    throwaway_queue,
)

BOX = "matching/opencv_samples/box.png"
BOX_IN_SCENE = "matching/opencv_samples/box_in_scene.png"
PARASAUROLOPHUS = "3d/opencv_surface_matching/parasaurolophus_6700.ply"


def _png(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _ply(with_normals: bool = True, bad_value: str | None = None) -> bytes:
    names = ["x", "y", "z", "nx", "ny", "nz"] if with_normals else ["x", "y", "z"]
    header = "ply\nformat ascii 1.0\nelement vertex 2\n" + "".join(f"property float {n}\n" for n in names)
    rows = ["0 0 0 0 0 1", f"1 {bad_value or 0} 0 0 0 1"]
    return (header + "end_header\n" + "\n".join(" ".join(r.split()[: len(names)]) for r in rows) + "\n").encode()


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


def _queued_jobs(aws, queue_url) -> list[dict]:
    messages = aws("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


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


def _stored_task(tasks, tool: str, params: dict, files: dict[str, bytes], metadata: dict | None = None) -> str:
    """A queued task whose inputs are in the bucket, as a submission leaves it."""
    uid = uuid.uuid4().hex
    keys = [f"uploads/{uid}/{name}" for name in files]
    tasks.create(tool, params, keys, uid=uid)
    for key, data in zip(keys, files.values(), strict=True):
        get_object_store().put(key, data, metadata=metadata)
    return uid


def _task_events(aws, platform, uid: str, timeout: float = 10) -> list[dict]:
    """The "Task Finished" events for ``uid`` that reached the task-events queue."""
    sqs, url = aws("sqs"), task_events_queue(aws, platform)
    deadline, found = time.monotonic() + timeout, []
    while time.monotonic() < deadline and not found:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["uid"] == uid:
                found.append(event)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


# --- submission ---------------------------------------------------------------------------------


def test_submission_stores_inputs_creates_a_queued_task_and_queues_its_job(match_client, aws, job_queue):
    image, template = _png(64, 48), _png(16, 12, seed=1)
    response = match_client("template").post(
        "/api/v1/match/template",
        data={"image": (io.BytesIO(image), "../../screen shot.png"), "template": (io.BytesIO(template), "icon.png"), "threshold": "0.9"},
    )
    assert response.status_code == 201, response.get_json()
    task = response.get_json()
    uid = task["uid"]
    assert task["status"] == "queued" and task["tool"] == "template"
    assert task["params"] == {"method": "TM_CCOEFF_NORMED", "threshold": 0.9, "max_results": 20, "use_grayscale": True}
    assert task["input_files"] == [f"uploads/{uid}/screen_shot.png", f"uploads/{uid}/icon.png"]
    assert task["result_files"] == [] and task["result_data"] is None
    assert [get_object_store().get(key).data for key in task["input_files"]] == [image, template]
    assert {"uid": uid} in _queued_jobs(aws, job_queue)


def test_inputs_with_the_same_name_get_distinct_keys(match_client):
    response = match_client("feature").post(
        "/api/v1/match/feature",
        data={"query_image": (io.BytesIO(_png(40, 40)), "a.png"), "train_image": (io.BytesIO(_png(40, 40, 2)), "a.png")},
    )
    uid = response.get_json()["uid"]
    assert response.get_json()["input_files"] == [f"uploads/{uid}/a.png", f"uploads/{uid}/train_image-a.png"]


def test_invalid_parameters_and_missing_files_are_422_in_pydantic_shape(match_client, tasks):
    before = tasks.page(0, 1).total
    response = match_client("feature").post(
        "/api/v1/match/feature",
        data={
            "query_image": (io.BytesIO(_png(20, 20)), "q.png"),
            "train_image": "not a file part",
            "ratio_threshold": "1.5",
            "detector": "SURF",
            "max_matches": "x",
            "colour": "1",
        },
    )
    assert response.status_code == 422
    detail = response.get_json()["detail"]
    by_field = {item["loc"][1]: item for item in detail}
    assert all(item["loc"][0] == "body" and {"type", "msg", "input"} <= item.keys() for item in detail)
    assert set(by_field) == {"train_image", "ratio_threshold", "detector", "max_matches", "colour"}
    assert by_field["train_image"]["type"] == "missing"
    assert by_field["ratio_threshold"]["msg"] == "Input should be less than or equal to 1"
    assert by_field["detector"]["type"] == "literal_error"
    assert by_field["colour"]["type"] == "extra_forbidden"
    assert tasks.page(0, 1).total == before  # nothing half-written


@pytest.mark.parametrize(
    ("tool", "files", "status", "message"),
    [
        ("template", {"image": b"", "template": _png(4, 4)}, 400, "image (x.bin): The file is empty"),
        ("template", {"image": b"just text", "template": _png(4, 4)}, 400, "not a supported image"),
        ("template", {"image": event_file("truncated.jpg"), "template": _png(4, 4)}, 400, "truncated or corrupt"),
        ("template", {"image": _png(20, 20), "template": _png(30, 10)}, 400, "larger than the image"),
        ("template", {"image": _ply(), "template": _png(4, 4)}, 400, "not a supported image"),
        (
            "feature",
            {"query_image": _png(40, 40), "train_image": _png(8, 40)},
            400,
            "train_image is 8x40; feature matching needs at least 16 px",
        ),
        ("surface", {"model_file": _png(8, 8), "scene_file": _ply()}, 400, "model_file (x.bin): The file is not a PLY"),
        ("surface", {"model_file": _ply(), "scene_file": _ply(with_normals=False)}, 400, "no normals (nx, ny, nz)"),
        ("surface", {"model_file": _ply(), "scene_file": b""}, 400, "The file is empty"),
    ],
)
def test_unusable_files_are_rejected_before_a_task_exists(match_client, tasks, tool, files, status, message):
    before = tasks.page(0, 1).total
    data = {field: (io.BytesIO(content), "x.bin") for field, content in files.items()}
    response = match_client(tool).post(f"/api/v1/match/{tool}", data=data)
    assert response.status_code == status
    assert message in response.get_json()["detail"]
    assert tasks.page(0, 1).total == before


def test_huge_image_is_413_from_its_header(match_client):
    buffer = io.BytesIO()
    Image.new("L", (9000, 9000)).save(buffer, format="PNG")  # 81 MP, a small file
    data = {"image": (io.BytesIO(buffer.getvalue()), "big.png"), "template": (io.BytesIO(_png(4, 4)), "t.png")}
    response = match_client("template").post("/api/v1/match/template", data=data)
    assert response.status_code == 413 and "pixels" in response.get_json()["detail"]


# --- submission when a part of the platform fails ------------------------------------------------


def _outbox(database_url, uid: str) -> list:
    from shared.platform.db.engine import session_scope
    from shared.platform.db.models import OutboxMessage

    with session_scope(database_url) as session:
        return [
            (row.kind, row.sent_at is not None) for row in session.query(OutboxMessage).filter_by(task_uid=uid).order_by(OutboxMessage.id)
        ]


def _drop_outbox(database_url, uid: str) -> None:
    from shared.platform.db.engine import session_scope
    from shared.platform.db.models import OutboxMessage

    with session_scope(database_url) as session:
        session.query(OutboxMessage).filter_by(task_uid=uid).delete()


def test_inputs_that_cannot_be_stored_end_the_task_in_error_and_announce_it(match_client, tasks, aws, platform, database_url):
    response = match_client("template", VISIONFN_BUCKET="visionfn-test-no-such-bucket").post(
        "/api/v1/match/template", data=_template_form()
    )
    assert response.status_code == 503 and "The inputs could not be stored, try again" in response.get_json()["detail"]
    task = tasks.page(0, 1).tasks[0]
    assert task.status == "error" and task.error.startswith("The inputs could not be stored")
    assert _outbox(database_url, task.uid) == [("event", True)]  # its job dropped, its failure sent
    [event] = _task_events(aws, platform, task.uid)
    assert event["detail"]["status"] == "error"


def test_a_job_that_cannot_be_sent_now_is_kept_for_the_sweeper(match_client, tasks, database_url):
    missing_queue = "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/visionfn-test-no-such-queue"
    response = match_client("template", VISIONFN_JOB_QUEUE_URL=missing_queue).post("/api/v1/match/template", data=_template_form())
    uid = response.get_json()["uid"]
    try:
        assert response.status_code == 201  # the job is committed with the task: it will be sent
        assert tasks.get(uid).status == "queued"
        assert _outbox(database_url, uid) == [("job", False)]
    finally:
        _drop_outbox(database_url, uid)


class _EventBridgeDown:
    def put_events(self, **_entry):
        from botocore.exceptions import EndpointConnectionError

        raise EndpointConnectionError(endpoint_url="http://events.down")


def test_an_event_that_cannot_be_published_now_is_kept_and_the_task_still_finishes(aws, platform, database_url):
    from shared.platform.messaging import Outbox

    bus = platform.state["outputs"]["EventBusName"]
    down = TaskRepository(database_url, Outbox(aws("sqs"), _EventBridgeDown(), bus, database_url))
    uid = down.create("template", {}, []).uid
    assert down.complete(down.claim(uid, 60), {"matches_found": 0}, []).status == "done"
    assert _outbox(database_url, uid) == [("event", False)]
    Outbox(aws("sqs"), aws("events"), bus, database_url).relay(older_than_seconds=0)  # the sweeper, later
    assert _outbox(database_url, uid) == [("event", True)]
    [event] = _task_events(aws, platform, uid)
    assert event["detail"]["status"] == "done"


def test_the_sweeper_sends_what_was_left_unsent(function_client, aws, database_url, job_queue):
    from shared.platform.messaging import Outbox

    outbox = Outbox(aws("sqs"), aws("events"), "unused", database_url)
    uid = TaskRepository(database_url, outbox).create("template", {}, [], job_queue=job_queue).uid  # never dispatched
    assert _outbox(database_url, uid) == [("job", False)]
    time.sleep(2.2)  # older than the grace period the sweeper leaves to the sender
    scheduled = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    sweeper = function_client("sweeper", VISIONFN_OUTBOX_GRACE_SECONDS="2")
    answer = sweeper.post("/events", json=scheduled)  # (the platform's own sweeper may have been first)
    assert answer.status_code == 200 and set(answer.get_json()) == {"relayed", "unused_uploads_removed"}
    assert _outbox(database_url, uid) == [("job", True)]
    assert {"uid": uid} in _queued_jobs(aws, job_queue)
    assert sweeper.post("/events", json={"Records": []}).status_code == 400


# --- settings -------------------------------------------------------------------------------------


def _template_form() -> dict:
    return {"image": (io.BytesIO(_png(30, 30)), "i.png"), "template": (io.BytesIO(_png(5, 5)), "t.png")}


def test_settings_round_trip_and_become_submission_defaults(function_client, match_client):
    settings = function_client("settings")
    assert settings.get("/api/v1/settings/feature").get_json() == {
        "tool": "feature",
        "params": {"detector": "SIFT", "matcher": "FLANN", "ratio_threshold": 0.75, "max_matches": 200},
    }
    try:
        put = settings.put("/api/v1/settings/template", json={"threshold": 0.6, "method": "TM_SQDIFF_NORMED"})
        assert put.status_code == 200
        stored = {"method": "TM_SQDIFF_NORMED", "threshold": 0.6, "max_results": 20, "use_grayscale": True}
        assert put.get_json() == {"tool": "template", "params": stored}
        assert settings.get("/api/v1/settings/template").get_json()["params"] == stored
        client = match_client("template")
        assert client.post("/api/v1/match/template", data=_template_form()).get_json()["params"] == stored
        given = client.post("/api/v1/match/template", data={**_template_form(), "threshold": "0.95"}).get_json()["params"]
        assert given == {**stored, "threshold": 0.95}
    finally:
        settings.put("/api/v1/settings/template", json={})


def test_concurrent_first_puts_of_settings_all_succeed(database_url):
    import threading

    from shared.matching.defaults import ToolDefaults
    from shared.matching.tables import ToolSettings
    from shared.platform.db.engine import session_scope

    defaults = ToolDefaults(database_url)
    with session_scope(database_url) as session:
        session.query(ToolSettings).filter_by(owner="racer", tool="surface").delete()
    barrier, errors = threading.Barrier(8), []

    def put(index: int) -> None:
        barrier.wait()
        try:
            defaults.put("surface", "racer", {"num_angles": 10 + index})
        except Exception as error:  # what the test looks for
            errors.append(error)

    threads = [threading.Thread(target=put, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert 10 <= defaults.get("surface", "racer").num_angles < 18
    finally:
        defaults.put("surface", "racer", {})


def test_settings_errors(function_client):
    settings = function_client("settings")
    invalid = settings.put("/api/v1/settings/surface", json={"num_angles": 0, "use_icp": "maybe"})
    assert invalid.status_code == 422
    assert sorted(item["loc"] for item in invalid.get_json()["detail"]) == [["body", "num_angles"], ["body", "use_icp"]]
    unknown = settings.get("/api/v1/settings/chain")
    assert unknown.status_code == 404 and "template, feature, surface" in unknown.get_json()["detail"]
    assert settings.put("/api/v1/settings/template", data="threshold=1").status_code == 400
    assert settings.put("/api/v1/settings/template", json=[1, 2]).status_code == 400
    assert settings.get("/api/v1/settings/template").get_json()["params"]["threshold"] == 0.8  # unchanged


# --- chain steps: validated once, where the form arrives ------------------------------------------


def test_chain_steps_take_the_owners_settings_and_bad_ones_are_one_422(function_client, database_url):
    settings = function_client("settings")
    try:
        assert settings.put("/api/v1/settings/template", json={"threshold": 0.6}).status_code == 200
        steps = read_steps(
            '[{"tool": "template"}, {"tool": "template", "params": {"threshold": 0.95}}]', ToolDefaults(database_url).of_owner(TEST_OWNER)
        )  # as match_chain reads its form
        assert [step.params.threshold for step in steps] == [0.6, 0.95]
    finally:
        settings.put("/api/v1/settings/template", json={})
    bad = [{"tool": "template", "params": {"threshold": 7}}, {"tool": "feature", "params": {"colour": 1}}, {"tool": "ocr"}]
    answer = function_client("match_chain").post("/api/v1/match/chain", data={**_template_form(), "steps": json.dumps(bad), "note": "x"})
    assert answer.status_code == 422
    detail = answer.get_json()["detail"]
    assert [item["loc"] for item in detail] == [
        ["body", "note"],
        ["body", "steps", 0, "params", "threshold"],
        ["body", "steps", 1, "params", "colour"],
        ["body", "steps", 2, "tool"],
    ]
    assert all({"type", "msg", "input"} <= item.keys() for item in detail)


# --- the worker (job queue events) ---------------------------------------------------------------


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


def test_a_task_left_processing_by_a_dead_worker_is_finished_by_the_redelivery(match_client, deliver, tasks):
    uid = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8, seed=3)})
    assert isinstance(tasks.claim(uid, lease_seconds=1), Lease)  # ... and the worker died here
    client = match_client("template")
    busy = deliver(client, uid, receive_count=2)
    assert len(busy["batchItemFailures"]) == 1  # within the lease: retried later
    assert tasks.get(uid).status == "processing"
    time.sleep(1.2)
    assert deliver(client, uid, receive_count=3) == {"batchItemFailures": []}
    task = tasks.get(uid)
    assert (task.status, task.attempts) == ("done", 2)


def test_a_worker_that_lost_its_lease_cannot_write(tasks):
    uid = tasks.create("template", {}, []).uid
    stale = tasks.claim(uid, lease_seconds=1)
    time.sleep(1.2)
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


def test_a_job_in_the_dead_letter_queue_ends_its_unfinished_task_in_error(match_client, deliver, tasks, aws, platform):
    client = match_client("template")
    uid = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8)})
    assert isinstance(tasks.claim(uid, lease_seconds=1), Lease)  # the worker crashed on its last delivery
    waiting = deliver(client, uid, dead_letter=True)
    assert len(waiting["batchItemFailures"]) == 1  # it might still be alive: wait for its lease
    time.sleep(1.2)
    assert deliver(client, uid, dead_letter=True) == {"batchItemFailures": []}
    task = tasks.get(uid)
    assert task.status == "error" and task.error.startswith("Gave up after 5 deliveries")
    [event] = _task_events(aws, platform, uid)
    assert event["detail"]["status"] == "error"

    finished = _stored_task(tasks, "template", {}, {"i.png": _png(40, 40), "t.png": _png(8, 8)})
    deliver(client, finished)
    deliver(client, finished, dead_letter=True)
    assert tasks.get(finished).status == "done"  # a finished task is left as it is


# --- downloads ------------------------------------------------------------------------------------


def test_files_are_the_owners_own_served_as_attachments_of_their_sniffed_type(function_client, database_url):
    uid = TaskRepository(database_url).create("template", {}, [], owner="tester").uid
    png, html = _png(4, 4), b"<html><script>alert(1)</script></html>"
    get_object_store().put(f"results/{uid}/matches.png", png, "image/png")
    get_object_store().put(f"uploads/{uid}/page.png", html, "text/html")  # an HTML page named .png
    client = function_client("tasks")
    picture = client.get(f"/api/v1/files/results/{uid}/matches.png")
    assert (picture.status_code, picture.data, picture.mimetype) == (200, png, "image/png")
    assert picture.headers["X-Content-Type-Options"] == "nosniff"
    assert picture.headers["Content-Disposition"] == 'attachment; filename="matches.png"'
    page = client.get(f"/api/v1/files/uploads/{uid}/page.png")
    assert page.status_code == 200 and page.mimetype == "application/octet-stream"  # never text/html
    other = client.get(f"/api/v1/files/results/{uid}/matches.png", headers=as_owner("somebody-else"))
    assert other.status_code == 404  # another owner's file does not exist for them
    for missing in (
        f"results/{uuid.uuid4().hex}/none.png",
        f"results/{uid}/none.png",
        "inbox/faces/x.jpg",
        "results/../inbox/x",
        "results//x",
        f"outputs/faces/{uid}.jpg",
    ):
        answer = client.get(f"/api/v1/files/{missing}")
        assert answer.status_code == 404, missing


def test_tasks_and_settings_belong_to_their_owner(function_client, match_client):
    submitted = match_client("template").post("/api/v1/match/template", data=_template_form()).get_json()
    tasks_function, settings = function_client("tasks"), function_client("settings")
    stranger = as_owner("somebody-else")
    assert tasks_function.get(f"/api/v1/tasks/{submitted['uid']}").status_code == 200
    assert tasks_function.get(f"/api/v1/tasks/{submitted['uid']}", headers=stranger).status_code == 404
    assert submitted["uid"] not in [t["uid"] for t in tasks_function.get("/api/v1/tasks?limit=200", headers=stranger).get_json()["tasks"]]
    try:
        assert settings.put("/api/v1/settings/template", json={"threshold": 0.5}).status_code == 200
        assert settings.get("/api/v1/settings/template", headers=stranger).get_json()["params"]["threshold"] == 0.8
        assert settings.get("/api/v1/settings/template").get_json()["params"]["threshold"] == 0.5
    finally:
        settings.put("/api/v1/settings/template", json={})


def test_without_an_owner_a_route_is_401(function_client):
    client = function_client("tasks")
    act_as(client, None)
    response = client.get("/api/v1/tasks")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")

"""Submitting a matching task through the functions-framework test client, against LocalStack and
Postgres: inputs stored, a queued task and its job, parameters and files refused; and submission
when a part of the platform fails (the outbox keeps what could not be sent)."""

import io
from datetime import timedelta

import pytest
from PIL import Image

from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.conftest import event_file
from tests.functional.matching.inputs_and_queues import _ply, _png, _queued_jobs, _task_events, _template_form

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


def _committed_seconds_ago(database_url, uid: str, seconds: float) -> None:
    """The task's messages as a sender that died ``seconds`` ago left them (their commit time set
    back, instead of the test waiting for the sweeper's grace period to pass)."""
    from shared.platform.db.engine import session_scope
    from shared.platform.db.models import OutboxMessage

    with session_scope(database_url) as session:
        for message in session.query(OutboxMessage).filter_by(task_uid=uid):
            message.created_at -= timedelta(seconds=seconds)


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
    _committed_seconds_ago(database_url, uid, 61)  # older than the grace period the sweeper leaves to the sender
    scheduled = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    sweeper = function_client("sweeper", VISIONFN_OUTBOX_GRACE_SECONDS="60")
    answer = sweeper.post("/events", json=scheduled)  # (the platform's own sweeper may have been first)
    assert answer.status_code == 200 and set(answer.get_json()) == {"relayed", "jobs_resent", "unused_uploads_removed"}
    assert _outbox(database_url, uid) == [("job", True)]
    assert {"uid": uid} in _queued_jobs(aws, job_queue)
    assert sweeper.post("/events", json={"Records": []}).status_code == 400

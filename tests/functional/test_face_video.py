"""POST /api/v1/faces/video and its job queue's events through the functions-framework test
client, against LocalStack and Postgres: the contract (201 with a queued task and its job),
hostile videos (4xx and no task), and the worker (every frame, progress, per-frame counts)."""

import io
import json

import av
import numpy as np
import pytest

from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.bench.bench_video import encode_clip, pan_zoom_clip
from tests.conftest import CROWD_PHOTO, TEST_OWNER, deliver_message, load_event, shared_data, throwaway_queue


def _photo() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(shared_data(CROWD_PHOTO))).convert("RGB"))


@pytest.fixture(scope="module")
def clip() -> bytes:
    frames, _ = pan_zoom_clip(_photo(), np.zeros((0, 4), np.float32), frames=10, size=(320, 180))
    return encode_clip(frames, fps=10, audio=True)


@pytest.fixture(scope="module")
def job_queue(aws):
    """A queue nobody consumes, so the test sees exactly what a submission queued."""
    with throwaway_queue(aws("sqs"), "video-jobs") as url:
        yield url


@pytest.fixture(scope="module")
def video_client(function_client, job_queue):
    def make(**variables: str):
        return function_client("face_video", **{"VISIONFN_FACE_VIDEO_QUEUE_URL": job_queue, **variables})

    return make


@pytest.fixture
def tasks(database_url):
    return TaskRepository(database_url)


def _post(client, data: bytes, filename="clip.mp4", **form):
    return client.post("/api/v1/faces/video", data={"video": (io.BytesIO(data), filename), **form}, content_type="multipart/form-data")


def _video_tasks(tasks) -> int:
    return sum(1 for task in tasks.page(0, 200, owner=TEST_OWNER).tasks if task.tool == "face_video")


def test_submission_answers_201_with_a_queued_task_its_stored_video_and_its_job(video_client, clip, aws, job_queue):
    response = _post(video_client(), clip, keep_audio="false", mode="pixelate")
    assert response.status_code == 201, response.get_json()
    task = response.get_json()
    assert (task["status"], task["tool"], task["owner"]) == ("queued", "face_video", TEST_OWNER)
    assert task["params"]["keep_audio"] is False and task["params"]["mode"] == "pixelate"
    assert task["params"]["source"]["frames"] == 10 and task["params"]["source"]["width"] == 320
    assert task["input_files"] == [f"uploads/{task['uid']}/video.mp4"]
    assert get_object_store().get(task["input_files"][0]).data == clip
    messages = aws("sqs").receive_message(QueueUrl=job_queue, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
    assert {"uid": task["uid"]} in [json.loads(message["Body"]) for message in messages]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("empty", 400),
        ("garbage", 400),
        ("truncated", 400),
        ("image", 415),
        ("too_many_bytes", 413),
        ("too_long", 413),
        ("too_many_pixels", 413),
        ("missing_field", 400),
        ("bad_option", 422),
        ("unknown_option", 422),
    ],
)
def test_hostile_videos_get_a_4xx_and_no_task(video_client, clip, tasks, kind, status):
    before = _video_tasks(tasks)
    client, data, form, field = video_client(), clip, {}, "video"
    if kind == "empty":
        data = b""
    elif kind == "garbage":
        data = bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))
    elif kind == "truncated":
        data = clip[: len(clip) // 2]
    elif kind == "image":
        data = shared_data(CROWD_PHOTO)
    elif kind == "too_many_bytes":
        client = video_client(VISIONFN_FACE_VIDEO_MAX_BYTES=str(len(clip) - 1))
    elif kind == "too_long":
        client = video_client(VISIONFN_FACE_VIDEO_MAX_SECONDS="0.5")
    elif kind == "too_many_pixels":
        client = video_client(VISIONFN_FACE_VIDEO_MAX_PIXELS=str(320 * 180 - 1))
    elif kind == "missing_field":
        field = "image"
    elif kind == "bad_option":
        form = {"margin": "5"}
    elif kind == "unknown_option":
        form = {"colour": "red"}
    response = client.post("/api/v1/faces/video", data={field: (io.BytesIO(data), "clip.mp4"), **form}, content_type="multipart/form-data")
    assert response.status_code == status, response.get_json()
    assert response.get_json()["detail"]
    assert _video_tasks(tasks) == before


def test_worker_anonymizes_every_frame_into_a_playable_h264_mp4(video_client, clip, tasks, aws):
    task = _post(video_client(), clip).get_json()
    answer = deliver_message(aws("sqs"), video_client(), json.dumps({"uid": task["uid"]}))
    assert answer == {"batchItemFailures": []}
    done = tasks.get(task["uid"])
    assert done.status == "done", done.error
    data = done.result_data
    assert data["frames_done"] == data["frames_total"] == 10
    assert len(data["detected_per_frame"]) == len(data["covered_per_frame"]) == 10
    assert all(c >= d for c, d in zip(data["covered_per_frame"], data["detected_per_frame"], strict=True))
    assert max(data["detected_per_frame"]) >= 1  # the crowd photo has faces
    assert data["audio"] is True
    assert done.result_files == [f"results/{task['uid']}/anonymized.mp4"]
    output = get_object_store().get(done.result_files[0])
    assert output.content_type == "video/mp4"
    with av.open(io.BytesIO(output.data)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 10


@pytest.fixture(scope="module")
def clip_with_a_gap() -> bytes:
    """The crowd clip with frames 4 and 5 black: what a detector misses (a cut, a flash) while
    the faces are still there a moment before and after."""
    frames, _ = pan_zoom_clip(_photo(), np.zeros((0, 4), np.float32), frames=10, size=(320, 180))
    for index in (4, 5):
        frames[index] = np.zeros_like(frames[index])
    return encode_clip(frames, fps=10)


def _worked(video_client, tasks, aws, data: bytes, **form) -> dict:
    task = _post(video_client(), data, **form).get_json()
    assert deliver_message(aws("sqs"), video_client(), json.dumps({"uid": task["uid"]})) == {"batchItemFailures": []}
    done = tasks.get(task["uid"])
    assert done.status == "done", done.error
    return done.result_data


def test_worker_keeps_covering_faces_its_detector_lost_for_a_few_frames(video_client, clip_with_a_gap, tasks, aws):
    data = _worked(video_client, tasks, aws, clip_with_a_gap)  # track_frames: the setting's 5
    detected, covered = data["detected_per_frame"], data["covered_per_frame"]
    assert detected[4:6] == [0, 0] and min(detected[3], detected[6]) >= 1, detected  # nothing to find in the black frames
    assert covered[4] >= detected[3] and covered[5] >= detected[3], (detected, covered)  # frame 3's faces, carried on their tracks
    assert all(c >= d for c, d in zip(covered, detected, strict=True))


def test_worker_with_track_frames_0_covers_only_what_it_detects(video_client, clip_with_a_gap, tasks, aws):
    data = _worked(video_client, tasks, aws, clip_with_a_gap, track_frames="0")
    assert data["covered_per_frame"] == data["detected_per_frame"]
    assert data["covered_per_frame"][4:6] == [0, 0]


def test_a_job_that_is_not_a_uid_is_dropped(video_client):
    batch = load_event("sqs_match_job")
    batch["Records"][0]["body"] = "not json"
    response = video_client().post("/events", json=batch)
    assert response.status_code == 200 and response.get_json() == {"batchItemFailures": []}

"""Face videos on the real stack: POST /api/v1/faces/video through the gateway to a `done` task
with a playable H.264 mp4, hostile videos refused there (or their task ended at the first frame
over a limit), hostile file names cleaned, and videos put under inbox/faces/."""

import io
import json
import time
import uuid

import av
import numpy as np
from PIL import Image

from tests.bench.bench_video import encode_clip, pan_zoom_clip
from tests.conftest import CROWD_PHOTO, shared_data
from tests.crafted_videos import stamped_mp4, switching_size_webm
from tests.integration.conftest import object_exists, wait_for
from tests.text_images import CARD_NUMBER, SHOP_WORD, changed_fraction, street_scene


def _clip(frames: int = 8) -> bytes:
    photo = np.asarray(Image.open(io.BytesIO(shared_data(CROWD_PHOTO))).convert("RGB"))
    rendered, _ = pan_zoom_clip(photo, np.zeros((0, 4), np.float32), frames=frames, size=(320, 180))
    return encode_clip(rendered, fps=10, audio=True)


def _finished(platform, uid: str, timeout: float = 120) -> dict:
    def finished():
        task = platform.http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()
        return task if task["status"] in ("done", "error") else None

    return wait_for(finished, timeout=timeout, interval=0.2)


def _frames_of(data: bytes) -> tuple[str, int, bool]:
    with av.open(io.BytesIO(data)) as container:
        codec = container.streams.video[0].codec_context.name
        has_audio = bool(container.streams.audio)
        return codec, sum(1 for _ in container.decode(video=0)), has_audio


def test_a_short_clip_goes_to_done_with_a_playable_h264_mp4(platform):
    response = platform.http.post(
        f"{platform.gateway}/api/v1/faces/video", files={"video": ("clip.mp4", _clip())}, data={"keep_audio": "false"}, timeout=60
    )
    assert response.status_code == 201, response.text
    task = _finished(platform, response.json()["uid"])
    assert task["status"] == "done", task["error"]
    assert task["result_data"]["frames_done"] == task["result_data"]["frames_total"] == 8
    assert len(task["result_data"]["covered_per_frame"]) == 8
    download = platform.http.get(f"{platform.gateway}/api/v1/files/{task['result_files'][0]}", timeout=30)
    assert download.status_code == 200
    assert _frames_of(download.content) == ("h264", 8, False)


def _decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_clip_with_hide_numbers_has_its_card_number_hidden_in_every_frame_and_its_shop_sign_left(platform):
    image, boxes = street_scene()
    clip = encode_clip([np.asarray(image)] * 5, fps=10)
    response = platform.http.post(
        f"{platform.gateway}/api/v1/faces/video", files={"video": ("street.mp4", clip)}, data={"hide": "numbers"}, timeout=60
    )
    assert response.status_code == 201, response.text
    task = _finished(platform, response.json()["uid"])
    assert task["status"] == "done", task["error"]
    assert task["params"]["hide"] == "numbers"
    assert task["result_data"]["text_covered_per_frame"] == [1] * 5
    download = platform.http.get(f"{platform.gateway}/api/v1/files/{task['result_files'][0]}", timeout=30)
    before, after = _decoded(clip), _decoded(download.content)
    assert len(after) == 5
    for original, hidden in zip(before, after, strict=True):
        assert changed_fraction(Image.fromarray(original), hidden, boxes[CARD_NUMBER]) > 0.3
        assert changed_fraction(Image.fromarray(original), hidden, boxes[SHOP_WORD]) < 0.05


def test_a_truncated_video_is_400_through_the_gateway_and_makes_no_task(platform):
    before = platform.http.get(f"{platform.gateway}/api/v1/tasks", params={"limit": 200}, timeout=10).json()["total"]
    clip = _clip(4)
    response = platform.http.post(
        f"{platform.gateway}/api/v1/faces/video", files={"video": ("clip.mp4", clip[: len(clip) // 2])}, timeout=60
    )
    assert response.status_code == 400 and "video" in response.json()["detail"]
    after = platform.http.get(f"{platform.gateway}/api/v1/tasks", params={"limit": 200}, timeout=10).json()["total"]
    assert after == before


def test_a_video_put_under_the_face_inbox_is_anonymized_next_to_the_images(platform, s3, bucket):
    name = f"{uuid.uuid4().hex}/street clip"
    s3.put_object(Bucket=bucket, Key=f"inbox/faces/{name}.mp4", Body=_clip(6))
    output, sidecar = f"outputs/faces/{name}.mp4", f"outputs/faces/{name}.mp4.json"
    wait_for(lambda: object_exists(s3, bucket, sidecar), timeout=120)
    report = json.loads(s3.get_object(Bucket=bucket, Key=sidecar)["Body"].read())
    assert report["frames_done"] == 6 and len(report["detected_per_frame"]) == 6
    assert _frames_of(s3.get_object(Bucket=bucket, Key=output)["Body"].read()) == ("h264", 6, True)


def _task_count(platform) -> int:
    return platform.http.get(f"{platform.gateway}/api/v1/tasks", params={"limit": 200}, timeout=10).json()["total"]


def test_a_crafted_video_that_switches_to_8k_after_its_first_frame_ends_in_error_quickly_with_the_reason(platform):
    """GIVEN a WebM whose header and first frame are 16x16, its 20 keyframes after it 8K
    WHEN it is sent (the probe decodes its first frame only: 201)
    THEN its task ends in `error` at frame 2, naming the per-frame limit, in seconds."""
    response = platform.http.post(
        f"{platform.gateway}/api/v1/faces/video", files={"video": ("switch.webm", switching_size_webm())}, timeout=60
    )
    assert response.status_code == 201, response.text
    started = time.monotonic()
    task = _finished(platform, response.json()["uid"], timeout=60)
    elapsed = time.monotonic() - started
    assert task["status"] == "error", task
    assert "Frame 2 is 7680x4320" in task["error"] and "VISIONFN_FACE_VIDEO_MAX_PIXELS" in task["error"], task["error"]
    assert elapsed < 30, elapsed  # the 19 8K frames after it are never decoded
    print(f"8K switch: error {elapsed:.2f} s after 201: {task['error']}")


def test_a_crafted_video_declaring_60000_fps_is_413_at_submission_and_makes_no_task(platform):
    """3000 frames stamped 1/60000 s apart: 0.05 s, within VISIONFN_FACE_VIDEO_MAX_SECONDS; its
    frame rate is not (VISIONFN_FACE_VIDEO_MAX_FPS)."""
    before = _task_count(platform)
    started = time.monotonic()
    response = platform.http.post(
        f"{platform.gateway}/api/v1/faces/video", files={"video": ("fast.mp4", stamped_mp4(frames=3000, fps=60000))}, timeout=60
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 413, response.text
    assert "VISIONFN_FACE_VIDEO_MAX_FPS" in response.json()["detail"]
    assert _task_count(platform) == before
    print(f"60000 fps: 413 in {elapsed:.2f} s: {response.json()['detail']}")


def test_a_hostile_file_name_is_stored_without_its_control_characters(platform):
    """A NUL (Postgres JSONB refuses \\u0000) and other control characters are left out, as for
    defect images; the rest is kept as text (it is data, never markup here)."""
    name = "a\x00b\x1b<svg onload=alert(1)>.mp4"
    response = platform.http.post(
        f"{platform.gateway}/api/v1/faces/video", files={"video": (name, _clip(2))}, data={"keep_audio": "false"}, timeout=60
    )
    assert response.status_code == 201, response.text
    task = platform.http.get(f"{platform.gateway}/api/v1/tasks/{response.json()['uid']}", timeout=10).json()
    assert task["params"]["filename"] == "ab<svg onload=alert(1)>.mp4", task["params"]
    assert _finished(platform, task["uid"])["status"] == "done"

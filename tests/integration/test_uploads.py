"""What the cloud refuses is refused here, and large files go through the bucket as AWS users send
them: on the real stack, a photo over Lambda's synchronous payload is 413, an 8 MB video goes up
with a presigned POST and reaches `done` by its key, large downloads are a 303 to the bucket, and
keys that are not the caller's upload are refused before any decoder runs."""

from __future__ import annotations

import io
import json
import uuid

import av
import numpy as np
import pytest
import requests
from PIL import Image

from shared.platform.keys import ApiKeys
from shared.platform.settings import LAMBDA_SYNC_BODY_BYTES
from tests.integration.test_face_video import _clip, _finished

EIGHT_MB = 8 * 1024 * 1024


def _noise_video(min_bytes: int) -> bytes:
    """An H.264 mp4 of random noise (lossless, so it stays large) of at least ``min_bytes``."""
    rng = np.random.default_rng(7)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.options = 640, 480, "yuv420p", {"crf": "0"}
        size = 0
        while size < min_bytes:
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                size += packet.size
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _noise_png(min_bytes: int) -> bytes:
    side = int((min_bytes / 3) ** 0.5) + 64
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def big_video() -> bytes:
    return _noise_video(EIGHT_MB)


def _ticket(
    session: requests.Session, gateway: str, data: bytes, name: str = "clip.mp4", content_type: str = "video/mp4", size: int | None = None
) -> dict:
    response = session.post(
        f"{gateway}/api/v1/uploads", timeout=10, json={"filename": name, "content_type": content_type, "size": size or len(data)}
    )
    assert response.status_code == 201, response.text
    return response.json()


def _send(ticket: dict, data: bytes, content_type: str | None = None) -> requests.Response:
    """The presigned POST, its form's Content-Type changed to ``content_type`` when given."""
    fields = {**ticket["fields"], **({"Content-Type": content_type} if content_type else {})}
    return requests.post(ticket["url"], data=fields, timeout=60, files={"file": ("file", data)})


def _uploaded(platform, data: bytes, **ticket_options) -> str:
    ticket = _ticket(platform.http, platform.gateway, data, **ticket_options)
    assert _send(ticket, data).status_code == 204
    return ticket["key"]


def _other_owner(database_url) -> requests.Session:
    _record, key = ApiKeys(database_url).create(f"other-{uuid.uuid4().hex[:8]}", "test")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def _task_count(platform) -> int:
    return platform.http.get(f"{platform.gateway}/api/v1/tasks", params={"limit": 1}, timeout=10).json()["total"]


def test_a_photo_over_the_synchronous_limit_is_413_naming_the_ways_that_work(platform):
    photo = _noise_png(7 * 1024 * 1024)
    assert len(photo) > LAMBDA_SYNC_BODY_BYTES
    response = platform.http.post(f"{platform.gateway}/process", files={"image": ("big.png", photo)}, timeout=60)
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert str(LAMBDA_SYNC_BODY_BYTES) in detail
    assert "POST /api/v1/uploads" in detail and "inbox/faces/" in detail


def test_a_chunked_body_over_the_limit_is_413_too(platform):
    chunks = (b"x" * 65536 for _ in range(LAMBDA_SYNC_BODY_BYTES // 65536 + 2))
    response = platform.http.post(
        f"{platform.gateway}/process", data=chunks, timeout=60, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 413 and "POST /api/v1/uploads" in response.json()["detail"]


def test_an_8_mb_video_goes_through_an_upload_to_done_and_downloads_through_the_bucket(platform, big_video):
    assert len(big_video) > EIGHT_MB
    direct = platform.http.post(f"{platform.gateway}/api/v1/faces/video", files={"video": ("big.mp4", big_video)}, timeout=60)
    assert direct.status_code == 413  # what the cloud would refuse

    ticket = _ticket(platform.http, platform.gateway, big_video, name="my holiday.mp4")
    assert ticket["key"].startswith("incoming/") and ticket["key"].endswith("/my_holiday.mp4")
    too_much = _send(ticket, big_video + b"\0")  # more than declared: S3 refuses it
    assert too_much.status_code == 400 and "EntityTooLarge" in too_much.text
    other_type = _send(ticket, big_video, content_type="image/png")
    assert other_type.status_code == 403
    assert _send(ticket, big_video).status_code == 204

    response = platform.http.post(f"{platform.gateway}/api/v1/faces/video", data={"video_key": ticket["key"]}, timeout=60)
    assert response.status_code == 201, response.text
    task = _finished(platform, response.json()["uid"], timeout=240)
    assert task["status"] == "done", task["error"]
    assert task["params"]["filename"] == "my_holiday.mp4"

    (source,) = task["input_files"]
    redirected = platform.http.get(f"{platform.gateway}/api/v1/files/{source}", allow_redirects=False, timeout=30)
    assert redirected.status_code == 303
    served = requests.get(redirected.headers["Location"], timeout=60)  # no key: the link alone grants it
    assert served.status_code == 200 and served.content == big_video
    assert served.headers["Content-Disposition"].startswith("attachment")
    assert served.headers["Content-Type"] == "application/octet-stream"
    result = platform.http.get(f"{platform.gateway}/api/v1/files/{task['result_files'][0]}", timeout=60)
    assert result.status_code == 200 and len(result.content) > 0  # followed, or small enough to answer

    again = platform.http.post(f"{platform.gateway}/api/v1/faces/video", data={"video_key": ticket["key"]}, timeout=60)
    assert again.status_code == 404 and "already used" in again.json()["detail"]  # an upload is used once


def test_another_owners_upload_key_is_404_and_makes_no_task(platform, database_url):
    clip = _clip(4)
    key = _uploaded(platform, clip)
    stranger = _other_owner(database_url)
    before = _task_count(platform)
    response = stranger.post(f"{platform.gateway}/api/v1/faces/video", data={"video_key": key}, timeout=30)
    assert response.status_code == 404 and "of yours" in response.json()["detail"]
    assert _task_count(platform) == before
    mine = platform.http.post(f"{platform.gateway}/api/v1/faces/video", data={"video_key": key}, timeout=30)
    assert mine.status_code == 201, mine.text  # still there for its owner


@pytest.mark.parametrize(
    "key",
    [
        "incoming/../uploads/x/clip.mp4",
        "uploads/" + "0" * 32 + "/video.mp4",  # another prefix: a task's input
        "inbox/faces/clip.mp4",
        "results/" + "0" * 32 + "/anonymized.mp4",
        "/etc/passwd",
        "incoming/%2e%2e/clip.mp4",
        "incoming/" + "0" * 24 + "/" + "0" * 32 + "/clip.mp4",  # well formed, another owner's prefix
        "x" * 5000,
        "incoming/\x00/clip.mp4",
    ],
)
def test_keys_that_are_not_the_callers_uploads_are_404(platform, key):
    response = platform.http.post(f"{platform.gateway}/api/v1/faces/video", data={"video_key": key}, timeout=30)
    assert response.status_code == 404, response.text
    assert len(response.json()["detail"]) < 400


def test_a_key_never_uploaded_is_404_and_a_part_with_its_key_is_400(platform):
    ticket = _ticket(platform.http, platform.gateway, b"x" * 100)
    response = platform.http.post(f"{platform.gateway}/api/v1/faces/video", data={"video_key": ticket["key"]}, timeout=30)
    assert response.status_code == 404 and "never completed" in response.json()["detail"]
    both = platform.http.post(
        f"{platform.gateway}/api/v1/faces/video", data={"video_key": ticket["key"]}, files={"video": ("clip.mp4", _clip(2))}, timeout=30
    )
    assert both.status_code == 400 and "not both" in both.json()["detail"]


def test_an_upload_of_the_wrong_kind_is_415_before_any_decoder(platform):
    key = _uploaded(platform, b"\x89PNG not really", name="photo.png", content_type="image/png")
    response = platform.http.post(f"{platform.gateway}/api/v1/faces/video", data={"video_key": key}, timeout=30)
    assert response.status_code == 415 and "video" in response.json()["detail"]


def test_an_object_swapped_after_the_upload_is_judged_as_it_is_then(platform):
    """The form stays valid for 15 minutes: the same owner can replace the object. What a task
    takes is what is there when it is submitted, checked as a part is."""
    clip = _clip(4)
    ticket = _ticket(platform.http, platform.gateway, clip)
    assert _send(ticket, clip).status_code == 204
    assert _send(ticket, b"not a video at all" * 10).status_code == 204  # swapped for garbage
    before = _task_count(platform)
    response = platform.http.post(f"{platform.gateway}/api/v1/faces/video", data={"video_key": ticket["key"]}, timeout=30)
    assert response.status_code == 400 and "video" in response.json()["detail"]
    assert _task_count(platform) == before


def test_matching_takes_keys_for_each_file_field(platform):
    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(photo, "PNG")
    image = photo.getvalue()
    template = io.BytesIO()
    Image.open(io.BytesIO(image)).crop((40, 30, 80, 70)).save(template, "PNG")
    image_key = _uploaded(platform, image, name="scene.png", content_type="image/png")
    response = platform.http.post(
        f"{platform.gateway}/api/v1/match/template",
        timeout=30,
        data={"image_key": image_key},
        files={"template": ("t.png", template.getvalue())},
    )
    assert response.status_code == 201, response.text
    task = _finished(platform, response.json()["uid"])
    assert task["status"] == "done", task["error"]
    assert task["result_data"]["filtered_matches"] >= 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"filename": "a.mp4", "content_type": "video/mp4"},
        {"filename": "a.mp4", "content_type": "video/mp4", "size": 0},
        {"filename": "a.mp4", "content_type": "video/mp4", "size": -5},
        {"filename": "a.mp4", "content_type": "video/mp4", "size": "big"},
        {"filename": "a.mp4", "content_type": "text/html", "size": 10},
        {"filename": "a.svg", "content_type": "image/svg+xml;charset=utf-8", "size": 10},
        {"filename": "", "content_type": "video/mp4", "size": 10},
        {"filename": "a.mp4", "content_type": "video/mp4", "size": 10, "key": "uploads/mine"},
        [1, 2, 3],
    ],
)
def test_upload_requests_that_make_no_sense_are_4xx(platform, body):
    response = platform.http.post(f"{platform.gateway}/api/v1/uploads", json=body, timeout=10)
    assert response.status_code in (400, 422), response.text


def test_an_upload_larger_than_any_route_takes_is_413(platform):
    response = platform.http.post(
        f"{platform.gateway}/api/v1/uploads", timeout=10, json={"filename": "a.mp4", "content_type": "video/mp4", "size": 10**12}
    )
    assert response.status_code == 413


def test_hostile_file_names_become_a_safe_last_path_part(platform):
    for name, expected in (
        ("../../etc/passwd", "passwd"),
        ("a\x00b<svg onload=x>.mp4", "a_b_svg_onload_x_.mp4"),
        ("..", "upload"),
        ("C:\\Users\\me\\clip.mp4", "clip.mp4"),
    ):
        ticket = _ticket(platform.http, platform.gateway, b"x", name=name)
        assert ticket["key"].rsplit("/", 1)[1] == expected
        assert ticket["key"].count("/") == 3


def test_an_upload_needs_a_key(platform):
    response = requests.post(
        f"{platform.gateway}/api/v1/uploads", timeout=10, json={"filename": "a.mp4", "content_type": "video/mp4", "size": 10}
    )
    assert response.status_code == 401


def test_upload_requests_empty_corrupt_compressed_or_chunked_are_4xx(platform):
    import gzip

    url, headers = f"{platform.gateway}/api/v1/uploads", {"Content-Type": "application/json"}
    good = json.dumps({"filename": "a.mp4", "content_type": "video/mp4", "size": 10}).encode()
    assert platform.http.post(url, data=b"", headers=headers, timeout=10).status_code == 400
    assert platform.http.post(url, data=b'{"filename": "a.mp4", "size": ', headers=headers, timeout=10).status_code == 400
    zipped = platform.http.post(url, data=gzip.compress(good), headers={**headers, "Content-Encoding": "gzip"}, timeout=10)
    assert zipped.status_code == 415
    chunked = platform.http.post(url, data=iter([good[:7], good[7:]]), headers=headers, timeout=10)
    assert chunked.status_code == 201 and chunked.json()["key"].startswith("incoming/")  # a chunked body is read whole
    nested = platform.http.post(url, data=b"[" * 5000 + b"]" * 5000, headers=headers, timeout=10)
    assert nested.status_code == 400

"""Files over what one synchronous call carries (4,706,304 bytes), through the client and the
command on the real stack: sent through the bucket (POST /api/v1/uploads and its presigned POST)
by themselves, and downloaded through the 303 to a presigned link."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import av
import numpy as np
import pytest
from PIL import Image
from visionfn import ApiError, Client
from visionfn.models import INLINE_FILES_BYTES, SYNC_BODY_BYTES

from tests.integration.conftest import object_exists


def noise_video(frames: int) -> bytes:
    """640x480 random noise, lossless H.264: about 460 KB a frame (18 frames: 8.3 MB)."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(frames)
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=6)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"crf": "0"}
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def large_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("large") / "noise.mp4"
    path.write_bytes(noise_video(18))
    assert 8_000_000 < path.stat().st_size < 9_000_000
    return path


@pytest.fixture
def client(platform) -> Client:
    return Client(platform.gateway, platform.key)


def recording_uploads(client: Client) -> list[str]:
    """The keys of the uploads ``client`` makes, in order."""
    keys: list[str] = []
    upload = client.upload

    def recorded(file, content_type=None):
        keys.append(upload(file, content_type))
        return keys[-1]

    client.upload = recorded
    return keys


def test_an_8_mb_video_goes_through_the_bucket_ends_done_and_downloads_through_the_303(platform, client, large_video, s3, bucket, tmp_path):
    uploads = recording_uploads(client)

    task = client.wait(client.anonymize_video(large_video, mode="solid"), timeout=300)

    assert task.status == "done", task.error
    assert task.tool == "face_video" and task.result_data["frames_done"] == task.result_data["frames_total"] == 18
    (upload,) = uploads
    assert upload.startswith("incoming/") and upload.endswith("/noise.mp4")
    assert not object_exists(s3, bucket, upload)  # used once: removed when the task took it
    (source,) = task.input_files
    assert source.startswith(f"uploads/{task.uid}/")

    answer = platform.http.get(f"{platform.gateway}/api/v1/files/{source}", allow_redirects=False, timeout=30)
    assert answer.status_code == 303 and answer.content == b""
    link = urlsplit(answer.headers["Location"])
    assert link.netloc != urlsplit(platform.gateway).netloc and "Signature=" in link.query

    path = client.download(source, tmp_path)
    assert path.read_bytes() == large_video.read_bytes()
    assert client.file_bytes(source) == large_video.read_bytes()
    (result,) = task.result_files
    with av.open(io.BytesIO(client.file_bytes(result))) as container:
        assert sum(1 for _ in container.decode(video=0)) == 18


def test_a_small_video_is_still_sent_in_the_request(client):
    uploads = recording_uploads(client)
    video = noise_video(2)
    assert len(video) < INLINE_FILES_BYTES
    task = client.wait(client.anonymize_video(("small.mp4", video)), timeout=120)
    assert task.status == "done" and uploads == []


def test_template_matching_of_an_image_over_the_limit(client):
    rng = np.random.default_rng(7)
    scene = Image.fromarray(rng.integers(0, 256, (1200, 1400, 3), dtype=np.uint8))
    image, template = io.BytesIO(), io.BytesIO()
    scene.save(image, format="PNG", compress_level=1)
    scene.crop((700, 500, 760, 560)).save(template, format="PNG")
    assert len(image.getvalue()) > SYNC_BODY_BYTES
    uploads = recording_uploads(client)

    task = client.wait(
        client.match_template(("scene.png", image.getvalue()), ("patch.png", template.getvalue()), threshold=0.99), timeout=120
    )

    assert task.status == "done", task.error
    assert task.result_data["filtered_matches"] == 1 and len(uploads) == 1 and uploads[0].endswith("/scene.png")


def test_a_synchronous_route_refuses_a_large_photo_naming_the_ways_that_work(client):
    with pytest.raises(ApiError) as refused:
        client.anonymize(("big.jpg", os.urandom(SYNC_BODY_BYTES + 1)))
    assert refused.value.status == 413
    assert "POST /api/v1/uploads" in str(refused.value) and "inbox/faces/" in str(refused.value)


def test_the_command_anonymizes_a_large_video_as_any_other(platform, large_video, tmp_path):
    env = {**os.environ, "VISIONFN_URL": platform.gateway, "VISIONFN_API_KEY": platform.key, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    result = subprocess.run(
        [sys.executable, "-m", "visionfn", "faces", "anonymize", str(large_video), "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 anonymized" in result.stdout
    with av.open(str(tmp_path / "out" / "noise.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 18

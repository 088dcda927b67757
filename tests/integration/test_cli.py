"""The `visionfn` command (client/visionfn) against the real stack, run as a user runs it."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SHARED_DATA, shared_data

WIDER = SHARED_DATA / "faces" / "wider_subset" / "images"
NEU = SHARED_DATA / "defects" / "neu_det" / "images"
MESSI = "matching/opencv_samples/messi5.jpg"


def visionfn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visionfn", *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def env(platform, tmp_path) -> dict[str, str]:
    """The platform's URL and key from the environment; no user configuration."""
    return {**os.environ, "VISIONFN_URL": platform.gateway, "VISIONFN_API_KEY": platform.key, "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_a_folder_of_photos_is_anonymized_and_a_corrupt_one_reported(env, tmp_path, platform):
    photos = tmp_path / "photos"
    photos.mkdir()
    chosen = sorted(WIDER.glob("*/*.jpg"))[:4]
    for path in chosen:
        (photos / path.name).write_bytes(path.read_bytes())
    (photos / "zz_corrupt.jpg").write_bytes(chosen[0].read_bytes()[:600])  # a truncated JPEG
    (photos / "notes.txt").write_text("not a picture: not taken from a folder")

    result = visionfn(env, "faces", "anonymize", str(photos), "--out", str(tmp_path / "blurred"), "--mode", "pixelate")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "4 of 5 anonymized" in result.stdout
    assert re.search(r"zz_corrupt\.jpg: 400: .*(not a supported image|truncated|corrupt)", result.stderr, re.IGNORECASE), result.stderr
    written = sorted(path.name for path in (tmp_path / "blurred").iterdir())
    assert written == sorted(path.name for path in chosen)
    faces = int(re.search(r"\((\d+) faces\)", result.stdout).group(1))
    expected = sum(
        platform.http.post(f"{platform.gateway}/detect", files={"image": path.read_bytes()}, timeout=60).json()["total_count"]
        for path in chosen
    )
    assert faces == expected > 0
    for path in chosen:  # each output is a real picture of the same size
        assert Image.open(tmp_path / "blurred" / path.name).size == Image.open(path).size


@pytest.fixture
def scene_and_ball(tmp_path) -> tuple[str, str]:
    """messi5.jpg and the ball cut out of it, as files."""
    messi = shared_data(MESSI)
    (tmp_path / "messi5.jpg").write_bytes(messi)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(messi)).crop((200, 50, 260, 110)).save(buffer, format="PNG")
    (tmp_path / "ball.png").write_bytes(buffer.getvalue())
    return str(tmp_path / "messi5.jpg"), str(tmp_path / "ball.png")


def test_template_match_waits_prints_and_downloads(env, tmp_path, scene_and_ball):
    result = visionfn(
        env, "match", "template", *scene_and_ball, "-p", "threshold=0.9", "-p", "max_results=5", "--out", str(tmp_path / "results")
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"template +done +matches=1 best_score=1\.0", result.stdout), result.stdout
    assert sorted(path.name for path in (tmp_path / "results").iterdir()) == ["heatmap.png", "matches.png"]
    uid = result.stdout.split()[0]

    listed = visionfn(env, "tasks", "list")
    assert listed.returncode == 0 and uid in listed.stdout
    watched = visionfn(env, "tasks", "watch", uid)
    assert watched.returncode == 0 and f"{uid}  template done" in watched.stdout


def test_chain_match_and_a_bad_parameter_gives_the_apis_message(env, tmp_path, scene_and_ball):
    steps = '[{"tool":"template","params":{"threshold":0.99,"method":"TM_SQDIFF_NORMED"}},{"tool":"template","params":{"threshold":0.9}}]'

    chain = visionfn(env, "match", "chain", *scene_and_ball, "--steps", steps, "--out", str(tmp_path / "chain"))
    assert chain.returncode == 0, chain.stdout + chain.stderr
    assert re.search(r"chain +done +found at step 1/2", chain.stdout), chain.stdout
    assert (tmp_path / "chain" / "step-1" / "matches.png").is_file()

    bad = visionfn(env, "match", "template", *scene_and_ball, "-p", "threshold=5")
    assert bad.returncode == 1
    assert "422: body.threshold: Input should be less than or equal to 1" in bad.stderr


def test_the_config_file_and_a_wrong_key(platform, tmp_path):
    config = tmp_path / "config" / "visionfn" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{platform.gateway}"\nkey = "{platform.key}"\n')
    env = {key: value for key, value in os.environ.items() if key not in ("VISIONFN_URL", "VISIONFN_API_KEY")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    assert visionfn(env, "settings", "get", "template").returncode == 0
    refused = visionfn({**env, "VISIONFN_API_KEY": "vfn_" + "x" * 43}, "tasks", "list")
    assert refused.returncode == 1 and "401: The API key is not valid" in refused.stderr


def test_inspect_a_batch_writes_annotated_pictures_and_reports_a_bad_file(env, tmp_path, platform):
    batch = tmp_path / "batch"
    batch.mkdir()
    chosen = [sorted(NEU.glob(f"{label}_*.jpg"))[0] for label in ("crazing", "inclusion", "scratches")]
    for path in chosen:
        (batch / path.name).write_bytes(path.read_bytes())
    (batch / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    before = platform.http.get(f"{platform.gateway}/api/data/search", params={"limit": 1}, timeout=10).json()["total"]

    result = visionfn(env, "inspect", str(batch), "--out", str(tmp_path / "annotated"), "--batch", "2", "-v")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 of 4 inspected" in result.stdout
    assert "broken.png: 400 Invalid image data for broken.png" in result.stderr
    assert sorted(path.name for path in (tmp_path / "annotated").iterdir()) == sorted(f"{Path(p).stem}.png" for p in chosen)
    assert Image.open(tmp_path / "annotated" / f"{chosen[0].stem}.png").format == "PNG"
    after = platform.http.get(f"{platform.gateway}/api/data/search", params={"limit": 1}, timeout=10).json()["total"]
    assert after == before + 3


def test_a_video_in_the_folder_becomes_a_face_video_task_and_its_mp4(env, tmp_path):
    import av

    from tests.integration.test_face_video import _clip

    media = tmp_path / "media"
    media.mkdir()
    (media / "street.mp4").write_bytes(_clip(6))
    (media / "photo.jpg").write_bytes(sorted(WIDER.glob("*/*.jpg"))[0].read_bytes())

    result = visionfn(env, "faces", "anonymize", str(media), "--out", str(tmp_path / "out"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 anonymized" in result.stdout
    with av.open(str(tmp_path / "out" / "street.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 6
    assert (tmp_path / "out" / "photo.jpg").is_file()

"""The ``visionfn`` command (client/visionfn/cli.py) against a scripted HTTP server: every file
done and the failed ones reported, the key, folders and parameters, videos and their progress line."""

from __future__ import annotations

import io

import pytest
from visionfn.cli import main
from visionfn.commands import collect_images, parse_params

from tests.unit.client.scripted_server import TASK


def test_the_cli_does_every_file_and_reports_the_failed_one(server, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.png", "c.jpg"):
        (photos / name).write_bytes(b"x")
    (photos / "notes.txt").write_text("not a picture")
    server.then(200, b"A", X_Faces_Count="2", Content_Type="image/jpeg")
    server.then(200, b"B", X_Faces_Count="1", Content_Type="image/png")
    server.then(400, {"detail": "The image is truncated or corrupt"})
    code = main(["--url", server.url, "--key", "k", "faces", "anonymize", str(photos), "--out", str(tmp_path / "out")])
    assert code == 1
    out, err = capsys.readouterr()
    assert "2 of 3 anonymized" in out and "3 faces" in out
    assert "c.jpg: 400: The image is truncated or corrupt" in err
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.jpg", "b.png"]


def test_the_cli_needs_a_key(server, capsys):
    assert main(["--url", server.url, "tasks", "list"]) == 2
    assert "no API key" in capsys.readouterr().err


def test_the_cli_finds_the_local_key_in_the_checkout(server, tmp_path, monkeypatch, capsys):
    checkout = tmp_path / "checkout"
    (checkout / ".run").mkdir(parents=True)
    (checkout / "template.yaml").write_text("Resources: {}\n")
    (checkout / ".run" / "api-key").write_text("vfn_local\n")
    (checkout / "photos").mkdir()
    monkeypatch.delenv("VISIONFN_RUN_DIR")
    monkeypatch.chdir(checkout / "photos")  # anywhere in the checkout
    server.then(200, {"tasks": [], "total": 0, "offset": 0, "limit": 20})
    assert main(["--url", server.url, "tasks", "list"]) == 0
    assert server.requests[0]["headers"]["Authorization"] == "Bearer vfn_local"
    assert f"using the local platform's, {checkout / '.run' / 'api-key'}" in capsys.readouterr().err
    assert main(["--url", "http://api.example:8888", "tasks", "list"]) == 2  # not a local URL: not its key
    assert "no API key" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # outside the checkout
    assert main(["--url", server.url, "tasks", "list"]) == 2


def test_cli_helpers(tmp_path):
    assert parse_params(["threshold=0.9", "use_grayscale=false", "method=TM_SQDIFF"]) == {
        "threshold": 0.9,
        "use_grayscale": False,
        "method": "TM_SQDIFF",
    }
    with pytest.raises(SystemExit):
        parse_params(["threshold"])
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.png").write_bytes(b"")
    (tmp_path / "Z.JPG").write_bytes(b"")
    (tmp_path / "a.txt").write_bytes(b"")
    assert collect_images([str(tmp_path)]) == [tmp_path / "Z.JPG"]
    with pytest.raises(SystemExit):
        collect_images([str(tmp_path / "missing")])


def test_the_cli_sends_a_video_as_a_task_and_writes_its_mp4(server, tmp_path, capsys):
    (tmp_path / "street.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    uid = "c" * 32
    video_task = {**TASK, "uid": uid, "tool": "face_video"}
    server.then(201, video_task).then(200, {**video_task, "status": "processing", "result_data": {"frames_done": 1, "frames_total": 2}})
    server.then(200, {**video_task, "status": "done", "result_files": [f"results/{uid}/anonymized.mp4"], "result_data": {"faces_max": 4}})
    server.then(200, b"MP4")
    code = main(
        [
            "--url",
            server.url,
            "--key",
            "k",
            "faces",
            "anonymize",
            str(tmp_path / "street.mp4"),
            "--out",
            str(tmp_path / "out"),
            "--mode",
            "solid",
        ]
    )
    assert code == 0, capsys.readouterr()
    assert (tmp_path / "out" / "street.mp4").read_bytes() == b"MP4"
    assert server.requests[0]["path"] == "/api/v1/faces/video" and b'name="video"; filename="street.mp4"' in server.requests[0]["body"]
    assert b'name="mode"\r\n\r\nsolid' in server.requests[0]["body"] and b"draw_boxes" not in server.requests[0]["body"]
    assert "1 of 1 anonymized" in capsys.readouterr().out


def test_the_progress_line_says_what_a_video_waits_for_without_counting_it(server, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    (tmp_path / "street.mp4").write_bytes(b"v" * 2_500_000)
    video_task = {**TASK, "tool": "face_video"}
    server.then(201, video_task).then(200, {**video_task, "status": "processing"})
    server.then(200, {**video_task, "status": "done", "result_files": [f"results/{TASK['uid']}/anonymized.mp4"]}).then(200, b"MP4")
    assert (
        main(["--url", server.url, "--key", "k", "faces", "anonymize", str(tmp_path / "street.mp4"), "--out", str(tmp_path / "out")]) == 0
    )
    frames = [frame.strip() for frame in terminal.getvalue().split("\r") if frame.strip()]
    assert [frame.split("] ")[1].split(" ", 1)[0] for frame in frames] == ["0/1"] * 3 + ["1/1"] * 2
    assert [frame.rsplit("s ", 1)[-1] for frame in frames[:3]] == [
        "street.mp4: sending 2.5 MB",
        "street.mp4: processing",
        "street.mp4: done",
    ]

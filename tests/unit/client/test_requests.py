"""The Python client (client/visionfn) against a scripted HTTP server on 127.0.0.1: retries,
errors, the key, configuration, waiting and downloads."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from visionfn import ApiError, Client, Task, VisionfnError, load_config

from tests.unit.client.scripted_server import TASK, client_of


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_get_is_retried_on_busy_answers_then_succeeds(server, status):
    server.then(status, {"detail": "busy"}).then(status, {"detail": "busy"}).then(200, {"total": 0, "tasks": []})
    client, sleeps = client_of(server)
    page = client.tasks()
    assert page.total == 0
    assert len(server.requests) == 3
    assert len(sleeps) == 2 and sleeps[1] > 0


def test_backoff_grows_and_retry_after_is_honoured(server):
    server.then(503, {"detail": "x"}).then(503, {"detail": "x"}).then(503, {"detail": "x"}).then(429, b"", Retry_After="3")
    server.then(200, TASK)
    client, sleeps = client_of(server, backoff=1.0, max_backoff=100)
    client.task("a" * 32)
    # jitter keeps each delay between half and all of backoff * 2**attempt
    assert 0.5 <= sleeps[0] <= 1 and 1 <= sleeps[1] <= 2 and 2 <= sleeps[2] <= 4
    assert sleeps[3] == 3


def test_retries_give_up_with_the_apis_message(server):
    for _ in range(3):
        server.then(503, {"detail": "The queue is unavailable"})
    client, sleeps = client_of(server, retries=2)
    with pytest.raises(ApiError) as caught:
        client.tasks()
    assert caught.value.status == 503 and caught.value.detail == "The queue is unavailable"
    assert len(server.requests) == 3 and len(sleeps) == 2


def test_a_post_is_not_retried_on_504_but_is_on_503(server):
    server.then(504, {"detail": "Function match_template did not answer within its timeout of 60 s"})
    client, _ = client_of(server)
    with pytest.raises(ApiError, match="504: Function match_template did not answer"):
        client.match_template(b"img", b"tpl")
    assert len(server.requests) == 1

    server.then(503, {"detail": "busy"}).then(201, TASK)
    task = client.match_template(("scene.png", b"img"), ("icon.png", b"tpl"), threshold=0.9, use_grayscale=False)
    assert task.uid == "a" * 32 and task.status == "queued"
    first, second = server.requests[1], server.requests[2]
    assert len(first["body"]) == len(second["body"]) and b"\r\n\r\nimg\r\n" in second["body"]  # the same files sent again
    assert b'name="threshold"\r\n\r\n0.9' in second["body"] and b'name="use_grayscale"\r\n\r\nfalse' in second["body"]
    assert b'filename="icon.png"' in second["body"]


def test_4xx_is_not_retried_and_a_422_reads_as_its_locations(server):
    server.then(
        422,
        {
            "detail": [
                {"type": "less_than_equal", "loc": ["body", "threshold"], "msg": "Input should be less than or equal to 1", "input": "5"}
            ]
        },
    )
    client, sleeps = client_of(server)
    with pytest.raises(ApiError) as caught:
        client.match_template(b"a", b"b", threshold=5)
    assert str(caught.value) == "422: body.threshold: Input should be less than or equal to 1"
    assert sleeps == [] and len(server.requests) == 1


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    client = Client(f"http://127.0.0.1:{port}", "k", retries=3, sleep=sleeps.append, timeout=2)
    with pytest.raises(VisionfnError, match=f"127.0.0.1:{port}"):
        client.tasks()
    assert len(sleeps) == 3
    with pytest.raises(VisionfnError):
        client.match_template(b"a", b"b")  # a refused connection sent nothing: a POST is retried too
    assert len(sleeps) == 6


def test_the_key_is_sent_as_bearer(server):
    server.then(200, {"tool": "feature", "params": {"detector": "ORB"}})
    client, _ = client_of(server)
    assert client.get_settings("feature") == {"detector": "ORB"}
    assert server.requests[0]["headers"]["Authorization"] == "Bearer vfn_test"
    assert server.requests[0]["path"] == "/api/v1/settings/feature"


def test_configuration_order_arguments_env_file_default(tmp_path, monkeypatch):
    config = tmp_path / "config" / "visionfn" / "config.toml"
    assert load_config().url == "http://127.0.0.1:8888" and load_config().key is None
    config.parent.mkdir(parents=True)
    config.write_text('url = "http://files.example:1/"\nkey = "vfn_from_file"\n')
    assert load_config() == load_config("http://files.example:1", "vfn_from_file")
    monkeypatch.setenv("VISIONFN_API_KEY", "vfn_from_env")
    monkeypatch.setenv("VISIONFN_URL", "http://env.example:2")
    assert (load_config().url, load_config().key) == ("http://env.example:2", "vfn_from_env")
    assert load_config("http://arg:3", "vfn_arg").key == "vfn_arg"
    config.write_text("url = [unclosed")
    with pytest.raises(VisionfnError, match="not valid TOML"):
        load_config()


def test_wait_polls_until_finished_and_reports_each_status(server):
    server.then(200, TASK).then(200, {**TASK, "status": "processing"}).then(200, {**TASK, "status": "processing"})
    server.then(
        200, {**TASK, "status": "done", "result_files": [f"results/{'a' * 32}/matches.png"], "result_data": {"filtered_matches": 1}}
    )
    client, sleeps = client_of(server)
    seen = []
    task = client.wait("a" * 32, on_update=lambda current: seen.append(current.status))
    assert task.status == "done" and task.result_data == {"filtered_matches": 1}
    assert seen == ["queued", "processing", "done"]
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)


def test_download_results_keeps_chain_step_folders(server, tmp_path):
    uid = "b" * 32
    server.then(200, b"PNG1").then(200, b"PNG2")
    client, _ = client_of(server)
    done = Task.from_json(
        {**TASK, "uid": uid, "status": "done", "result_files": [f"results/{uid}/step-1/matches.png", f"results/{uid}/step-2/matches.png"]}
    )
    paths = client.download_results(done, tmp_path / "out")
    assert [path.relative_to(tmp_path / "out").as_posix() for path in paths] == ["step-1/matches.png", "step-2/matches.png"]
    assert paths[0].read_bytes() == b"PNG1" and paths[1].read_bytes() == b"PNG2"
    assert server.requests[0]["path"] == f"/api/v1/files/results/{uid}/step-1/matches.png"


def test_inspect_returns_the_entries_of_a_batch_without_one_good_image(server):
    entries = [{"name": "a.png", "error": "Invalid image data for a.png", "details": "not an image", "status": 400}]
    server.then(400, {"error": "Invalid image data for a.png", "details": "not an image", "results": entries})
    client, _ = client_of(server)
    assert client.inspect([("a.png", b"junk")]) == entries
    server.then(400, {"error": "No images provided", "details": "send images"})
    with pytest.raises(ApiError, match="No images provided: send images"):
        client.inspect([])


def test_anonymize_reads_the_face_count_header(server):
    server.then(200, b"\xff\xd8jpeg", X_Faces_Count="3", Content_Type="image/jpeg")
    client, _ = client_of(server)
    result = client.anonymize(("p.jpg", b"x"), mode="pixelate", draw_boxes=True)
    assert (result.faces_count, result.content, result.extension) == (3, b"\xff\xd8jpeg", ".jpg")
    assert b'name="mode"\r\n\r\npixelate' in server.requests[0]["body"]


def test_client_package_depends_only_on_requests():
    pyproject = (Path(__file__).resolve().parents[3] / "client" / "pyproject.toml").read_text()
    assert 'dependencies = ["requests>=2.28"]' in pyproject

"""The Python client (client/visionfn) against a scripted HTTP server on 127.0.0.1: retries,
errors, configuration, waiting and downloads; and the CLI's folder handling."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
from collections import deque
from pathlib import Path

import pytest
from visionfn import ApiError, Client, Task, VisionfnError, load_config
from visionfn.cli import collect_images, main, parse_params
from visionfn.models import INLINE_FILES_BYTES, SYNC_BODY_BYTES, bucket_files, upload_content_type


class Scripted(http.server.ThreadingHTTPServer):
    """Answers each request with the next scripted (status, body, headers); records what came."""

    daemon_threads = True

    def __init__(self) -> None:
        self.script: deque[tuple[int, bytes | dict | list, dict[str, str]]] = deque()
        self.requests: list[dict] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def then(self, status: int, body: bytes | dict | list = b"", **headers: str) -> Scripted:
        self.script.append((status, body, headers))
        return self


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        status, payload, headers = self.server.script.popleft() if self.server.script else (500, {"detail": "unscripted"}, {})
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        if not isinstance(payload, bytes):
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    running = Scripted()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    """No developer's own configuration leaks in (nor the key `make up` wrote in this checkout)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("VISIONFN_RUN_DIR", str(tmp_path / "no-run"))
    for name in ("VISIONFN_URL", "VISIONFN_API_KEY", "VISIONFN_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def client_of(server: Scripted, **options) -> tuple[Client, list[float]]:
    sleeps: list[float] = []
    return Client(server.url, "vfn_test", sleep=sleeps.append, **options), sleeps


TASK = {
    "uid": "a" * 32,
    "status": "queued",
    "tool": "template",
    "params": {},
    "input_files": [],
    "thumbnails": [],
    "result_files": [],
    "result_data": None,
    "error": None,
    "attempts": 0,
}


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


def test_client_package_depends_only_on_requests():
    pyproject = (Path(__file__).resolve().parents[2] / "client" / "pyproject.toml").read_text()
    assert 'dependencies = ["requests>=2.28"]' in pyproject


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


# --- large files: through the bucket above the synchronous limit, downloads by a 303 ---------


@pytest.fixture
def bucket():
    """A second host, as the bucket is: what reaches it shows whether the API key went along."""
    running = Scripted()
    yield running
    running.shutdown()
    running.server_close()


def ticket(bucket: Scripted, key: str, content_type: str) -> dict:
    return {
        "key": key,
        "url": f"{bucket.url}/visionfn-data",
        "expires_at": "2026-12-06T03:00:00Z",
        "fields": {"Content-Type": content_type, "key": key, "AWSAccessKeyId": "test", "policy": "eyJ9", "signature": "c2ln"},
    }


def test_the_inline_limit_leaves_room_for_the_rest_of_the_form():
    assert SYNC_BODY_BYTES == 4_706_304 and SYNC_BODY_BYTES - 256 * 1024 < INLINE_FILES_BYTES < SYNC_BODY_BYTES


@pytest.mark.parametrize(
    ("sizes", "through_bucket"),
    [
        ({"video": 1000}, set()),
        ({"video": INLINE_FILES_BYTES}, set()),  # exactly the limit still goes in the request
        ({"video": INLINE_FILES_BYTES + 1}, {"video"}),
        ({"image": 3_000_000, "template": 2_000_000}, {"image"}),  # each fits, not both: the larger goes
        ({"image": 100, "template": 9_000_000}, {"template"}),
        ({"image": 6_000_000, "template": 5_000_000}, {"image", "template"}),
    ],
)
def test_files_go_through_the_bucket_largest_first_until_the_rest_fit(sizes, through_bucket):
    assert bucket_files(sizes) == through_bucket


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("street.mp4", "video/mp4"),
        ("clip.MOV", "video/quicktime"),
        ("scene.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("model.ply", "application/octet-stream"),
        ("upload", "application/octet-stream"),
        ("notes.pdf", "application/octet-stream"),
    ],
)
def test_an_upload_declares_the_names_type_or_octet_stream(name, content_type):
    assert upload_content_type(name) == content_type


def test_a_video_below_the_limit_is_sent_in_the_request(server, bucket):
    server.then(201, {**TASK, "tool": "face_video"})
    client, _ = client_of(server)
    client.anonymize_video(("street.mp4", b"v" * INLINE_FILES_BYTES), mode="solid")
    assert [request["path"] for request in server.requests] == ["/api/v1/faces/video"]
    assert b'name="video"; filename="street.mp4"' in server.requests[0]["body"]
    assert b"video_key" not in server.requests[0]["body"] and bucket.requests == []


def test_a_video_above_the_limit_goes_through_the_bucket_and_the_form_names_its_key(server, bucket, tmp_path):
    video = tmp_path / "street.mp4"
    video.write_bytes(b"v" * (INLINE_FILES_BYTES + 1))
    key = "incoming/" + "1" * 24 + "/" + "2" * 32 + "/street.mp4"
    server.then(201, ticket(bucket, key, "video/mp4")).then(201, {**TASK, "tool": "face_video"})
    bucket.then(204)
    client, _ = client_of(server)

    task = client.anonymize_video(video, mode="solid")

    assert task.tool == "face_video"
    asked, submitted = server.requests
    assert asked["path"] == "/api/v1/uploads" and json.loads(asked["body"]) == {
        "filename": "street.mp4",
        "content_type": "video/mp4",
        "size": INLINE_FILES_BYTES + 1,
    }
    (sent,) = bucket.requests
    assert (sent["method"], sent["path"]) == ("POST", "/visionfn-data")
    assert "Authorization" not in sent["headers"] and "X-API-Key" not in sent["headers"]
    order = [sent["body"].index(f'name="{name}"'.encode()) for name in ("Content-Type", "key", "policy", "signature", "file")]
    assert order == sorted(order)  # the policy's fields first, the file last
    assert b'name="file"; filename="street.mp4"\r\nContent-Type: video/mp4\r\n\r\nvvv' in sent["body"]
    assert submitted["path"] == "/api/v1/faces/video" and submitted["headers"]["Authorization"] == "Bearer vfn_test"
    assert f'name="video_key"\r\n\r\n{key}'.encode() in submitted["body"] and b'name="mode"\r\n\r\nsolid' in submitted["body"]
    assert b'name="video";' not in submitted["body"] and len(submitted["body"]) < 2000


def test_a_chain_sends_only_its_large_file_through_the_bucket(server, bucket):
    key = "incoming/" + "1" * 24 + "/" + "3" * 32 + "/scene.png"
    server.then(201, ticket(bucket, key, "image/png")).then(201, {**TASK, "tool": "chain"})
    bucket.then(204)
    client, _ = client_of(server)
    client.match_chain(("scene.png", b"i" * 5_000_000), ("icon.png", b"tpl"), [{"tool": "template"}])
    submitted = server.requests[1]["body"]
    assert f'name="image_key"\r\n\r\n{key}'.encode() in submitted
    assert b'name="template"; filename="icon.png"' in submitted and b'name="image";' not in submitted
    assert b'name="steps"\r\n\r\n[{"tool": "template"}]' in submitted


@pytest.mark.parametrize(
    ("submit", "fields"),
    [
        (lambda client, big: client.match_template(big, ("t.png", b"t")), ["image_key", "template"]),
        (lambda client, big: client.match_feature(("q.png", b"q"), big), ["query_image", "train_image_key"]),
        (lambda client, big: client.match_surface(big, ("scene.ply", b"ply")), ["model_file_key", "scene_file"]),
    ],
)
def test_every_matching_submit_switches_the_same_way(server, bucket, submit, fields):
    server.then(201, ticket(bucket, "k", "application/octet-stream")).then(201, TASK)
    bucket.then(204)
    client, _ = client_of(server)
    submit(client, ("big.ply", b"x" * (INLINE_FILES_BYTES + 1)))
    assert server.requests[0]["path"] == "/api/v1/uploads" and len(bucket.requests) == 1
    body = server.requests[1]["body"]
    assert [field for field in fields if f'name="{field}"'.encode() in body] == fields


def test_a_refused_upload_reads_as_the_buckets_error_and_nothing_is_submitted(server, bucket):
    server.then(201, ticket(bucket, "k", "video/mp4"))
    bucket.then(
        400,
        b"<?xml version='1.0' encoding='utf-8'?>\n<Error><Code>EntityTooLarge</Code><Message>Your proposed "
        b"upload exceeds the maximum allowed size</Message></Error>",
        Content_Type="application/xml",
    )
    client, _ = client_of(server)
    with pytest.raises(ApiError, match=r"400: the bucket \(127\.0\.0\.1:\d+\) refused it: EntityTooLarge: Your proposed upload"):
        client.anonymize_video(("street.mp4", b"v" * (INLINE_FILES_BYTES + 1)))
    assert [request["path"] for request in server.requests] == ["/api/v1/uploads"]


def test_a_large_download_follows_the_303_to_the_bucket_without_the_key(server, bucket, tmp_path):
    uid = "d" * 32
    link = f"{bucket.url}/visionfn-data/uploads/{uid}/street.mp4?X-Amz-Signature=abc&response-content-disposition=attachment"
    server.then(303, b"", Location=link).then(303, b"", Location=link)
    bucket.then(200, b"MP4" * 1000).then(200, b"MP4" * 1000)
    client, _ = client_of(server)
    client.session.headers["X-API-Key"] = "vfn_test"  # a key in any header stays with the API

    assert client.file_bytes(f"uploads/{uid}/street.mp4") == b"MP4" * 1000
    path = client.download(f"uploads/{uid}/street.mp4", tmp_path)

    assert path == tmp_path / "street.mp4" and path.read_bytes() == b"MP4" * 1000
    assert [request["path"] for request in server.requests] == [f"/api/v1/files/uploads/{uid}/street.mp4"] * 2
    assert [request["path"] for request in bucket.requests] == [link.removeprefix(bucket.url)] * 2
    for request in bucket.requests:
        assert {"Authorization", "X-API-Key"}.isdisjoint(request["headers"]), request["headers"]


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

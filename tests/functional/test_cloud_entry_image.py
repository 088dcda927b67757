"""The image's command (infra/entry.sh) as the image runs it: awslambdaric against a stand-in of the
Lambda Runtime API, functions-framework elsewhere."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from shared.platform.settings import PROJECT_ROOT
from shared.platform.tasks import TaskRepository
from tests.conftest import load_event
from tests.functional.lambda_events import Event, http_event, new_owner

# --- the image's command (infra/entry.sh): awslambdaric on Lambda, functions-framework elsewhere ---


def _entry_script(env: dict[str, str], log: Path) -> subprocess.Popen:
    """``sh infra/entry.sh`` as the image runs it (its ENV: TARGET, PYTHONPATH), with this virtualenv's
    python and functions-framework."""
    image_env = {
        "TARGET": "handle",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with log.open("wb") as output:
        return subprocess.Popen(
            ["sh", "infra/entry.sh"], cwd=PROJECT_ROOT, env={**os.environ, **image_env, **env}, stdout=output, stderr=subprocess.STDOUT
        )


def _stopped(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class RuntimeApi(ThreadingHTTPServer):
    """The two calls of the Lambda Runtime API that awslambdaric makes per invocation: ``next``
    hands out ``events`` one by one (then waits), ``response``/``error`` are recorded."""

    daemon_threads = True

    def __init__(self, events: list[Event]) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)
        self.events, self.results, self.answered = list(events), [], threading.Condition()

    def wait_for(self, count: int, timeout: float = 60) -> list[tuple[str, dict]]:
        with self.answered:
            self.answered.wait_for(lambda: len(self.results) >= count, timeout)
        return self.results


class _RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RuntimeApi

    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:  # /2018-06-01/runtime/invocation/next
        if not self.server.events:
            time.sleep(30)  # no more invocations: the process is ended meanwhile
            return
        request_id = str(uuid.uuid4())
        body = json.dumps(self.server.events.pop(0)).encode()
        self.send_response(200)
        for name, value in (
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000)),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:visionfn-test"),
            ("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700"),
            ("Content-Length", str(len(body))),
        ):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # .../invocation/<id>/response or .../error
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        with self.server.answered:
            self.server.results.append((self.path.rsplit("/", 1)[1], body))
            self.server.answered.notify_all()


def test_on_lambda_awslambdaric_runs_the_entry_for_a_request_and_fails_a_refused_event(platform_env, database_url, tmp_path):
    owner = new_owner()
    uid = TaskRepository(database_url).create("template", {}, [], owner=owner).uid
    request, refused = http_event("GET", f"/api/v1/tasks/{uid}", owner), load_event("scheduled_event")
    with RuntimeApi([request, refused]) as api:
        threading.Thread(target=api.serve_forever, daemon=True).start()
        process = _entry_script(
            {"FUNCTION": "tasks", "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}"}, tmp_path / "runtime.log"
        )
        try:
            results = api.wait_for(2)
        finally:
            _stopped(process)
            with contextlib.suppress(Exception):
                api.shutdown()
    output = (tmp_path / "runtime.log").read_text(errors="replace")
    assert [kind for kind, _ in results] == ["response", "error"], output
    response, error = results[0][1], results[1][1]
    assert response["statusCode"] == 200 and json.loads(response["body"])["uid"] == uid
    assert error["errorType"] == "EventRefused" and "answered 404" in error["errorMessage"], error  # tasks takes no events


def test_elsewhere_the_same_command_serves_http_with_functions_framework(platform_env, tmp_path):
    from tests.platform import free_port_block

    port = free_port_block(1, start=31000)
    process = _entry_script({"FUNCTION": "docs", "PORT": str(port)}, tmp_path / "serve.log")
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(requests.ConnectionError):
                answer = requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5)
            time.sleep(0.2)
    finally:
        _stopped(process)
    assert answer is not None and answer.status_code == 200, (tmp_path / "serve.log").read_text(errors="replace")
    assert "/api/v1/tasks" in answer.json()["paths"]

"""One id per job, from the gateway to the webhook; JSON log lines; metrics as Prometheus text.

GIVEN the real platform, WHEN a template task is submitted with ``X-Request-Id``, THEN the answer,
the task, the log lines of the gateway, the submitting function and the worker, the Task Finished
event and the webhook delivery all carry that id, and ``make logs`` (``python -m infra.logs``)
prints the job's lines in time order."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from PIL import Image

from shared.platform.keys import ApiKeys
from shared.platform.settings import PROJECT_ROOT
from tests.conftest import shared_data, task_events_queue
from tests.integration.conftest import wait_for
from tests.webhook_receiver import Receiver

MESSI = "matching/opencv_samples/messi5.jpg"


@pytest.fixture
def owner_http(platform, database_url) -> requests.Session:
    _record, key = ApiKeys(database_url).create(f"obs-{uuid.uuid4().hex[:10]}", "observability tests")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def _template_files() -> dict:
    messi = shared_data(MESSI)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(messi)).crop((200, 50, 260, 110)).save(buffer, format="PNG")
    return {"image": ("messi5.jpg", messi), "template": ("ball.png", buffer.getvalue())}


def _log_records(platform, name: str) -> list[dict]:
    """The log's complete lines (the last piece may be a line still being written)."""
    return [json.loads(line) for line in platform.log(name).split("\n")[:-1]]


def _finished_event(aws, platform, uid: str, seconds: float = 60) -> dict:
    sqs, url = aws("sqs"), task_events_queue(aws, platform)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            detail = json.loads(message["Body"])["detail"]
            if detail["uid"] == uid:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return detail
            # another task's: left hidden a while, so that the next receive reaches further
    raise AssertionError(f"no Task Finished event of {uid} within {seconds} s")


def _make_logs(platform, job_id: str) -> list[dict]:
    """What `make logs ID=<job_id> JSON=1` prints for this platform."""
    shown = subprocess.run(
        [sys.executable, "-m", "infra.logs", job_id, "--json"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "VISIONFN_RUN_DIR": str(platform.run_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return [json.loads(line) for line in shown.stdout.splitlines()]


def test_one_request_id_from_the_gateway_to_the_webhook(platform, aws, owner_http):
    request_id = f"abc-123-{uuid.uuid4().hex[:8]}"
    with Receiver() as receiver:
        hook = owner_http.post(f"{platform.gateway}/api/v1/webhooks", json={"url": receiver.url + "/hook"}, timeout=30)
        assert hook.status_code == 201, hook.text
        submitted = owner_http.post(
            f"{platform.gateway}/api/v1/match/template", files=_template_files(), headers={"X-Request-Id": request_id}, timeout=30
        )
        assert submitted.status_code == 201, submitted.text
        assert submitted.headers["X-Request-Id"] == request_id
        uid = submitted.json()["uid"]
        [delivery] = receiver.wait_for(1)
    assert delivery.headers["x-request-id"] == request_id
    event = _finished_event(aws, platform, uid)
    assert event["request_id"] == request_id and event["status"] == "done"
    task = owner_http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=30).json()
    assert task["request_id"] == request_id

    # the gateway's line, the submission's and the worker's, each a JSON object naming the id
    def lines_of(name: str) -> list[dict]:
        return [record for record in _log_records(platform, name) if record.get("request_id") == request_id]

    wait_for(lambda: lines_of("notifier"))
    arrival, answer = [line for line in lines_of("gateway") if line["message"].startswith("POST /api/v1/match/template")]
    assert answer["status"] == 201 and arrival["timestamp"] <= answer["timestamp"]
    template_lines = lines_of("match_template")
    assert any(line.get("route") == "/api/v1/match/template" and line.get("owner") for line in template_lines)  # the submission
    assert any(line.get("task_uid") == uid and line.get("tool") == "template" for line in template_lines)  # the worker's end

    # make logs ID=...: every line of the job in time order, from every process it went through
    records = _make_logs(platform, request_id)
    functions = [record["function"] for record in records]
    assert functions[0] == "gateway"
    assert {"gateway", "match_template", "notifier"} <= set(functions)
    assert [record["timestamp"] for record in records] == sorted(record["timestamp"] for record in records)
    assert functions.index("notifier") > functions.index("match_template")
    assert _make_logs(platform, uid) == records  # the task uid finds the same job


def test_a_tasks_timeline_lists_submission_queueing_each_attempt_and_its_end(platform, owner_http):
    submitted = owner_http.post(f"{platform.gateway}/api/v1/match/template", files=_template_files(), timeout=30).json()
    uid = submitted["uid"]
    wait_for(lambda: owner_http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=30).json()["status"] == "done", timeout=60)
    timeline = owner_http.get(f"{platform.gateway}/api/v1/tasks/{uid}/timeline", timeout=30).json()
    assert timeline["uid"] == uid and timeline["request_id"] == submitted["request_id"]
    assert [(event["event"], event["attempt"]) for event in timeline["events"]] == [
        ("submitted", None),
        ("queued", None),
        ("started", 1),
        ("done", 1),
    ]
    other = requests.get(f"{platform.gateway}/api/v1/tasks/{uid}/timeline", headers={"Authorization": f"Bearer {platform.key}"}, timeout=30)
    assert other.status_code == 404  # another owner's task


def test_metrics_are_prometheus_text_of_the_callers_own_requests_and_tasks(platform, owner_http):
    submitted = owner_http.post(f"{platform.gateway}/api/v1/match/template", files=_template_files(), timeout=30).json()
    wait_for(
        lambda: owner_http.get(f"{platform.gateway}/api/v1/tasks/{submitted['uid']}", timeout=30).json()["status"] == "done", timeout=60
    )

    def template_tasks(session: requests.Session) -> float:
        text = session.get(f"{platform.gateway}/metrics", timeout=30).text
        lines = [line for line in text.splitlines() if line.startswith('visionfn_tasks_total{tool="template"}')]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    answer = owner_http.get(f"{platform.gateway}/metrics", timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    assert "# TYPE visionfn_requests_total counter" in text
    assert 'visionfn_requests_total{function="match_template",route="/api/v1/match/template"} 1.0' in text  # this owner's one
    assert 'visionfn_task_run_time_milliseconds_count{tool="template"} 1.0' in text
    assert wait_for(lambda: template_tasks(owner_http) == 1.0)
    assert requests.get(f"{platform.gateway}/metrics", timeout=30).status_code == 401  # keyed


def test_every_line_of_every_log_is_a_json_object(platform):
    logs = sorted(Path(platform.run_dir, "logs").glob("*.log"))
    assert {"gateway", "event_bridge", "match_template", "notifier", "localstack"} <= {path.stem for path in logs}
    for path in logs:
        written = path.read_text(errors="replace").split("\n")[:-1]  # the last piece: a line still being written, or nothing
        for number, line in enumerate(written, 1):
            record = json.loads(line)
            assert isinstance(record, dict) and {"timestamp", "level", "message"} <= set(record), f"{path.name}:{number}: {line[:200]}"

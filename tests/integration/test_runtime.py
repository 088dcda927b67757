"""Serverless semantics on the real stack: leases that follow the work, timeouts, the outbox,
and a crash (kill -9) that costs one invocation, never the platform."""

import json
import os
import signal
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import requests

from shared.platform.faults import WORK_SECONDS_METADATA
from shared.platform.messaging import Outbox
from shared.platform.storage import ObjectStore
from shared.platform.tasks import TaskRepository
from tests.conftest import shared_data, task_events_queue
from tests.integration.conftest import wait_for

MESSI = "matching/opencv_samples/messi5.jpg"
BOX = "matching/opencv_samples/box.png"
BOX_IN_SCENE = "matching/opencv_samples/box_in_scene.png"


def _task(platform, uid: str) -> dict:
    return platform.http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()


def _finished(platform, uid: str, timeout: float = 90) -> dict:
    return wait_for(lambda: (task := _task(platform, uid))["status"] in ("done", "error") and task, timeout, 0.1)


def _queue_task(platform, aws, database_url, tool: str, work_seconds: float = 0.0) -> str:
    """A task whose job is committed in the outbox and sent, as a submission leaves it; its
    work lasts ``work_seconds`` longer than the real matching (fault injection)."""
    sqs, events = aws("sqs"), aws("events")
    outputs = platform.state["outputs"]
    tasks = TaskRepository(database_url, Outbox(sqs, events, outputs["EventBusName"], database_url))
    store = ObjectStore(platform.state["bucket"], aws("s3"))
    uid = uuid.uuid4().hex
    if tool == "template":
        files = {"image.jpg": shared_data(MESSI), "template.png": _crop(shared_data(MESSI))}
    else:
        files = {"box.png": shared_data(BOX), "scene.png": shared_data(BOX_IN_SCENE)}
    keys = [f"uploads/{uid}/{name}" for name in files]
    queue = outputs[f"{tool.capitalize()}JobsQueueUrl"]
    tasks.create(tool, {"detector": "ORB"} if tool == "feature" else {}, keys, uid=uid, job_queue=queue, owner="local")
    metadata = {WORK_SECONDS_METADATA: str(work_seconds)} if work_seconds else None
    for key, data in zip(keys, files.values(), strict=True):
        store.put(key, data, metadata=metadata)
    tasks.dispatch(uid)
    return uid


def _crop(jpeg: bytes) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).crop((200, 50, 260, 110)).save(buffer, format="PNG")
    return buffer.getvalue()


def _finished_events(aws, platform, uids: set[str], seconds: float) -> dict[str, list[dict]]:
    """The "Task Finished" events of ``uids`` that reach the task-events queue within ``seconds``."""
    sqs, url = aws("sqs"), task_events_queue(aws, platform)
    found: dict[str, list[dict]] = {uid: [] for uid in uids}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            detail = json.loads(message["Body"])["detail"]
            if detail["uid"] in found:
                found[detail["uid"]].append(detail)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_task_longer_than_its_lease_runs_once_and_a_short_one_is_not_held_up(platform, aws, database_url):
    long = _queue_task(platform, aws, database_url, "template", work_seconds=8)  # 4 leases of 2 s
    wait_for(lambda: _task(platform, long)["status"] == "processing")
    short = _queue_task(platform, aws, database_url, "template")
    assert _finished(platform, short)["status"] == "done"
    assert _task(platform, long)["status"] == "processing"  # the short one did not wait for it
    task = _finished(platform, long)
    assert task["status"] == "done" and task["attempts"] == 1
    events = _finished_events(aws, platform, {long}, seconds=4)[long]
    assert [event["status"] for event in events] == ["done"]  # announced once


def test_work_past_the_functions_timeout_is_stopped_and_not_retried(platform, aws, database_url):
    uid = _queue_task(platform, aws, database_url, "feature", work_seconds=60)
    task = _finished(platform, uid)
    assert task["status"] == "error" and task["error"].startswith("Timed out after 15 s")
    assert task["attempts"] == 1  # no retry storm
    assert _task(platform, uid)["attempts"] == 1


def test_a_submission_killed_between_its_row_and_its_job_is_recovered(platform, aws, database_url):
    """The row and its job were committed; the process died before sending the job."""
    outputs = platform.state["outputs"]
    tasks = TaskRepository(database_url, Outbox(aws("sqs"), aws("events"), outputs["EventBusName"], database_url))
    store = ObjectStore(platform.state["bucket"], aws("s3"))
    uid = uuid.uuid4().hex
    keys = [f"uploads/{uid}/image.jpg", f"uploads/{uid}/template.png"]
    tasks.create("template", {}, keys, uid=uid, job_queue=outputs["TemplateJobsQueueUrl"], owner="local")
    for key, data in zip(keys, [shared_data(MESSI), _crop(shared_data(MESSI))], strict=True):
        store.put(key, data)
    # ... no dispatch: the sweeper finds the unsent job once it is older than the grace period
    task = _finished(platform, uid)
    assert task["status"] == "done" and task["result_data"]["matches"][0]["x"] == 200
    assert "relayed job" in platform.log("sweeper")


# --- chaos -----------------------------------------------------------------------------------------


def _finished_at(task: dict) -> float:
    return datetime.fromisoformat(task["updated_at"]).timestamp()


def _processes(platform) -> dict:
    return json.loads((platform.run_dir / "state.json").read_text())["processes"]


def _descendants(pid: int, depth: int = 99) -> list[int]:
    """The processes below ``pid`` (depth 1: its children, gunicorn's worker; then its work processes)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    for _ in range(depth):
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _back(platform, function: str, restarts: int) -> None:
    def answering():
        process = _processes(platform)[function]
        if process["restarts"] < restarts:
            return False
        port = int(platform.state["functions"][function].rsplit(":", 1)[1])
        try:
            return requests.post(f"http://127.0.0.1:{port}/events", json={}, timeout=2).status_code < 500
        except requests.RequestException:
            return False

    wait_for(answering, timeout=60, interval=0.2)


def test_chaos_kill_9_costs_one_invocation_never_the_platform(platform, aws, database_url):
    """While 20 tasks of two tools run and submissions keep arriving, kill -9 a worker process of
    match_template, then every process of it, three times: every task ends `done` and is announced,
    the killed work is redone, the other functions answer throughout, and it is back."""
    uids = [_queue_task(platform, aws, database_url, tool, work_seconds=2) for tool in ("template", "feature") * 10]
    stop, failures, submitted = threading.Event(), [], []

    def keep_submitting_and_asking():
        while not stop.is_set():
            try:
                answer = platform.http.post(
                    f"{platform.gateway}/api/v1/match/feature",
                    files={"query_image": ("box.png", shared_data(BOX)), "train_image": ("scene.png", shared_data(BOX_IN_SCENE))},
                    data={"detector": "ORB"},
                    timeout=30,
                )
                if answer.status_code == 201:
                    submitted.append(answer.json()["uid"])
                else:
                    failures.append(("submit feature", answer.status_code, answer.text))
                for path in ("/health", "/api/v1/tasks?limit=1"):
                    status = platform.http.get(f"{platform.gateway}{path}", timeout=30).status_code
                    if status != 200:
                        failures.append((path, status, ""))
            except requests.RequestException as error:
                failures.append(("request", 0, str(error)))
            stop.wait(0.3)

    client = threading.Thread(target=keep_submitting_and_asking, daemon=True)
    client.start()
    kills = []
    try:
        restarts = _processes(platform)["match_template"]["restarts"]
        for _ in range(3):
            wait_for(lambda: any(_task(platform, uid)["status"] == "processing" for uid in uids[::2]), timeout=60)
            master = _processes(platform)["match_template"]["pid"]
            (worker,) = _descendants(master, depth=1)
            in_flight = [uid for uid in uids[::2] if _task(platform, uid)["status"] == "processing"]
            os.kill(worker, signal.SIGKILL)  # one worker process
            kills.append((time.time(), in_flight))
            wait_for(lambda: any(_task(platform, uid)["status"] == "processing" for uid in uids[::2]), timeout=60)
            in_flight = [uid for uid in uids[::2] if _task(platform, uid)["status"] == "processing"]
            for pid in [master, *_descendants(master)]:  # every process of the function
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            kills.append((time.time(), in_flight))
            restarts += 1
            _back(platform, "match_template", restarts)
        finished = {uid: _finished(platform, uid, timeout=120) for uid in uids}
    finally:
        stop.set()
        client.join(timeout=60)
    finished.update({uid: _finished(platform, uid, timeout=120) for uid in submitted})
    assert {uid: task["status"] for uid, task in finished.items() if task["status"] != "done"} == {}
    assert failures == []
    assert _processes(platform)["match_template"]["restarts"] == restarts
    # each kill stopped the work in flight (what had not finished by then: a task seen working
    # may finish between that look and the kill), and that work was done again
    stopped = [[uid for uid in in_flight if _finished_at(finished[uid]) > killed_at] for killed_at, in_flight in kills]
    assert sum(map(len, stopped)) >= len(kills) // 2, stopped  # most kills stopped something
    assert {uid: finished[uid]["attempts"] for uids_stopped in stopped for uid in uids_stopped if finished[uid]["attempts"] < 2} == {}
    events = _finished_events(aws, platform, set(uids), seconds=5)
    # each announced (at least once: a worker killed between its commit and marking its event
    # sent leaves the event to the sweeper, which sends it again), and only as `done`
    assert {uid: found for uid, found in events.items() if not found} == {}
    assert {event["status"] for found in events.values() for event in found} == {"done"}

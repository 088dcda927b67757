"""What the matching functions' tests send and read: pictures, point clouds and the template
form, a task stored as a submission leaves it, the jobs a queue holds and the task-finished events
that reached the tests' queue."""

import io
import json
import time
import uuid

import numpy as np
from PIL import Image

from shared.platform.storage import get_object_store
from tests.conftest import task_events_queue

BOX = "matching/opencv_samples/box.png"
BOX_IN_SCENE = "matching/opencv_samples/box_in_scene.png"
PARASAUROLOPHUS = "3d/opencv_surface_matching/parasaurolophus_6700.ply"


def _png(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _ply(with_normals: bool = True, bad_value: str | None = None) -> bytes:
    names = ["x", "y", "z", "nx", "ny", "nz"] if with_normals else ["x", "y", "z"]
    header = "ply\nformat ascii 1.0\nelement vertex 2\n" + "".join(f"property float {n}\n" for n in names)
    rows = ["0 0 0 0 0 1", f"1 {bad_value or 0} 0 0 0 1"]
    return (header + "end_header\n" + "\n".join(" ".join(r.split()[: len(names)]) for r in rows) + "\n").encode()


def _queued_jobs(aws, queue_url) -> list[dict]:
    messages = aws("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def _stored_task(tasks, tool: str, params: dict, files: dict[str, bytes], metadata: dict | None = None) -> str:
    """A queued task whose inputs are in the bucket, as a submission leaves it."""
    uid = uuid.uuid4().hex
    keys = [f"uploads/{uid}/{name}" for name in files]
    tasks.create(tool, params, keys, uid=uid)
    for key, data in zip(keys, files.values(), strict=True):
        get_object_store().put(key, data, metadata=metadata)
    return uid


def _task_events(aws, platform, uid: str, timeout: float = 10) -> list[dict]:
    """The "Task Finished" events for ``uid`` that reached the task-events queue."""
    sqs, url = aws("sqs"), task_events_queue(aws, platform)
    deadline, found = time.monotonic() + timeout, []
    while time.monotonic() < deadline and not found:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["uid"] == uid:
                found.append(event)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def _template_form() -> dict:
    return {"image": (io.BytesIO(_png(30, 30)), "i.png"), "template": (io.BytesIO(_png(5, 5)), "t.png")}

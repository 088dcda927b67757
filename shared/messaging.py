"""Messages between functions: work handed to a queue, task-finished events on the bus."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import ServiceUnavailable
from shared.tasks import TaskOut

EVENT_SOURCE = "visionfn"
TASK_FINISHED = "Task Finished"


class JobQueue:
    """An SQS queue a function hands its tasks to; its worker gets them as an SQS batch."""

    def __init__(self, client: Any, queue_url: str | None) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, body: str) -> None:
        if not self.queue_url:
            raise ServiceUnavailable("No job queue is configured (VISIONFN_JOB_QUEUE_URL)")
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (BotoCoreError, ClientError) as error:
            raise ServiceUnavailable(f"Could not queue the task: {error}") from error


def task_finished_detail(task: TaskOut) -> dict[str, Any]:
    """What subscribers (the notifier) get: the webhook payload's fields, plus the error."""
    return {
        "uid": task.uid,
        "status": task.status,
        "tool": task.tool,
        "result_files": task.result_files,
        "result_data": task.result_data,
        "error": task.error,
    }


class TaskEvents:
    """Publishes "Task Finished" on the EventBridge bus (at least once per finished task)."""

    def __init__(self, client: Any, bus: str) -> None:
        self.client = client
        self.bus = bus

    def task_finished(self, task: TaskOut) -> None:
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": TASK_FINISHED,
            "Detail": json.dumps(task_finished_detail(task), default=str),
            "EventBusName": self.bus,
        }
        try:
            response = self.client.put_events(Entries=[entry])
        except (BotoCoreError, ClientError) as error:
            raise ServiceUnavailable(f"Could not publish the task-finished event: {error}") from error
        if response.get("FailedEntryCount"):
            raise ServiceUnavailable(f"EventBridge refused the task-finished event: {response['Entries']}")

"""Webhooks' models: a URL refusal in pydantic's shape, the registration body, and the task-finished
event as EventBridge puts it on the queue."""

from __future__ import annotations

import pytest

from shared.platform.errors import RequestValidationFailed
from shared.webhooks.models import TaskFinishedEvent, WebhookCreate


def test_a_url_refusal_is_one_problem_in_pydantics_shape():
    error = RequestValidationFailed.problem("url_refused", ["body", "url"], "URL is not allowed: ...", "http://x/")
    assert (error.status, error.body()) == (
        422,
        {"detail": [{"type": "url_refused", "loc": ["body", "url"], "msg": "URL is not allowed: ...", "input": "http://x/"}]},
    )


def test_the_registration_body_is_validated():
    assert WebhookCreate.model_validate({"url": "https://x.example/h"}).events == ["task.done", "task.error"]
    assert WebhookCreate.model_validate({"url": "https://x.example/h", "events": ["task.error", "task.error"]}).events == ["task.error"]
    for body in (
        {},
        {"url": "ftp://x"},
        {"url": "https://x.example", "secret": ""},
        {"url": "https://x.example", "events": []},
        {"url": "https://x.example", "events": ["task.started"]},
        {"url": "https://x.example", "extra": 1},
        {"url": "https://x.example", "secret": "a\x00b"},
        {"url": "https://x.example", "description": "\ud800"},
        {"url": 42},
    ):
        with pytest.raises(ValueError):
            WebhookCreate.model_validate(body)


def test_the_task_finished_event_model_reads_what_eventbridge_puts_on_the_queue():
    event = TaskFinishedEvent.model_validate_json(
        '{"version":"0","id":"e1","detail-type":"Task Finished","source":"visionfn","account":"000000000000",'
        '"time":"2024-01-15T10:30:00Z","region":"us-east-1","resources":[],"detail":{"uid":"abc","owner":"o",'
        '"status":"error","tool":"surface","result_files":[],"result_data":null,"error":"boom"}}'
    )
    assert (event.detail.event, event.detail.event_id) == ("task.error", "abc.error")

"""The HTTP and queue entry points every matching function serves (one function per tool)."""

from __future__ import annotations

import flask

from shared.http import FunctionRoutes, json_response
from shared.matching.defaults import ToolDefaults
from shared.matching.service import MatchService, Upload
from shared.matching.tools import tool_class
from shared.messaging import JobQueue, TaskEvents
from shared.settings import get_settings
from shared.storage import aws_client, get_object_store
from shared.tasks import TaskRepository


def match_function_routes(tool_name: str) -> FunctionRoutes:
    """POST /api/v1/match/<tool> queues a task (201); POST /events (the job queue) does it."""
    settings = get_settings()
    tool = tool_class(tool_name)(settings)
    service = MatchService(
        tool,
        get_object_store(),
        TaskRepository(),
        ToolDefaults(),
        JobQueue(aws_client("sqs", settings), settings.job_queue_url),
        TaskEvents(aws_client("events", settings), settings.event_bus),
        settings,
    )
    routes = FunctionRoutes()

    @routes.post(f"/api/v1/match/{tool_name}")
    def submit(request: flask.Request) -> flask.Response:
        uploads = {
            spec.field: Upload(storage.filename, storage.read())
            for spec in tool.inputs
            if (storage := request.files.get(spec.field)) is not None
        }
        return json_response(service.submit(request.form.to_dict(), uploads), status=201)

    routes.events(service.handle_job)
    return routes

"""GET /api/v1/tasks, GET /api/v1/tasks/{uid} and GET /api/v1/files/{key} (downloads): the
caller's own tasks and their files only."""

import flask

from shared.access import caller
from shared.http import FunctionRoutes, json_response, parse_query
from shared.images import sniffed_content_type
from shared.logs import configure_logging
from shared.storage import get_object_store, task_of_file
from shared.tasks import TaskListQuery, TaskRepository

configure_logging("tasks")
routes = FunctionRoutes()
tasks = TaskRepository()


@routes.get("/api/v1/tasks")
def list_tasks(request: flask.Request) -> flask.Response:
    query = parse_query(TaskListQuery, request)
    return json_response(tasks.page(query.offset, query.limit, owner=caller(request.headers)))


@routes.get("/api/v1/tasks/<uid>")
def get_task(request: flask.Request, uid: str) -> flask.Response:
    return json_response(tasks.get(uid, owner=caller(request.headers)))


@routes.get("/api/v1/files/<path:key>")
def download_file(request: flask.Request, key: str) -> flask.Response:
    """A task file of the caller's, as an attachment of its sniffed type (an uploaded HTML or
    SVG can never run as a page of the API's origin)."""
    tasks.get(task_of_file(key), owner=caller(request.headers))  # 404 unless it is theirs
    stored = get_object_store().get(key)
    name = key.rsplit("/", 1)[-1]
    return flask.Response(
        stored.data,
        mimetype=sniffed_content_type(stored.data),
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"},
    )


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

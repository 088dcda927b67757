"""GET /api/v1/tasks, GET /api/v1/tasks/{uid} and GET /api/v1/files/{key} (downloads)."""

import flask

from shared.http import FunctionRoutes, json_response, parse_query
from shared.logs import configure_logging
from shared.settings import get_settings
from shared.storage import download_url, get_object_store
from shared.tasks import TaskListQuery, TaskRepository

configure_logging("tasks")
routes = FunctionRoutes()
tasks = TaskRepository()


@routes.get("/api/v1/tasks")
def list_tasks(request: flask.Request) -> flask.Response:
    query = parse_query(TaskListQuery, request)
    return json_response(tasks.page(query.offset, query.limit))


@routes.get("/api/v1/tasks/<uid>")
def get_task(_request: flask.Request, uid: str) -> flask.Response:
    return json_response(tasks.get(uid))


@routes.get("/api/v1/files/<path:key>")
def download_file(_request: flask.Request, key: str) -> flask.Response:
    """307 to a presigned URL of the object (task inputs, thumbnails, results)."""
    url = download_url(get_object_store(), key, get_settings().presigned_url_seconds)
    return flask.redirect(url, code=307)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

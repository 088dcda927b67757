"""GET /api/v1/tasks and GET /api/v1/tasks/{uid}."""

import flask

from shared.http import FunctionRoutes, json_response, parse_query
from shared.logs import configure_logging
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


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

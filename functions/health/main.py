"""GET /health: the state of the database, the bucket and the queues."""

import flask

from shared.faces.settings import get_face_settings
from shared.health import platform_health
from shared.platform.http import FunctionRoutes, json_response
from shared.platform.logs import configure_logging
from shared.platform.storage import get_object_store

configure_logging("health")
routes = FunctionRoutes()


@routes.get("/health")
def health(_request: flask.Request) -> flask.Response:
    report = platform_health(get_face_settings(), get_object_store())
    return json_response(report, status=200 if report.status == "ok" else 503)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

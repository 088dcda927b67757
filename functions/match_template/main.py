"""POST /api/v1/match/template queues a template-matching task; its job queue's events do the work."""

import flask

from shared.logs import configure_logging
from shared.matching.function import match_function_routes

configure_logging("match_template")
routes = match_function_routes("template")


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

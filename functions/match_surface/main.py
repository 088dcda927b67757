"""POST /api/v1/match/surface queues a surface-matching task; its job queue's events do the work."""

import flask

from shared.logs import configure_logging
from shared.matching.function import match_function_routes

configure_logging("match_surface")
routes = match_function_routes("surface")


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

"""POST /api/v1/match/surface queues a surface-matching task (201); its job queue's events
(POST /events: jobs, and dead-lettered jobs) do the work."""

import flask

from shared.matching.function import match_service
from shared.matching.settings import get_matching_settings
from shared.platform.access import caller
from shared.platform.http import FunctionRoutes, json_response, submission
from shared.platform.logs import configure_logging

configure_logging("match_surface")
service = match_service("surface")
routes = FunctionRoutes()
routes.events(service.handle_job)


@routes.post("/api/v1/match/surface")
def submit(request: flask.Request) -> flask.Response:
    owner = caller(request.headers)
    sent = submission(request, owner, service.file_fields, get_matching_settings().max_upload_bytes)
    task = service.submit(owner, sent.form, sent.files)
    sent.done()
    return json_response(task, status=201)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

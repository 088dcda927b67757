"""POST /api/v1/faces/video queues a face-anonymization task for a video (201); its job queue's
events (POST /events: jobs, and dead-lettered jobs) anonymize every frame."""

import flask

from shared.access import caller
from shared.faces.video_tasks import FaceVideoOptions, video_tasks
from shared.http import FunctionRoutes, json_response, parse_form, uploaded_file
from shared.logs import configure_logging

configure_logging("face_video")
service = video_tasks()
routes = FunctionRoutes()
routes.events(service.handle_job)


@routes.post("/api/v1/faces/video")
def submit(request: flask.Request) -> flask.Response:
    owner = caller(request.headers)
    options = parse_form(FaceVideoOptions, request)
    upload = request.files.get("video")
    task = service.submit(owner, options, uploaded_file(request, "video"), upload.filename if upload else None)
    return json_response(task, status=201)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

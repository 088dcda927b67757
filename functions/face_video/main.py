"""POST /api/v1/faces/video queues a face-anonymization task for a video (201); its job queue's
events (POST /events: jobs, and dead-lettered jobs) anonymize every frame."""

import flask

from shared.faces.settings import get_face_settings
from shared.faces.video_tasks import FaceVideoOptions, video_tasks
from shared.platform.access import caller
from shared.platform.errors import BadRequest
from shared.platform.http import FunctionRoutes, json_response, parse_fields, submission
from shared.platform.logs import configure_logging

configure_logging("face_video")
service = video_tasks()
routes = FunctionRoutes()
routes.events(service.handle_job)


@routes.post("/api/v1/faces/video")
def submit(request: flask.Request) -> flask.Response:
    owner = caller(request.headers)
    sent = submission(request, owner, {"video": "video"}, get_face_settings().face_video_max_bytes)
    options = parse_fields(FaceVideoOptions, sent.form)
    if "video" not in sent.files:
        raise BadRequest(
            "Missing the video: send the file field 'video' (multipart/form-data) or 'video_key', "
            "the key of an upload (POST /api/v1/uploads)"
        )
    task = service.submit(owner, options, sent.files["video"].data, sent.files["video"].filename)
    sent.done()
    return json_response(task, status=201)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

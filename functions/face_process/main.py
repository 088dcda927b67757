"""POST /process: the anonymized picture (or its JSON report); upload trigger inbox/faces/."""

import flask

from shared.faces.inbox import FaceInbox
from shared.faces.privacy import FaceOptions, FacePrivacy, FaceTextReport
from shared.faces.settings import get_face_settings
from shared.faces.video_tasks import video_tasks
from shared.platform.batch import for_each_created_object
from shared.platform.http import FunctionRoutes, json_response, parse_form, uploaded_file, wants_json
from shared.platform.logs import configure_logging
from shared.platform.storage import get_object_store

configure_logging("face_process")
privacy = FacePrivacy(get_face_settings())
inbox = FaceInbox(privacy, get_object_store(), get_face_settings(), videos=video_tasks(privacy))
routes = FunctionRoutes()
routes.events(for_each_created_object(inbox.handle_upload))


@routes.post("/process")
def process(request: flask.Request) -> flask.Response:
    options = parse_form(FaceOptions, request)
    report, image = privacy.anonymize(uploaded_file(request, "image"), options)
    if wants_json(request):
        return json_response(report)
    headers = {
        "X-Faces-Count": str(report.total_count),
        "X-Processing-Time-Ms": str(report.processing_time_ms),
        "X-Detector": report.detector,
    }
    if isinstance(report, FaceTextReport):  # hide named text or numbers
        headers["X-Text-Count"] = str(report.text_count)
    return flask.Response(image.data, mimetype=image.content_type, headers=headers)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

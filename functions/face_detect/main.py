"""POST /detect: the faces found, as JSON; no pixel is changed."""

import flask

from shared.faces.privacy import FaceOptions, FacePrivacy
from shared.faces.settings import get_face_settings
from shared.platform.http import FunctionRoutes, json_response, parse_form, uploaded_file
from shared.platform.logs import configure_logging

configure_logging("face_detect")
privacy = FacePrivacy(get_face_settings())
routes = FunctionRoutes()


@routes.post("/detect")
def detect(request: flask.Request) -> flask.Response:
    options = parse_form(FaceOptions, request)
    return json_response(privacy.detect(uploaded_file(request, "image"), options))


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

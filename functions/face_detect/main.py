"""POST /detect: the faces found, as JSON; no pixel is changed."""

import flask

from shared.faces.privacy import FaceOptions, FacePrivacy
from shared.platform.http import FunctionRoutes, json_response, parse_form, uploaded_file
from shared.platform.logs import configure_logging
from shared.platform.settings import get_settings

configure_logging("face_detect")
privacy = FacePrivacy(get_settings())
routes = FunctionRoutes()


@routes.post("/detect")
def detect(request: flask.Request) -> flask.Response:
    options = parse_form(FaceOptions, request)
    return json_response(privacy.detect(uploaded_file(request, "image"), options))


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

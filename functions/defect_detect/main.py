"""POST /api/detect: inspect a batch of images, one answer per image in order, every inspected
image recorded; upload trigger inbox/defects/."""

import flask

from shared.defects.inbox import DefectInbox
from shared.defects.inspection import IMAGES_FIELD, uploaded_images
from shared.defects.model import DefectModel
from shared.defects.records import DefectRecords
from shared.defects.service import DefectInspection
from shared.defects.settings import get_defect_settings
from shared.platform.access import caller
from shared.platform.batch import for_each_created_object
from shared.platform.http import FunctionRoutes, file_parts, json_response
from shared.platform.logs import configure_logging
from shared.platform.storage import get_object_store

configure_logging("defect_detect")
inspection = DefectInspection(DefectModel.load(), get_object_store(), DefectRecords(), get_defect_settings())
inbox = DefectInbox(inspection, get_object_store(), get_defect_settings())
routes = FunctionRoutes()
routes.events(for_each_created_object(inbox.handle_upload))


@routes.post("/api/detect")
def detect(request: flask.Request) -> flask.Response:
    owner = caller(request.headers)
    uploads = uploaded_images(file_parts(request, IMAGES_FIELD), get_defect_settings().defect_max_batch_images, list(request.files))
    return json_response(inspection.inspect_batch(uploads, owner))


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

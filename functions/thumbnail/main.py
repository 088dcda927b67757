"""Upload trigger: uploads/<path> -> thumbnails/<path>, recorded on the task it belongs to."""

import flask

from shared.platform.batch import for_each_created_object
from shared.platform.http import FunctionRoutes
from shared.platform.logs import configure_logging
from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from shared.thumbnails import ThumbnailWriter, get_thumbnail_settings

configure_logging("thumbnail")
writer = ThumbnailWriter(get_object_store(), TaskRepository(), get_thumbnail_settings())
routes = FunctionRoutes()
routes.events(for_each_created_object(writer.handle_upload))


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

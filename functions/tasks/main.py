"""GET /api/v1/tasks, GET /api/v1/tasks/{uid} (and its /timeline) and GET /api/v1/files/{key} (downloads): the
caller's own tasks and their files only; POST /api/v1/uploads: a presigned upload of a large file
to the bucket, for an asynchronous route's `<field>_key`."""

import flask

from shared.platform.access import caller
from shared.platform.direct_uploads import UploadRequest, safe_name
from shared.platform.http import FunctionRoutes, get_direct_uploads, json_body, json_response, parse_payload, parse_query
from shared.platform.logs import configure_logging
from shared.platform.pages import ListQuery
from shared.platform.settings import get_settings
from shared.platform.storage import get_object_store, task_of_file
from shared.platform.tasks import TaskRepository
from shared.vision.images import sniffed_content_type

configure_logging("tasks")
routes = FunctionRoutes()
tasks = TaskRepository()
#: How long the link of a download too large for an answer works.
DOWNLOAD_LINK_SECONDS = 300


@routes.get("/api/v1/tasks")
def list_tasks(request: flask.Request) -> flask.Response:
    query = parse_query(ListQuery, request)
    return json_response(tasks.page(query.offset, query.limit, owner=caller(request.headers)))


@routes.get("/api/v1/tasks/<uid>")
def get_task(request: flask.Request, uid: str) -> flask.Response:
    return json_response(tasks.get(uid, owner=caller(request.headers)))


@routes.get("/api/v1/tasks/<uid>/timeline")
def get_task_timeline(request: flask.Request, uid: str) -> flask.Response:
    """The task's moments: submitted, queued, each attempt (started, released), done or error."""
    return json_response(tasks.timeline(uid, owner=caller(request.headers)))


@routes.get("/api/v1/files/<path:key>")
def download_file(request: flask.Request, key: str) -> flask.Response:
    """A task file of the caller's, as an attachment of its sniffed type (an uploaded HTML or
    SVG can never run as a page of the API's origin). One larger than a synchronous answer
    carries is a 303 to a short-lived link from which the bucket serves it as an attachment."""
    tasks.get(task_of_file(key), owner=caller(request.headers))  # 404 unless it is theirs
    store, name = get_object_store(), key.rsplit("/", 1)[-1]
    head = store.head(key)
    if head is not None and head[0] > get_settings().sync_body_bytes:
        url = store.presigned_download(key, safe_name(name), "application/octet-stream", DOWNLOAD_LINK_SECONDS)
        return flask.Response(status=303, headers={"Location": url, "Cache-Control": "no-store"})
    stored = store.get(key)
    return flask.Response(
        stored.data,
        mimetype=sniffed_content_type(stored.data),
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"},
    )


@routes.post("/api/v1/uploads")
def create_upload(request: flask.Request) -> flask.Response:
    owner = caller(request.headers)
    upload = parse_payload(UploadRequest, json_body(request))
    return json_response(get_direct_uploads().create(owner, upload), status=201)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

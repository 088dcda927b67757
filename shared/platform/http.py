"""HTTP plumbing of a function: routes, request parsing, JSON responses, the one error handler."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import flask
from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound
from werkzeug.routing import Map, Rule

from shared.platform.access import check_platform_call, request_id_of
from shared.platform.batch import Invocation, RecordHandler, process_sqs_batch
from shared.platform.direct_uploads import KEY_SUFFIX, DirectUploads, FileKind, UploadedFile
from shared.platform.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestValidationFailed,
    VisionFnError,
)
from shared.platform.logs import REQUEST_ID_HEADER, cold_start, function_name, log_context
from shared.platform.messaging import JobQueue
from shared.platform.metrics import emit_metrics
from shared.platform.settings import get_settings
from shared.platform.storage import aws_client, get_object_store

log = logging.getLogger("visionfn.http")

Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[..., flask.Response]

#: Where a request's matched route (its rule, such as ``/api/v1/tasks/<uid>``) is kept for its metrics.
ROUTE_KEY = "visionfn.route"

#: Path on which the event bridge (and the cloud entry) delivers non-HTTP events.
EVENTS_PATH = "/events"


#: On every JSON answer (and other files whose type must be taken as given, never sniffed).
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def json_response(payload: BaseModel | dict[str, Any] | list[Any], status: int = 200) -> flask.Response:
    """Valid JSON always: a NaN or infinite number is null, as pydantic writes it in a model."""
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(by_alias=True)
    else:
        try:
            body = json.dumps(payload, default=str, allow_nan=False)
        except ValueError:  # a NaN or an infinity somewhere (rare): written as null
            body = json.dumps(_finite(payload), default=str, allow_nan=False)
    return flask.Response(body, status=status, mimetype="application/json", headers=NOSNIFF)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def error_response(error: VisionFnError) -> flask.Response:
    response = json_response(error.body(), status=error.status)
    response.headers.update(error.headers())
    return response


def parse_query(model: type[Model], request: flask.Request) -> Model:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise RequestValidationFailed.from_pydantic(error, "query") from error


#: JSON request bodies: at most this many bytes and levels of nesting (settings, events).
MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32


def json_body(request: flask.Request) -> Any:
    """The request's JSON, bounded in size and depth before and while it is parsed; 400/413."""
    data = request.get_data(cache=True)
    if len(data) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON body is {len(data)} bytes; the limit is {MAX_JSON_BYTES} bytes")
    try:
        payload = json.loads(data)
    except RecursionError as error:
        raise BadRequest(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels") from error
    except ValueError as error:
        raise BadRequest(f"Request body must be JSON: {error}") from error
    if _depth(payload) > MAX_JSON_DEPTH:
        raise BadRequest(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    return payload


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [child for item in level if isinstance(item, (dict, list)) for child in (item.values() if isinstance(item, dict) else item)]
        if depth > MAX_JSON_DEPTH:
            break
    return depth


def parse_payload(model: type[Model], payload: Any) -> Model:
    """A JSON body validated by ``model``; 422 in FastAPI's shape on error."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise RequestValidationFailed.from_pydantic(error, "body") from error


def parse_form(model: type[Model], request: flask.Request) -> Model:
    """Multipart/urlencoded form fields (files excluded) validated by ``model``; 422 on error."""
    return parse_fields(model, request.form.to_dict())


def parse_fields(model: type[Model], fields: dict[str, str]) -> Model:
    """Form fields validated by ``model``; 422 on error."""
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        raise RequestValidationFailed.from_pydantic(error, "body") from error


def uploaded_file(request: flask.Request, field: str) -> bytes:
    """The bytes of multipart file field ``field``; 400 when it is absent."""
    upload = request.files.get(field)
    if upload is None:
        sent = ", ".join(sorted(request.files)) or "none"
        raise BadRequest(f"Missing file field '{field}' (multipart/form-data); file fields sent: {sent}")
    return upload.read()


#: Werkzeug reads a multipart part's headers as UTF-8 and, when one part's are not (a file name in
#: another encoding), drops every field and file of the request. Such a part's headers are read with
#: U+FFFD for the bytes that are not UTF-8 and marked with this header (its value this process's
#: own, so a client cannot mark a part): the part is then refused alone (FilePart.unreadable).
UNREADABLE_HEADERS = "X-Visionfn-Unreadable-Headers"
_UNREADABLE_MARK = secrets.token_hex(8)
UNREADABLE_DETAIL = "The part's headers (its file name) are not UTF-8: send the file name in UTF-8"
_BLANK_LINE = re.compile(rb"(?:\r\n\r\n|\r\r|\n\n)")  # where Werkzeug ends a part's headers


def readable_multipart(request: flask.Request) -> flask.Request:
    """``request``, or, when a multipart part's headers are not UTF-8, the same request with those
    headers readable (and marked): the other parts reach the function instead of none."""
    boundary = request.mimetype_params.get("boundary", "")
    if request.mimetype != "multipart/form-data" or not boundary or request.content_length is None:
        return request
    body = request.get_data(cache=True, parse_form_data=False)  # Werkzeug parses this copy (bounded by the caller)
    delimiter = re.compile(rb"(?:\A|\r\n|\n|\r)--" + re.escape(boundary.encode("latin-1", "replace")) + rb"[^\S\n\r]*(?:\r\n|\n|\r)")
    pieces, done = [], 0
    for start in (match.end() for match in delimiter.finditer(body)):
        end = _BLANK_LINE.search(body, start)
        if end is None or start < done:
            continue
        headers = body[start : end.start()]
        try:
            headers.decode()
        except UnicodeDecodeError:
            readable = headers.decode(errors="replace").encode()
            pieces += [body[done:start], f"{UNREADABLE_HEADERS}: {_UNREADABLE_MARK}\r\n".encode(), readable]
            done = end.start()
    if not pieces:
        return request
    fixed = b"".join([*pieces, body[done:]])
    environ = {**request.environ, "wsgi.input": io.BytesIO(fixed), "CONTENT_LENGTH": str(len(fixed))}
    return request.__class__(environ)


@dataclass(frozen=True)
class FilePart:
    """A multipart file part as the domain reads it (no web framework there): its file name as
    sent, its bytes (``read``), and why it cannot be used, known before it is read (``unreadable``)."""

    filename: str | None
    unreadable: str | None
    storage: FileStorage

    def read(self) -> bytes:
        return self.storage.read()


def file_parts(request: flask.Request, field: str) -> list[FilePart]:
    """The file parts of multipart field ``field``, in order (one whose headers were not UTF-8 too)."""
    return [
        FilePart(part.filename, UNREADABLE_DETAIL if part.headers.get(UNREADABLE_HEADERS) == _UNREADABLE_MARK else None, part)
        for part in request.files.getlist(field)
    ]


@dataclass(frozen=True)
class Submission:
    """An asynchronous route's form: its fields, and its files sent as parts or as uploads."""

    form: dict[str, str]  # the fields, without the `<field>_key` ones
    files: dict[str, UploadedFile]
    upload_keys: list[str]  # the uploads taken: removed once the task exists

    def done(self) -> None:
        """The task exists: the uploads it took are used (used once)."""
        get_direct_uploads().remove(self.upload_keys)


def submission(request: flask.Request, owner: str, fields: Mapping[str, FileKind], limit: int) -> Submission:
    """The form of ``request``, each file field in ``fields`` taken from its part or from the
    caller's upload named in ``<field>_key`` (checked as the part would be: 404 unless it is the
    caller's, 413 over ``limit`` bytes, 415 for another kind of file); 400 when both are sent."""
    form = request.form.to_dict()
    keys = {field: form.pop(field + KEY_SUFFIX) for field in fields if field + KEY_SUFFIX in form}
    files: dict[str, UploadedFile] = {}
    for field, kind in fields.items():
        part = request.files.get(field)
        if part is not None and field in keys:
            raise BadRequest(f"Send the file '{field}' or the key of its upload '{field}{KEY_SUFFIX}', not both")
        if part is not None:
            data = part.read(limit + 1)
            if len(data) > limit:
                raise PayloadTooLarge(f"File '{field}' is over the limit of {limit} bytes")
            files[field] = UploadedFile(part.filename, data)
        elif keys.get(field):
            files[field] = get_direct_uploads().read(owner, keys[field], kind, limit)
    return Submission(form, files, [keys[field] for field in files if field in keys])


def bounded_answer(response: flask.Response) -> flask.Response:
    """An answer no larger than a synchronous invocation carries (a larger one would reach the
    client as API Gateway's 502): refused with the ways that work instead."""
    limit = get_settings().sync_body_bytes
    if not response.is_streamed and (size := len(response.get_data())) > limit:
        raise PayloadTooLarge(
            f"The answer would be {size} bytes; a synchronous answer carries at most {limit} bytes. Ask for JSON "
            "or a smaller picture, or use an asynchronous route (its files download through the bucket)."
        )
    return response


def wants_json(request: flask.Request) -> bool:
    """True when the client prefers JSON to an image (``*/*`` and no Accept mean the image)."""
    return request.accept_mimetypes.best_match(["image/*", "application/json"]) == "application/json"


@lru_cache(maxsize=1)
def visibility() -> JobQueue:
    """Changes the visibility of the messages this process was delivered (a busy record's retry)."""
    return JobQueue(aws_client("sqs", get_settings()), None)


@lru_cache(maxsize=1)
def get_direct_uploads() -> DirectUploads:
    """The process's presigned uploads (of the one bucket)."""
    return DirectUploads(get_object_store(), get_settings())


class FunctionRoutes:
    """The routes one function serves; the gateway forwards the original path and method."""

    def __init__(self) -> None:
        self._map = Map(merge_slashes=False, strict_slashes=False)  # a JSON API answers, it does not redirect
        self._handlers: dict[str, Handler] = {}
        self._event_handlers: dict[str, Callable[[dict[str, Any], flask.Request], flask.Response]] = {}

    def route(self, rule: str, methods: list[str]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            endpoint = f"{handler.__name__}:{rule}"
            self._map.add(Rule(rule, endpoint=endpoint, methods=methods))
            self._handlers[endpoint] = handler
            return handler

        return register

    def get(self, rule: str) -> Callable[[Handler], Handler]:
        return self.route(rule, ["GET"])

    def post(self, rule: str) -> Callable[[Handler], Handler]:
        return self.route(rule, ["POST"])

    def put(self, rule: str) -> Callable[[Handler], Handler]:
        return self.route(rule, ["PUT"])

    def delete(self, rule: str) -> Callable[[Handler], Handler]:
        return self.route(rule, ["DELETE"])

    # --- non-HTTP invocations, all on POST /events (as the cloud entry and the event
    # bridge deliver them), told apart by their shape: an SQS batch has "Records", a Schedule
    # event is EventBridge's "Scheduled Event", anything else is a direct invocation.
    def invocation(self, handle: Callable[[dict[str, Any]], BaseModel | dict[str, Any]]) -> Callable[..., Any]:
        """Serve a direct invocation: its JSON object in, the handler's answer out as JSON."""
        self._event_handler("invocation", lambda payload, _request: json_response(handle(payload)))
        return handle

    def events(self, handle_record: RecordHandler) -> None:
        """Serve SQS batches, answering with the partial-batch response."""

        def deliver_events(payload: dict[str, Any], request: flask.Request) -> flask.Response:
            invocation = Invocation.from_headers(request.headers, get_settings().function_timeout)
            return json_response(process_sqs_batch(payload, handle_record, invocation, visibility().keep_invisible).to_json())

        self._event_handler("sqs", deliver_events)

    def schedule(self, run: Callable[[], BaseModel]) -> Callable[[], BaseModel]:
        """Serve a Schedule event ("Scheduled Event" from EventBridge)."""
        self._event_handler("schedule", lambda _payload, _request: json_response(run()))
        return run

    def _event_handler(self, kind: str, handle: Callable[[dict[str, Any], flask.Request], flask.Response]) -> None:
        if kind in self._event_handlers:
            raise ValueError(f"a function serves one {kind} handler")
        if not self._event_handlers:
            self.route(EVENTS_PATH, ["POST"])(self._deliver_event)
        self._event_handlers[kind] = handle

    def _deliver_event(self, request: flask.Request) -> flask.Response:
        payload = json_body(request)
        if not isinstance(payload, dict):
            raise BadRequest("Event body must be a JSON object")
        kind = _event_kind(payload)
        if kind not in self._event_handlers:
            expected = " or ".join(EVENT_KINDS[name] for name in self._event_handlers)
            raise BadRequest(f"This function takes {expected}; the event is {EVENT_KINDS[kind]}")
        return self._event_handlers[kind](payload, request)

    def dispatch(self, request: flask.Request) -> flask.Response:
        """Route the request under its request id (answered in ``X-Request-Id``, on every log line
        and in its metrics: requests, errors and duration per route)."""
        started, request_id = time.perf_counter(), request_id_of(request.headers)
        with log_context(request_id=request_id, cold_start=cold_start()):
            response = self._answer(request)
            response.headers[REQUEST_ID_HEADER] = request_id
            route = request.environ.get(ROUTE_KEY, "unmatched")
            emit_metrics(
                f"{request.method} {route} {response.status_code}",
                {"function": function_name(), "route": route},
                {
                    "requests": (1, "Count"),
                    "errors": (int(response.status_code >= 500), "Count"),
                    "client_errors": (int(400 <= response.status_code < 500), "Count"),
                    "duration": ((time.perf_counter() - started) * 1000, "Milliseconds"),
                },
                method=request.method,
                status=response.status_code,
            )
        return response

    def _answer(self, request: flask.Request) -> flask.Response:
        """Every error becomes ``{"detail": ...}`` JSON with its status."""
        try:
            check_platform_call(request.headers, get_settings())
            limit = get_settings().sync_body_bytes
            if (request.content_length or 0) > limit:
                raise PayloadTooLarge.request_body(request.content_length, limit)
            path = routed_path(request)
            adapter = self._map.bind("", path_info=path, url_scheme="http")
            try:
                endpoint, arguments = adapter.match(path, method=request.method)
            except WerkzeugNotFound as error:
                raise NotFound(f"No route for {request.method} {request.path}") from error
            except WerkzeugMethodNotAllowed as error:
                raise MethodNotAllowed(
                    f"Method {request.method} not allowed on {request.path}; allowed: {', '.join(sorted(error.valid_methods or []))}"
                ) from error
            request.environ[ROUTE_KEY] = endpoint.split(":", 1)[1]
            return bounded_answer(self._handlers[endpoint](readable_multipart(request), **arguments))
        except VisionFnError as error:
            if not error.is_client_error:
                log.error("%s %r failed: %s", request.method, request.path, error.detail)
            return error_response(error)
        except HTTPException as error:  # Werkzeug's own limits (form parts, field sizes): a client error
            status = error.code if error.code and 400 <= error.code < 500 else 400
            return json_response({"detail": error.description or error.name}, status=status)
        except Exception:  # the one place that turns a bug into a 500 instead of a crash
            log.exception("unhandled error in %s %r", request.method, request.path)  # repr: no control character in the log
            return json_response({"detail": "Internal error"}, status=500)


_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)


def routed_path(request: flask.Request) -> str:
    """The path routes match: decoded, but an encoded slash (``%2F``) stays as sent. It is part of
    a segment, never a separator: ``/api/v1/settings/template%2F`` names no tool, it is not
    ``/api/v1/settings/template`` with a trailing slash. (The raw path is the server's ``RAW_URI``
    or ``REQUEST_URI``; without one, the decoded path.)"""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    raw_path = raw.split("?", 1)[0]
    if not raw_path.startswith("/") or not _ENCODED_SLASH.search(raw_path):
        return request.path
    return "%2F".join(
        unquote_to_bytes(piece.encode("latin-1", "replace")).decode(errors="replace")  # as WSGI decodes
        for piece in _ENCODED_SLASH.split(raw_path)
    )


EVENT_KINDS = {"sqs": "an SQS batch (Records)", "schedule": 'an EventBridge "Scheduled Event"', "invocation": "a direct invocation"}


def _event_kind(payload: dict[str, Any]) -> str:
    if "Records" in payload:
        return "sqs"
    if payload.get("detail-type") == "Scheduled Event":
        return "schedule"
    return "invocation"

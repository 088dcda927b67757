"""The OpenAPI document of the HTTP API, generated from the pydantic models the functions use.

Every route of template.yaml is here (a test keeps the two the same), with its parameters,
their defaults and ranges, its response shapes, the 4xx errors it gives, and the security
scheme (an API key as a bearer token or in ``X-API-Key``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from shared.defects.analysis import Analysis
from shared.defects.inspection import DetectionResults
from shared.defects.queries import DayStats, PageQuery, RecentQuery, RecentRecords, RecordPage, SearchQuery, StatQuery
from shared.faces.privacy import FaceOptions, FaceTextReport
from shared.faces.video_tasks import FaceVideoOptions
from shared.health import PlatformHealth
from shared.matching.chain import INPUT_FIELDS, ChainForm
from shared.matching.defaults import ToolSettingsOut
from shared.matching.tools import TOOLS
from shared.platform.direct_uploads import KEY_SUFFIX, UploadRequest, UploadTicket
from shared.platform.pages import ListQuery
from shared.platform.tasks import TaskOut, TaskPage, TaskTimeline
from shared.webhooks.models import (
    DeliveryListQuery,
    DeliveryOut,
    DeliveryPage,
    FailedRedelivery,
    RedeliveriesQueued,
    RotatedWebhook,
    SecretRotation,
    WebhookCreate,
    WebhookList,
    WebhookOut,
)


class ErrorBody(BaseModel):
    """Every error: a message, or (422) pydantic's list of problems."""

    detail: str | list[dict[str, Any]]


ERRORS = {
    400: "Bad input: the message says what is wrong",
    401: "No API key, or not a valid one",
    404: "No such route, or no such resource of the key's owner",
    405: "The route does not take this method",
    408: "The request body did not arrive in time",
    413: "Too large: body, pixels or points over the limits",
    415: "An image format or a body encoding that is not accepted",
    422: "Invalid parameters (pydantic's shape: type, loc, msg, input)",
    502: "The function did not answer (it is restarting)",
    503: "A part of the platform is unavailable",
    504: "The function did not answer within its timeout",
}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI syntax (template.yaml's `{key+}` is `{key}` here)
    summary: str
    response: type[BaseModel] | None  # JSON body of the success answer (None: not JSON)
    status: int = 200
    public: bool = False
    query: type[BaseModel] | None = None
    form: type[BaseModel] | None = None  # multipart fields besides the files
    files: tuple[str, ...] = ()
    json_body: dict[str, Any] | None = None
    binary_response: tuple[str, ...] = ()  # media types of a non-JSON success answer
    errors: tuple[int, ...] = (400, 401, 404, 405, 413, 422)
    path_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    upload_keys: bool = False  # each file may come as `<field>_key`, an upload's key, instead


def _tool_operations() -> list[Operation]:
    operations = []
    for name, tool in TOOLS.items():
        operations.append(
            Operation(
                "POST",
                f"/api/v1/match/{name}",
                f"Queue a {name}-matching task (201; poll GET /api/v1/tasks/{{uid}})",
                TaskOut,
                status=201,
                form=tool.params_model,
                files=tuple(spec.field for spec in tool.inputs),
                errors=(400, 401, 404, 405, 413, 415, 422, 503),
                upload_keys=True,
            )
        )
    operations.append(
        Operation(
            "POST",
            "/api/v1/match/chain",
            "Queue a chain-matching task: the steps run in order until one finds a match (201; poll GET /api/v1/tasks/{uid})",
            TaskOut,
            status=201,
            form=ChainForm,
            files=INPUT_FIELDS,
            errors=(400, 401, 404, 405, 413, 415, 422, 503),
            upload_keys=True,
        )
    )
    return operations


def _webhook_operations() -> list[Operation]:
    hook = {"webhook_id": {"type": "string", "description": "wh_..."}}
    delivery = {**hook, "delivery_id": {"type": "string", "description": "msg_... (the webhook-id header)"}}
    return [
        Operation(
            "POST",
            "/api/v1/webhooks",
            "Register a webhook: every task of the owner that ends (done/error) is POSTed "
            "to its URL, signed with its secret (201; the secret is never returned)",
            WebhookOut,
            status=201,
            json_body=WebhookCreate.model_json_schema(),
            errors=(400, 401, 405, 413, 422),
        ),
        Operation("GET", "/api/v1/webhooks", "The owner's webhooks", WebhookList, errors=(401, 405)),
        Operation(
            "DELETE",
            "/api/v1/webhooks/{webhook_id}",
            "Delete a webhook and its delivery log (204)",
            None,
            status=204,
            errors=(401, 404, 405),
            path_parameters=hook,
        ),
        Operation(
            "GET",
            "/api/v1/webhooks/{webhook_id}/deliveries",
            "A webhook's deliveries, newest first, with every attempt",
            DeliveryPage,
            query=DeliveryListQuery,
            errors=(401, 404, 405, 422),
            path_parameters=hook,
        ),
        Operation(
            "POST",
            "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
            "Send a delivery again now (same webhook-id), whatever its state",
            DeliveryOut,
            errors=(401, 404, 405),
            path_parameters=delivery,
        ),
        Operation(
            "POST",
            "/api/v1/webhooks/{webhook_id}/ping",
            "Send a signed ping delivery now (not retried)",
            DeliveryOut,
            errors=(401, 404, 405),
            path_parameters=hook,
        ),
        Operation(
            "POST",
            "/api/v1/webhooks/{webhook_id}/rotate-secret",
            "Rotate the secret (the body's, or a new one "
            "answered this once); the previous one signs too for overlap_seconds (webhook-signature carries both)",
            RotatedWebhook,
            json_body=SecretRotation.model_json_schema(),
            errors=(400, 401, 404, 405, 413, 422),
            path_parameters=hook,
        ),
        Operation(
            "POST",
            "/api/v1/webhooks/{webhook_id}/redeliver-failed",
            "Queue every failed delivery created since a time for one more attempt (202; how many); a disabled webhook is enabled again",
            RedeliveriesQueued,
            status=202,
            json_body=FailedRedelivery.model_json_schema(),
            errors=(400, 401, 404, 405, 413, 422),
            path_parameters=hook,
        ),
    ]


OPERATIONS: list[Operation] = [
    Operation("GET", "/health", "State of the platform (no key needed)", PlatformHealth, public=True, errors=(503,)),
    Operation("GET", "/openapi.json", "This document (no key needed)", None, public=True, errors=(), binary_response=("application/json",)),
    Operation("GET", "/docs", "This document, rendered (no key needed)", None, public=True, errors=(), binary_response=("text/html",)),
    Operation(
        "GET", "/", "The web console's page (no key needed: it asks for one)", None, public=True, errors=(), binary_response=("text/html",)
    ),
    Operation(
        "POST",
        "/process",
        "Find every face (and, with hide, text or numbers) and hide it: the picture, or the JSON report with Accept: application/json",
        FaceTextReport,
        form=FaceOptions,
        files=("image",),
        binary_response=IMAGE_TYPES,
        errors=(400, 401, 405, 413, 415, 422),
    ),
    Operation(
        "POST",
        "/detect",
        "Find faces (and, with hide, text or numbers) only (no pixel work)",
        FaceTextReport,
        form=FaceOptions,
        files=("image",),
        errors=(400, 401, 405, 413, 415, 422),
    ),
    Operation(
        "POST",
        "/api/v1/faces/video",
        "Queue a video (multipart `video`: mp4, mov or webm) for face "
        "anonymization: every frame, faces tracked across frames, H.264 mp4 in results/<uid>/anonymized.mp4; "
        "progress and per-frame counts in result_data",
        TaskOut,
        status=201,
        form=FaceVideoOptions,
        files=("video",),
        errors=(400, 401, 404, 405, 413, 415, 422, 503),
        upload_keys=True,
    ),
    Operation("GET", "/api/v1/tasks", "The key owner's tasks, newest first", TaskPage, query=ListQuery),
    Operation("GET", "/api/v1/tasks/{uid}", "One task of the key's owner", TaskOut, path_parameters={"uid": {"type": "string"}}),
    Operation(
        "GET",
        "/api/v1/tasks/{uid}/timeline",
        "The task's moments in time order: submitted, queued, each attempt (started, released for a retry), done or error; "
        "a chain's with its steps'",
        TaskTimeline,
        path_parameters={"uid": {"type": "string"}},
    ),
    Operation(
        "GET",
        "/api/v1/files/{key}",
        "A file of one of the owner's tasks (uploads/, thumbnails/ or results/"
        "<uid>/<name>), as an attachment; one over the synchronous answer limit is a 303 to a short-lived "
        "link of the bucket",
        None,
        binary_response=("application/octet-stream", *IMAGE_TYPES),
        path_parameters={"key": {"type": "string", "description": "may contain slashes"}},
    ),
    Operation(
        "POST",
        "/api/v1/uploads",
        "A presigned POST to the bucket for a file too large for a synchronous request "
        "(201): send `fields` then `file` to `url`, then the key as `<field>_key` to an asynchronous route",
        UploadTicket,
        status=201,
        json_body=UploadRequest.model_json_schema(),
        errors=(400, 401, 405, 413, 422),
    ),
    *_tool_operations(),
    Operation(
        "GET",
        "/api/v1/settings/{tool}",
        "The owner's defaults of a tool",
        ToolSettingsOut,
        path_parameters={"tool": {"type": "string", "enum": list(TOOLS)}},
    ),
    Operation(
        "PUT",
        "/api/v1/settings/{tool}",
        "Replace the owner's defaults of a tool (names left out take the built-in default)",
        ToolSettingsOut,
        json_body={"type": "object"},
        path_parameters={"tool": {"type": "string", "enum": list(TOOLS)}},
    ),
    *_webhook_operations(),
    Operation(
        "POST",
        "/api/detect",
        "Inspect one or more `images` for surface defects: one entry per image, in order (a bad "
        "file gets an error entry, the others are inspected and recorded; not one usable: 400)",
        DetectionResults,
        files=("images",),
        errors=(400, 401, 405, 413, 415),
    ),
    Operation(
        "GET", "/api/data/getRecent", "The owner's newest inspection records", RecentRecords, query=RecentQuery, errors=(401, 405, 422)
    ),
    Operation(
        "GET",
        "/api/data/statByDate",
        "Records and defects per UTC day, every day of the window (default: the last 15)",
        DayStats,
        query=StatQuery,
        errors=(401, 405, 422),
    ),
    Operation(
        "GET",
        "/api/data/getPaginated",
        "Deprecated (use search): a page of the owner's records, newest first",
        RecordPage,
        query=PageQuery,
        errors=(401, 405, 422),
    ),
    Operation(
        "GET",
        "/api/data/search",
        "The owner's records matching every condition given, newest first, paged",
        RecordPage,
        query=SearchQuery,
        errors=(401, 405, 422),
    ),
    Operation(
        "GET",
        "/api/data/analysis",
        "A summary of the owner's newest records (computed here; a narrative when a language model is configured)",
        Analysis,
        query=RecentQuery,
        errors=(401, 405, 422),
    ),
]


def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "visionfn",
            "version": "1.0",
            "description": "Serverless image functions: face privacy, matching as asynchronous tasks.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (python -m shared.platform.keys create)"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _form_properties(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields as multipart fields: text values, so no null (leave a field out instead)."""
    schema = model.model_json_schema()
    properties = {}
    for name, definition in schema.get("properties", {}).items():
        definition = copy.deepcopy(definition)
        variants = definition.pop("anyOf", None)
        if variants:
            definition.update(next(v for v in variants if v.get("type") != "null"))
        properties[name] = definition
    return properties


def _operation(operation: Operation, components: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"summary": operation.summary, "operationId": f"{operation.method.lower()}{operation.path}"}
    parameters = [{"name": name, "in": "path", "required": True, "schema": schema} for name, schema in operation.path_parameters.items()]
    if operation.query:
        for name, definition in operation.query.model_json_schema()["properties"].items():
            parameters.append({"name": name, "in": "query", "required": False, "schema": definition})
    if parameters:
        result["parameters"] = parameters
    if operation.files:
        properties: dict[str, Any] = {name: {"type": "string", "format": "binary"} for name in operation.files}
        if operation.upload_keys:  # each file as a part or as an upload's key: neither alone is required
            properties.update(
                {
                    f"{name}{KEY_SUFFIX}": {
                        "type": "string",
                        "description": f"Instead of `{name}`: the key of an upload (POST /api/v1/uploads)",
                    }
                    for name in operation.files
                }
            )
        if operation.form:
            properties.update(_form_properties(operation.form))
        required = [] if operation.upload_keys else list(operation.files)
        result["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": properties, "required": required}}},
        }
    elif operation.json_body is not None:
        result["requestBody"] = {"required": True, "content": {"application/json": {"schema": operation.json_body}}}
    content: dict[str, Any] = {}
    if operation.response:
        content["application/json"] = {"schema": _schema(operation.response, components)}
    for media_type in operation.binary_response:
        content.setdefault(media_type, {"schema": {"type": "string", "format": "binary"}})
    responses: dict[str, Any] = {str(operation.status): {"description": "Success", "content": content}}
    error_schema = _schema(ErrorBody, components)
    for status in operation.errors:
        responses[str(status)] = {"description": ERRORS[status], "content": {"application/json": {"schema": error_schema}}}
    result["responses"] = responses
    if operation.public:
        result["security"] = []
    return result

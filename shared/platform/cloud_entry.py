"""A function's entry on AWS Lambda: ``python -m awslambdaric shared.platform.cloud_entry.handler``.

Every event goes through the same functions-framework app that serves locally and on Cloud Run,
in this process, so the event handling the cloud runs is the one the tests run (it replaces the
Lambda Web Adapter, a binary extension that cannot be built or run here). An HTTP API request
(payload format 2.0) becomes a WSGI request through apig-wsgi; any other event (the authorizer's
request, an SQS batch, an EventBridge schedule, a direct invocation) is posted to ``/events`` as
JSON, as the local event bridge does, and the app's JSON answer is the invocation's result."""

from __future__ import annotations

import functools
import json
import os
import time
from base64 import b64decode
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from apig_wsgi import make_lambda_handler
from functions_framework import create_app

from shared.platform.access import PLATFORM_HEADERS, REQUEST_CONTEXT_HEADER
from shared.platform.batch import LAMBDA_CONTEXT_HEADER
from shared.platform.http import EVENTS_PATH
from shared.platform.settings import PROJECT_ROOT

Event = dict[str, Any]
Environ = dict[str, Any]
WsgiApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


class LambdaContext(Protocol):
    """What this entry reads of the context awslambdaric passes."""

    def get_remaining_time_in_millis(self) -> int: ...


class EventRefused(RuntimeError):
    """The function answered an event with a non-2xx status: the invocation fails, so Lambda
    retries it (SQS redelivers the batch, EventBridge retries the schedule) and API Gateway
    denies the request its authorizer could not judge, instead of misreading an error body."""


def handler(event: Event, context: LambdaContext) -> Any:
    """The function named by ``FUNCTION``: an HTTP API request gets API Gateway's response
    (binary bodies base64), any other event gets the function's JSON answer."""
    function = os.environ["FUNCTION"]
    serve = _served(function)
    if _is_http_request(event):
        return serve(event, context)
    answer = serve(_events_request(event), context)
    body = b64decode(answer["body"]).decode() if answer.get("isBase64Encoded") else answer["body"]
    if not 200 <= answer["statusCode"] < 300:
        raise EventRefused(f"the {function} function answered {answer['statusCode']} to the event: {body[:2000]}")
    try:
        return json.loads(body)
    except ValueError as error:
        raise EventRefused(f"the {function} function answered the event with no JSON: {body[:200]!r}") from error


@functools.cache
def _served(function: str) -> Callable[[Event, Any], Event]:
    """The function's app, made once per process (the cold start) and per function name. (apig-wsgi
    answers one value per response header name, all ``set-cookie`` aside: no function repeats one.)"""
    app = create_app(os.environ.get("TARGET", "handle"), str(PROJECT_ROOT / "functions" / function / "main.py"))
    return make_lambda_handler(PlatformHeaders(app))


def _is_http_request(event: Event) -> bool:
    """An HTTP API (payload 2.0) request; the authorizer's request looks alike but is an event."""
    context = event.get("requestContext")
    is_authorizer_event = event.get("type") == "REQUEST" and "routeArn" in event
    return isinstance(context, dict) and "http" in context and not is_authorizer_event


def _events_request(event: Event) -> Event:
    """``POST /events`` with the event as its JSON body, as an HTTP API request (apig-wsgi makes
    requests of nothing else). Its request context names no authorizer: an event has no owner."""
    http = {"method": "POST", "path": EVENTS_PATH, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"}
    return {
        "version": "2.0",
        "rawPath": EVENTS_PATH,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": http, "stage": "$default"},
        "body": json.dumps(event),
        "isBase64Encoded": False,
    }


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


class PlatformHeaders:
    """WSGI middleware: the headers only the platform may set come from the event, never from the
    client (a forged ``X-Visionfn-Owner`` or ``x-amzn-request-context`` is dropped; ``caller()``
    reads the authorizer's owner from API Gateway's request context), and the invocation's
    deadline is passed as the local event bridge passes it."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        for header in PLATFORM_HEADERS:  # by WSGI key: `X_Visionfn_Owner` is dropped as well
            environ.pop(_environ_key(header), None)
        request_context = environ["apig_wsgi.request_context"]
        environ[_environ_key(REQUEST_CONTEXT_HEADER)] = json.dumps(request_context)
        remaining_ms = environ["apig_wsgi.context"].get_remaining_time_in_millis()
        environ[_environ_key(LAMBDA_CONTEXT_HEADER)] = json.dumps({"deadline": int(time.time() * 1000) + remaining_ms})
        _without_stage(environ, request_context.get("stage"))
        return self.app(environ, start_response)


def _without_stage(environ: Environ, stage: str | None) -> None:
    """A named stage (``/prod``) starts ``rawPath`` on API Gateway's own URL; the routes are
    without it. apig-wsgi passes ``rawPath`` as it is, so the stage moves to ``SCRIPT_NAME`` here.
    (Behind a custom domain's API mapping the path has no stage; a route that began with the
    stage's name would then lose it: name no stage after a route.)"""
    path, prefix = environ["PATH_INFO"], f"/{stage}"
    if stage and stage != "$default" and (path == prefix or path.startswith(prefix + "/")):
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = prefix, path[len(prefix) :] or "/"

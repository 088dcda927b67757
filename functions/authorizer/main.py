"""The HTTP API's Lambda authorizer (cloud): the same key check the local gateway makes.

API Gateway hands it the request (payload format 2.0) as a POST /events invocation; it answers
``{"isAuthorized": ..., "context": {"owner": ...}}`` (simple responses). The functions read the
owner from the authorizer context that API Gateway passes on."""

from typing import Any

import flask
from werkzeug.datastructures import Headers

from shared.platform.access import api_key_of
from shared.platform.http import FunctionRoutes
from shared.platform.keys import ApiKeys
from shared.platform.logs import configure_logging

configure_logging("authorizer")
keys = ApiKeys()
routes = FunctionRoutes()


@routes.invocation
def authorize(event: dict[str, Any]) -> dict[str, Any]:
    key = api_key_of(Headers(event.get("headers") or {}))  # API Gateway lower-cases names: looked up case-blind
    owner = keys.owner_of(key) if key else None
    return {"isAuthorized": owner is not None, "context": {"owner": owner or ""}}


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

"""GET/PUT /api/v1/settings/{tool}: the defaults of a matching tool's parameters."""

import flask

from shared.matching.defaults import ToolDefaults, ToolSettingsOut
from shared.platform.access import caller
from shared.platform.errors import BadRequest
from shared.platform.http import FunctionRoutes, json_body, json_response
from shared.platform.logs import configure_logging

configure_logging("settings")
routes = FunctionRoutes()
defaults = ToolDefaults()


@routes.get("/api/v1/settings/<tool>")
def get_settings(request: flask.Request, tool: str) -> flask.Response:
    return json_response(ToolSettingsOut(tool=tool, params=defaults.get(tool, caller(request.headers)).model_dump()))


@routes.put("/api/v1/settings/<tool>")
def put_settings(request: flask.Request, tool: str) -> flask.Response:
    payload = json_body(request)
    if not isinstance(payload, dict):
        raise BadRequest("Request body must be a JSON object of the tool's parameters")
    return json_response(ToolSettingsOut(tool=tool, params=defaults.put(tool, caller(request.headers), payload).model_dump()))


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

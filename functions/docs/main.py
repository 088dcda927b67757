"""GET /openapi.json (the API's OpenAPI document), GET /docs (it, rendered by Swagger UI, whose
files come from the swagger-ui-bundle wheel: no CDN) and GET /docs/{asset}. No key needed."""

import json
from pathlib import Path

import flask
import swagger_ui_bundle

from shared.openapi import openapi_document
from shared.platform.errors import NotFound
from shared.platform.http import NOSNIFF, FunctionRoutes
from shared.platform.logs import configure_logging

configure_logging("docs")
routes = FunctionRoutes()
DOCUMENT = json.dumps(openapi_document())
ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
SERVED_ASSETS = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"}
#: The page's one script of its own, a file (no inline script: the CSP allows none); no validator badge
#: (it would load an image from validator.swagger.io).
INITIALIZER = 'SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", validatorUrl: null});\n'
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>visionfn API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"><link rel="icon" href="/docs/favicon-32x32.png"></head>
<body><div id="ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/visionfn-docs.js"></script>
</body></html>"""
#: The page runs only the files above and talks only to this origin (the document, "Try it out");
#: Swagger UI's stylesheet draws its icons from data: URLs.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@routes.get("/openapi.json")
def document(_request: flask.Request) -> flask.Response:
    return flask.Response(DOCUMENT, mimetype="application/json", headers=NOSNIFF)


@routes.get("/docs")
def page(_request: flask.Request) -> flask.Response:
    return flask.Response(PAGE, mimetype="text/html", headers=PAGE_HEADERS)


@routes.get("/docs/<asset>")
def asset(_request: flask.Request, asset: str) -> flask.Response:
    if asset == "visionfn-docs.js":
        return flask.Response(INITIALIZER, mimetype="text/javascript", headers=NOSNIFF)
    if asset not in SERVED_ASSETS:
        raise NotFound(f"No such file: {asset}")
    mimetype = {"css": "text/css", "js": "text/javascript", "png": "image/png"}[asset.rsplit(".", 1)[1]]
    return flask.Response((ASSETS / asset).read_bytes(), mimetype=mimetype, headers=NOSNIFF)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

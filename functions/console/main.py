"""GET / (the web console's page) and GET /console/{file+} (its scripts, styles and icons), from
functions/console/static/. No key: the page asks for one and sends it with each API call."""

from pathlib import Path
from urllib.parse import urlsplit

import flask
from botocore.exceptions import BotoCoreError

from shared.platform.errors import NotFound
from shared.platform.http import FunctionRoutes
from shared.platform.logs import configure_logging
from shared.platform.storage import get_object_store

configure_logging("console")
routes = FunctionRoutes()
STATIC = Path(__file__).resolve().parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}


def bucket_origin() -> str:
    """Where the bucket's presigned links point (LocalStack here, S3's host in the cloud): the
    console sends large files there and follows 303 downloads there. Signing needs no network."""
    try:
        url = urlsplit(
            get_object_store().client.generate_presigned_url(
                "get_object", Params={"Bucket": get_object_store().bucket, "Key": "console"}, ExpiresIn=60
            )
        )
    except BotoCoreError:  # no credentials to sign with: the console then talks to its origin only
        return ""
    return f" {url.scheme}://{url.netloc}"


#: The console runs only its own files and talks only to this origin and the bucket (no CDN, no
#: inline script).
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    f"media-src 'self' blob:; connect-src 'self'{bucket_origin()}; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@routes.get("/")
def page(_request: flask.Request) -> flask.Response:
    return _file("index.html")


@routes.get("/console/<path:name>")
def static_file(_request: flask.Request, name: str) -> flask.Response:
    return _file(name)


def _file(name: str) -> flask.Response:
    if not name.isprintable():  # a NUL or another control character names no file (and no path holds a NUL)
        raise NotFound(f"No such console file: {name!r}")
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file() or path.suffix not in TYPES:
        raise NotFound(f"No such console file: {name}")
    return flask.Response(path.read_bytes(), headers={"Content-Type": TYPES[path.suffix], **HEADERS})


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)

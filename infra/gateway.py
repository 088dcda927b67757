"""The local API gateway: routes from template.yaml's API events, streamed to the functions.

``python -m infra.gateway ROUTES_JSON PORT`` where ROUTES_JSON lists
``{"method", "path", "function", "upstream"}``; path parameters use the API Gateway syntax.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from infra.metrics import MetricLines, prometheus_text
from infra.processes import RESTART_POLL_SECONDS
from infra.settings import REUSE_IDLE_SECONDS, get_runner_settings
from shared.platform.access import OWNER_HEADER, PLATFORM_HEADERS, PLATFORM_TOKEN_HEADER, api_key_of
from shared.platform.errors import PayloadTooLarge
from shared.platform.keys import ApiKeys, key_hash
from shared.platform.logs import REQUEST_ID_HEADER, configure_logging, log_context, new_request_id, valid_request_id

log = logging.getLogger("visionfn.gateway")

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
}
_PLATFORM_HEADERS = {name.lower() for name in PLATFORM_HEADERS}
#: A client's word on how its request reached us, or headers a server reads as its own variables:
#: never passed on (the gateway sets X-Forwarded-For/Host/Proto itself). Also every header whose
#: name has a `_` (SCRIPT_NAME, PATH_INFO, X_Forwarded_For: WSGI servers map `-` and `_` alike) and
#: every X-Forwarded-*.
CLIENT_FORWARDING_HEADERS = {
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "client-ip",
    "via",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "proxy",
}
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


class KeyCheck:
    """API keys checked against the database (off the event loop), each answer remembered for
    ``cache_seconds``: a revoked key stops working within that time."""

    def __init__(self, keys: ApiKeys, cache_seconds: float) -> None:
        self.keys = keys
        self.cache_seconds = cache_seconds
        self._known: dict[str, tuple[str | None, float]] = {}

    async def owner(self, key: str) -> str | None:
        digest = key_hash(key)
        known = self._known.get(digest)
        if known and known[1] > time.monotonic():
            return known[0]
        owner = await asyncio.to_thread(self.keys.owner_of, key)
        if len(self._known) > 10_000:  # keys guessed at random must not grow it without bound
            self._known.clear()
        self._known[digest] = (owner, time.monotonic() + self.cache_seconds)
        return owner


@dataclass(frozen=True)
class BodyLimits:
    max_body_bytes: int
    body_read_timeout: float


KEYS: web.AppKey[KeyCheck | None] = web.AppKey("keys", KeyCheck)
LIMITS: web.AppKey[BodyLimits] = web.AppKey("limits", BodyLimits)
PLATFORM_TOKEN: web.AppKey[str | None] = web.AppKey("platform_token", str)
METRICS: web.AppKey[MetricLines] = web.AppKey("metrics", MetricLines)
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_ID = "visionfn.request_id"  # the request's id, where its handler finds it


@dataclass(frozen=True)
class GatewayRoute:
    method: str
    path: str
    function: str
    upstream: str  # http://127.0.0.1:PORT
    timeout: int = 30  # the function's Timeout, at most API Gateway's 30 s: no answer by then is a 504
    public: bool = False  # the template's `Auth: {Authorizer: NONE}`: no API key needed


def passed_on(name: str) -> bool:
    """Whether a client's request header reaches the function: not hop-by-hop, not the platform's,
    not a server variable or a forwarding header."""
    lower = name.lower()
    return not (
        lower in HOP_BY_HOP
        or lower in _PLATFORM_HEADERS
        or lower in CLIENT_FORWARDING_HEADERS
        or "_" in lower
        or lower.startswith("x-forwarded")
    )


def load_routes(path: Path) -> list[GatewayRoute]:
    return [GatewayRoute(**item) for item in json.loads(path.read_text())]


#: On every JSON answer of the gateway's own: its type is the one given, never sniffed.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def _json(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=NOSNIFF)


def malformed(message: str | None, status: int) -> str:
    """What was wrong with a request aiohttp could not parse, without anything the client sent (a
    malformed header may hold a key): the first words of aiohttp's message, up to a quote or colon."""
    first_line = (message or "").split("\n", 1)[0]
    what = re.split(r"[:'\"]", first_line, maxsplit=1)[0].strip().rstrip(".")
    return what or HTTPStatus(status).phrase


def answer_protocol_error(
    self: RequestHandler, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
) -> web.StreamResponse:
    """aiohttp's answer to a request it could not parse (and to an error no middleware caught), in
    the API's JSON. A client's malformed request is logged in one line that, like the answer,
    repeats nothing it sent; a 500 is logged with its traceback."""
    if status >= 500:  # a handler's error (500) or timeout (504): ours, with its traceback
        self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        detail = "Internal error" if status == 500 else HTTPStatus(status).phrase
    else:
        detail = f"Malformed HTTP request: {malformed(message, status)}"
        log.warning("refused a malformed request from %s: %s (%s, HTTP %d)", request.remote, detail, type(exc).__name__, status)
    if request.writer.output_size > 0:  # as aiohttp's own: nothing more can be sent
        raise ConnectionError("Response is sent already, cannot send another response with the error message")
    response = _json(status, detail)
    response.force_close()
    return response


@web.middleware
async def request_ids(request: web.Request, handler):  # noqa: ANN001, ANN201 (aiohttp middleware)
    """Every request gets its id (the client's ``X-Request-Id`` when safe, else a new one, as API
    Gateway makes one): sent on to the function, answered, and on the two lines logged per request
    (its arrival; its answer, with status and duration)."""
    request_id = valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    with log_context(request_id=request_id):
        log.info("%s %s received", request.method, request.rel_url.path, extra={"method": request.method, "path": request.rel_url.path})
        response = await handler(request)
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        log.info(
            "%s %s %d",
            request.method,
            request.rel_url.path,
            response.status,
            extra={
                "method": request.method,
                "path": request.rel_url.path,
                "status": response.status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
    return response


@web.middleware
async def json_errors(request: web.Request, handler):  # noqa: ANN001, ANN201 (aiohttp middleware)
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as error:
        return _json(405, f"Method {request.method} not allowed on {request.path}; allowed: {', '.join(sorted(error.allowed_methods))}")
    except web.HTTPNotFound:
        return _json(404, f"No route for {request.method} {request.path}")


class BodyRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class RequestBody:
    """The client's body, read as it arrives: at most ``limit`` bytes counted as actually read
    (a chunked body has no length to trust), each piece within ``read_timeout`` seconds (a slow
    client cannot hold a function's thread). A refusal is kept in ``refused``."""

    def __init__(self, request: web.Request, limit: int, read_timeout: float) -> None:
        self.request = request
        self.limit = limit
        self.read_timeout = read_timeout
        self.refused: BodyRefused | None = None
        self.started = False  # a piece of it was read (and so sent on)

    async def chunks(self):  # noqa: ANN201 (an async generator of bytes)
        """The body as it arrives, streamed on to the function."""
        self.started = True
        async for chunk in self._pieces():
            yield chunk

    async def _pieces(self):  # noqa: ANN202 (an async generator of bytes)
        received = 0
        while True:
            try:
                chunk = await asyncio.wait_for(self.request.content.readany(), self.read_timeout)
            except TimeoutError:
                self.refused = BodyRefused(408, f"The request body did not arrive in time (nothing for {self.read_timeout:.0f} s)")
                raise self.refused from None
            if not chunk:
                return
            received += len(chunk)
            if received > self.limit:
                self.refused = BodyRefused(413, PayloadTooLarge.request_body(None, self.limit).detail)
                raise self.refused
            yield chunk

    async def buffered(self) -> bytes:
        """The whole body (for a chunked one: forwarded with its length once it is complete)."""
        return b"".join([chunk async for chunk in self._pieces()])


def _unauthorized(detail: str) -> web.Response:
    response = _json(401, detail)
    response.headers["WWW-Authenticate"] = 'Bearer realm="visionfn"'
    return response


class Refused(Exception):
    """The gateway answers the client itself (no key, a body it will not forward)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def forward(request: web.Request, route: GatewayRoute) -> web.StreamResponse:
    """Check the API key (unless the route is public), then stream the request to the function
    and its answer back, headers kept; the owner and the platform token go with it."""
    try:
        headers = await upstream_headers(request, route)
        body = RequestBody(request, request.app[LIMITS].max_body_bytes, request.app[LIMITS].body_read_timeout)
        data = await upstream_body(request, body, headers)
    except Refused as refused:
        return refused.response
    try:
        return await relay_through_restarts(request, route, headers, data, body)
    except (BodyRefused, aiohttp.ClientError) as error:
        if body.refused is not None:  # the client's body failed on the way: its fault, said so
            return _json(body.refused.status, body.refused.detail)
        if not isinstance(error, aiohttp.ClientConnectionError):
            raise
        log.error("function %s at %s unreachable: %s", route.function, route.upstream, error)
        return _json(502, f"Function {route.function} did not answer (its process stopped or is restarting); try again")
    except TimeoutError:
        log.error("function %s timed out after %d s", route.function, route.timeout)
        return _json(
            504,
            f"Function {route.function} did not answer within {route.timeout} s, the longest an HTTP "
            "route waits (API Gateway's integration timeout is 30 s): send long work as an asynchronous "
            "task or through the bucket's inbox",
        )


async def verified_owner(request: web.Request) -> str | None:
    """The owner of the request's API key (None when the gateway checks no keys); 401 without a valid one."""
    keys = request.app[KEYS]
    if keys is None:
        return None
    key = api_key_of(request.headers)
    if key is None:
        raise Refused(_unauthorized("An API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"))
    owner = await keys.owner(key)
    if owner is None:
        raise Refused(_unauthorized("The API key is not valid (unknown or revoked)"))
    return owner


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: what the platform's EMF lines say (infra/metrics.py), as Prometheus text; the
    caller's own figures where a figure belongs to an owner. Local only: deployed, CloudWatch
    reads the same lines."""
    try:
        owner = await verified_owner(request)
    except Refused as refused:
        return refused.response
    lines = request.app[METRICS]
    body = await asyncio.get_running_loop().run_in_executor(None, lambda: prometheus_text(lines.read().visible_to(owner)))
    return web.Response(body=body, headers={"Content-Type": PROMETHEUS_TYPE, "Cache-Control": "no-store", **NOSNIFF})


async def upstream_headers(request: web.Request, route: GatewayRoute) -> dict[str, str]:
    """What the function sees of the client's headers, with the verified key's owner, the
    platform token and the gateway's own forwarding headers; 401 without a valid key."""
    headers = {key: value for key, value in request.headers.items() if passed_on(key) and key.lower() != "x-request-id"}
    if not route.public and (owner := await verified_owner(request)) is not None:
        headers[OWNER_HEADER] = owner
    if token := request.app[PLATFORM_TOKEN]:
        headers[PLATFORM_TOKEN_HEADER] = token
    headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    headers["X-Forwarded-For"] = request.remote or ""
    headers["X-Forwarded-Host"] = request.host
    headers["X-Forwarded-Proto"] = request.scheme
    return headers


async def upstream_body(request: web.Request, body: RequestBody, headers: dict[str, str]) -> Any:
    """The body to forward: none, a chunked one read whole (its length cannot be trusted), or
    the client's stream counted as it arrives; 413/415/408 for what the cloud would refuse."""
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise Refused(_json(415, "Compressed request bodies (Content-Encoding) are not accepted; send the body as it is"))
    if (request.content_length or 0) > body.limit:
        raise Refused(_json(413, PayloadTooLarge.request_body(request.content_length, body.limit).detail))
    try:
        if not request.body_exists:
            return None
        if request.content_length is None:
            headers.pop("Transfer-Encoding", None)
            return await body.buffered()
        return body.chunks()
    except BodyRefused as refused:
        raise Refused(_json(refused.status, refused.detail)) from None


async def relay_through_restarts(
    request: web.Request, route: GatewayRoute, headers: dict[str, str], data: Any, body: RequestBody
) -> web.StreamResponse:
    """``relay``; while the function refuses connections (it is being restarted) the request waits
    for it within the route's timeout, as a request waits for a cold start on Lambda. A request
    whose body started on its way to the function is not sent again."""
    deadline = time.monotonic() + route.timeout
    while True:
        try:
            return await relay(request, route, headers, data)
        except aiohttp.ClientConnectorError:
            if body.started or time.monotonic() > deadline:
                raise
            await asyncio.sleep(RESTART_POLL_SECONDS)


async def relay(request: web.Request, route: GatewayRoute, headers: dict[str, str], data: Any) -> web.StreamResponse:
    """The function's answer, streamed back with its headers (hop-by-hop ones left out)."""
    async with request.app[SESSION].request(
        request.method,
        route.upstream + request.rel_url.raw_path_qs,
        headers=headers,
        data=data,
        allow_redirects=False,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=route.timeout, sock_connect=5),
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in HOP_BY_HOP:
                response.headers.add(key, value)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def _open_session(app: web.Application) -> None:
    app[SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(keepalive_timeout=REUSE_IDLE_SECONDS),  # let go before the function does
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
    )


async def _close_session(app: web.Application) -> None:
    await app[SESSION].close()


def aiohttp_path(path: str) -> str:
    """API Gateway's greedy ``{name+}`` becomes aiohttp's ``{name:.+}``; ``{name}`` stays."""
    return re.sub(r"\{(\w+)\+\}", r"{\1:.+}", path)


def build_app(routes: list[GatewayRoute], keys: KeyCheck | None = None, platform_token: str | None = None) -> web.Application:
    """The gateway; without ``keys`` no route asks for an API key (tests of the proxying alone)."""
    # aiohttp takes no error page of ours for what it cannot parse: its handler's method is ours
    RequestHandler.handle_error = answer_protocol_error  # type: ignore[method-assign]
    app = web.Application(middlewares=[request_ids, json_errors])
    app[KEYS] = keys
    app[PLATFORM_TOKEN] = platform_token
    settings = get_runner_settings()
    app[LIMITS] = BodyLimits(settings.sync_body_bytes, settings.body_read_timeout)
    app[METRICS] = MetricLines(settings.log_dir)
    app.router.add_get("/metrics", metrics)
    for route in routes:
        app.router.add_route(route.method, aiohttp_path(route.path), partial(forward, route=route))
    app.on_startup.append(_open_session)
    app.on_cleanup.append(_close_session)
    return app


def main() -> None:
    configure_logging("gateway")
    routes_file, port = Path(sys.argv[1]), int(sys.argv[2])
    routes = load_routes(routes_file)
    for route in routes:
        log.info("%-6s %-40s -> %s (%s)", route.method, route.path, route.function, route.upstream)
    settings = get_runner_settings()
    keys = KeyCheck(ApiKeys(), settings.key_cache_seconds)
    web.run_app(build_app(routes, keys, settings.platform_token), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()

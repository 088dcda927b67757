"""The gateway over real HTTP: path parameters, streaming bodies, headers, JSON errors."""

import asyncio
import hashlib
import json
import os
import threading

import pytest
import requests
from aiohttp import web

from infra.gateway import LIMITS, BodyLimits, GatewayRoute, build_app
from tests.platform import free_port_block


async def _echo(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path,
            "size": size,
            "sha256": digest.hexdigest(),
            "x_custom": request.headers.get("X-Custom"),
            "forwarded_host": request.headers.get("X-Forwarded-Host"),
            "headers": {name.lower(): value for name, value in request.headers.items()},
        },
        headers={"X-Faces-Count": "3", "Set-Cookie": "a=1"},
    )


async def _slow(_request: web.Request) -> web.Response:
    await asyncio.sleep(3)  # longer than the route's timeout of 1 s
    return web.json_response({})


async def _large(_request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(_request)
    for _ in range(64):
        await response.write(b"x" * 65536)
    return response


class ServerThread:
    """Runs aiohttp apps on 127.0.0.1 in a background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.runners: list[web.AppRunner] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def serve(self, app: web.Application, port: int) -> None:
        async def start() -> None:
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def close(self) -> None:
        for runner in self.runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def gateway():
    upstream_port, gateway_port, dead_port, late_port = (lambda base: (base, base + 1, base + 2, base + 3))(free_port_block(4, 31100))
    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", _echo)
    upstream.router.add_get("/large", _large)
    upstream.router.add_get("/slow", _slow)
    routes = [
        GatewayRoute("POST", "/process", "face", f"http://127.0.0.1:{upstream_port}"),
        GatewayRoute("GET", "/api/v1/tasks/{uid}", "tasks", f"http://127.0.0.1:{upstream_port}"),
        GatewayRoute("GET", "/large", "tasks", f"http://127.0.0.1:{upstream_port}"),
        GatewayRoute("GET", "/down", "ghost", f"http://127.0.0.1:{dead_port}", timeout=1),
        GatewayRoute("POST", "/late", "sleeper", f"http://127.0.0.1:{late_port}", timeout=10),
        GatewayRoute("GET", "/slow", "sleepy", f"http://127.0.0.1:{upstream_port}", timeout=1),
    ]
    servers = ServerThread()
    servers.serve(upstream, upstream_port)
    app = build_app(routes)
    app[LIMITS] = BodyLimits(max_body_bytes=8_000_000, body_read_timeout=2)
    servers.serve(app, gateway_port)
    GATEWAY_PORTS["late"] = late_port
    GATEWAY_PORTS["servers"] = servers
    yield f"http://127.0.0.1:{gateway_port}"
    servers.close()


GATEWAY_PORTS: dict = {}


def test_a_request_to_a_function_being_restarted_waits_for_it_as_for_a_cold_start(gateway):
    """GIVEN a function that listens only 0.8 s after the request arrives (it is being restarted),
    WHEN a request with a body comes, THEN it is answered once the function is up, not a 502."""
    late = web.Application()
    late.router.add_route("*", "/{tail:.*}", _echo)
    threading.Timer(0.8, GATEWAY_PORTS["servers"].serve, args=(late, GATEWAY_PORTS["late"])).start()
    response = requests.post(f"{gateway}/late", data=b"x" * 1000, timeout=30)
    assert response.status_code == 200 and response.json()["size"] == 1000


def test_body_is_streamed_intact_and_headers_kept(gateway):
    body = os.urandom(5 * 1024 * 1024 + 17)
    response = requests.post(f"{gateway}/process?mode=blur", data=body, headers={"X-Custom": "kept"}, timeout=30)
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["path"] == "/process?mode=blur"
    assert (echoed["size"], echoed["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert echoed["x_custom"] == "kept" and echoed["forwarded_host"]
    assert response.headers["X-Faces-Count"] == "3"


def test_bodies_over_the_limit_compressed_or_stalled_are_refused(gateway):
    import gzip
    import socket
    import time

    limit = 8_000_000
    big = os.urandom(limit + 1)
    declared = requests.post(f"{gateway}/process", data=big, timeout=30)
    assert declared.status_code == 413 and "carries at most 8000000 bytes" in declared.json()["detail"]
    chunked = requests.post(f"{gateway}/process", data=iter([big[:4_000_000], big[4_000_000:]]), timeout=30)
    assert chunked.status_code == 413  # counted as read: a chunked body has no length to trust
    zipped = requests.post(f"{gateway}/process", data=gzip.compress(b"x" * 10_000_000), headers={"Content-Encoding": "gzip"}, timeout=30)
    assert zipped.status_code == 415
    broken = requests.post(f"{gateway}/process", data=b"not gzip", headers={"Content-Encoding": "gzip"}, timeout=30)
    assert broken.status_code == 415
    host, port = gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as slow:  # a client that stops sending
        slow.sendall(b"POST /process HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
        started = time.monotonic()
        answer = slow.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408") and time.monotonic() - started < 25
    assert requests.post(f"{gateway}/process", data=b"fine", timeout=10).status_code == 200  # others were served


def test_an_absolute_form_request_target_is_routed_by_its_path(gateway):
    import socket

    host, port = gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(f"GET http://{host}:{port}/api/v1/tasks/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b'"path": "/api/v1/tasks/abc"' in answer


def test_chunked_request_body_is_forwarded(gateway):
    chunks = [os.urandom(100_000) for _ in range(5)]
    response = requests.post(f"{gateway}/process", data=iter(chunks), timeout=30)
    assert response.json()["sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_path_parameters_route_and_large_responses_stream(gateway):
    assert requests.get(f"{gateway}/api/v1/tasks/abc123", timeout=10).json()["path"] == "/api/v1/tasks/abc123"
    assert len(requests.get(f"{gateway}/large", timeout=10).content) == 64 * 65536


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [
        ("GET", "/nowhere", 404, "No route for GET /nowhere"),
        ("GET", "/api/v1/tasks/a/b", 404, "No route for GET /api/v1/tasks/a/b"),
        ("DELETE", "/process", 405, "Method DELETE not allowed on /process; allowed: POST"),
        ("GET", "/down", 502, "Function ghost did not answer (its process stopped or is restarting); try again"),
        (
            "GET",
            "/slow",
            504,
            "Function sleepy did not answer within 1 s, the longest an HTTP route waits (API "
            "Gateway's integration timeout is 30 s): send long work as an asynchronous task or through "
            "the bucket's inbox",
        ),
    ],
)
def test_errors_are_json(gateway, method, path, status, detail):
    response = requests.request(method, f"{gateway}{path}", timeout=10)
    assert response.status_code == status
    assert response.json() == {"detail": detail}


def test_a_clients_forwarding_and_server_headers_stay_with_the_gateway(gateway):
    sent = {
        "SCRIPT_NAME": "/nope",
        "PATH_INFO": "/api/v1/files",
        "X_Custom": "x",
        "X-Forwarded-Ssl": "on",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "6.6.6.6",
        "Forwarded": "for=6.6.6.6",
        "X-Real-IP": "6.6.6.6",
        "X-Original-URL": "/admin",
        "X-Custom": "kept",
    }
    headers = requests.get(f"{gateway}/api/v1/tasks/abc", headers=sent, timeout=10).json()["headers"]
    assert headers["x-custom"] == "kept"
    assert not {name for name in headers if "_" in name} | {"forwarded", "x-real-ip", "x-original-url", "x-forwarded-ssl"} & set(headers)
    assert (headers["x-forwarded-for"], headers["x-forwarded-proto"]) == ("127.0.0.1", "http")  # the gateway's own


@pytest.mark.parametrize(
    "header",
    [b"Authorization: Bearer vfn_secret_key_123\x00", b"X-API-Key: vfn_secret_key_123\x7f", b"Authori zation: Bearer vfn_secret_key_123"],
)
def test_a_malformed_request_is_refused_in_json_and_never_echoed_nor_logged(gateway, caplog, header):
    import socket

    host, port = gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(b"GET /api/v1/tasks/abc HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and b"application/json" in head and b"nosniff" in head
    assert json.loads(body)["detail"].startswith("Malformed HTTP request")
    assert b"secret" not in answer and "secret" not in caplog.text

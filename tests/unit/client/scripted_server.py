"""A scripted HTTP server on 127.0.0.1 for the client's tests: each request gets the next scripted
answer, and every request is recorded."""

from __future__ import annotations

import http.server
import json
import threading
from collections import deque

from visionfn import Client


class Scripted(http.server.ThreadingHTTPServer):
    """Answers each request with the next scripted (status, body, headers); records what came."""

    daemon_threads = True

    def __init__(self) -> None:
        self.script: deque[tuple[int, bytes | dict | list, dict[str, str]]] = deque()
        self.requests: list[dict] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def then(self, status: int, body: bytes | dict | list = b"", **headers: str) -> Scripted:
        self.script.append((status, body, headers))
        return self


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        status, payload, headers = self.server.script.popleft() if self.server.script else (500, {"detail": "unscripted"}, {})
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        if not isinstance(payload, bytes):
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


def client_of(server: Scripted, **options) -> tuple[Client, list[float]]:
    sleeps: list[float] = []
    return Client(server.url, "vfn_test", sleep=sleeps.append, **options), sleeps


TASK = {
    "uid": "a" * 32,
    "status": "queued",
    "tool": "template",
    "params": {},
    "input_files": [],
    "thumbnails": [],
    "result_files": [],
    "result_data": None,
    "error": None,
    "attempts": 0,
}

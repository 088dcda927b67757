"""A webhook receiver on 127.0.0.1 for the tests: records every request, answers as told."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.time() when the body had arrived


def answer(status: int, body: bytes = b"ok", headers: tuple[tuple[str, str], ...] = ()) -> Behaviour:
    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behaviour


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, behaviour: Behaviour | None = None, port: int = 0) -> None:
        self.behaviour = behaviour or answer(200)
        self.received: list[Received] = []
        self.lock = threading.Condition()
        super().__init__(("127.0.0.1", port), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """The first ``count`` requests, once they have arrived."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} of {count} requests arrived within {timeout} s")
                self.lock.wait(left)
            return list(self.received[:count])

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append(
                Received(self.path, {name.lower(): value for name, value in self.headers.items()}, body, time.time())
            )
            self.server.lock.notify_all()
        self.server.behaviour(self)

    do_GET = do_POST


# --- verification as receivers do it ------------------------------------------------------------


def seed_verify_signature(body: bytes, secret: str, signature: str) -> bool:
    """The seed's snippet (aerovision-api.txt, "Подпись HMAC-SHA256"), unchanged."""
    expected = (
        "sha256="
        + hmac.new(
            secret.encode(),
            body,
            hashlib.sha256,
        ).hexdigest()
    )
    return hmac.compare_digest(expected, signature)


def standard_webhooks_verify(whsec: str, headers: dict[str, str], body: bytes, now: int, tolerance: int = 300) -> bool:
    """Standard Webhooks verification, written from the specification (not from our signer):
    ``whsec_`` + base64 key; HMAC-SHA256 over ``id.timestamp.body``; ``v1,<base64>`` entries
    separated by spaces; a timestamp far from now is a replay."""
    headers = {name.lower(): value for name, value in headers.items()}
    key = base64.b64decode(whsec.removeprefix("whsec_"))
    message_id, timestamp = headers["webhook-id"], int(headers["webhook-timestamp"])
    if abs(now - timestamp) > tolerance:
        return False
    content = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False

"""One webhook POST, safe to aim at any URL a client registered.

The host is resolved once; every address must pass ``addresses.address_problem`` at the URL's
port (so a name that resolved to a public address at registration and to a private one, or to
the platform's own services, now is refused: DNS rebinding); the connection goes to the first of
those checked addresses (an IPv4-mapped one as its IPv4 address, what was judged), with the Host
header and TLS (SNI and certificate verification) for the name. Redirects are not followed (a
3xx is a failed attempt). The whole attempt (resolving, connecting, sending, reading the answer)
ends within ``timeout`` seconds: past it the socket is shut, however slowly the receiver trickles
bytes. At most ``excerpt_bytes`` of the answer are read. A 429 or 503 answer's ``Retry-After``
(seconds or an HTTP date) is read as seconds from now.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from shared.webhooks.addresses import (
    NO_PLATFORM,
    IPNetwork,
    PlatformServices,
    Resolver,
    UrlRefused,
    connect_address,
    parse_url,
    refused_addresses,
    resolve,
)

#: Answers whose ``Retry-After`` says when to try again.
RETRY_AFTER_STATUSES = (429, 503)


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None  # the receiver's HTTP status (None: no answer)
    error: str | None  # why the attempt failed (None: 2xx)
    duration_ms: int
    response_excerpt: str  # the start of the answer's body
    address: str | None  # the IP address connected to
    retry_after_seconds: float | None = None  # a 429's or 503's Retry-After, from the answer's arrival

    @property
    def ok(self) -> bool:
        return self.error is None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a checked address (the Host header carries the name)."""


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with SNI and certificate verification for the name."""

    def __init__(self, address: str, port: int, server_hostname: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname
        self._verifying = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._verifying.wrap_socket(sock, server_hostname=self._server_hostname)


_tls = ssl.create_default_context()


class _Deadline:
    """Shuts the connection's socket when the attempt's time is up (a read blocked on a receiver
    that trickles bytes then fails at once instead of waiting out one timeout per read)."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.connection = connection
        self.expired = False
        self.timer = threading.Timer(max(seconds, 0.001), self._expire)
        self.timer.daemon = True
        self.timer.start()

    def _expire(self) -> None:
        self.expired = True
        sock = self.connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self.timer.cancel()


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    resolver: Resolver,
    allowed: Sequence[IPNetwork],
    timeout: float,
    excerpt_bytes: int,
    tls: ssl.SSLContext | None = None,
    platform: PlatformServices = NO_PLATFORM,
) -> AttemptResult:
    """POST ``body`` to ``url``: the outcome, never an exception. ``tls``: the certificates trusted
    (the system's by default); ``platform``: services never reached, whatever is allowed."""
    started = time.monotonic()

    def result(
        status: int | None, error: str | None, excerpt: bytes = b"", address: str | None = None, retry_after: float | None = None
    ) -> AttemptResult:
        duration = round((time.monotonic() - started) * 1000)
        return AttemptResult(status, error, duration, excerpt.decode("utf-8", "replace"), address, retry_after)

    try:
        target = parse_url(url)
        addresses = resolve(resolver, target.host, target.port, timeout)
        refused = refused_addresses(target.host, addresses, allowed, target.port, platform)
        if refused:
            return result(None, f"refused: {refused}")
    except UrlRefused as error:
        return result(None, f"refused: {error}")
    checked = ipaddress.ip_address(addresses[0].split("%", 1)[0])
    reached = connect_address(checked)  # ::ffff:a.b.c.d: a.b.c.d, the address that was judged
    address = addresses[0] if reached == checked else str(reached)
    remaining = timeout - (time.monotonic() - started)
    connection: Any
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(address, target.port, target.host, remaining, tls or _tls)
    else:
        connection = _PinnedHTTPConnection(address, target.port, timeout=remaining)
    deadline = _Deadline(connection, remaining)
    try:
        try:
            connection.request("POST", target.path, body=body, headers={**headers, "Host": target.host_header})
            response = connection.getresponse()
        except (OSError, http.client.HTTPException, ValueError) as error:
            if deadline.expired or isinstance(error, TimeoutError):
                return result(None, f"timed out after {timeout:g} s", address=address)
            return result(None, _describe(error), address=address)
        if deadline.expired:  # the socket was shut while the status and headers came in: they are cut short
            return result(None, f"timed out after {timeout:g} s", address=address)
        try:  # the answer's status decides; its body is only an excerpt for the log
            excerpt = response.read(excerpt_bytes) if excerpt_bytes else b""
        except (OSError, http.client.HTTPException, ValueError):
            excerpt = b""
    finally:
        deadline.cancel()
        connection.close()
    status = response.status
    if 200 <= status < 300:
        return result(status, None, excerpt, address)
    if 300 <= status < 400:
        location = response.getheader("Location") or "nowhere"
        return result(status, f"HTTP {status}: redirects are not followed (to {location[:200]})", excerpt, address)
    retry_after = retry_after_seconds(response.getheader("Retry-After")) if status in RETRY_AFTER_STATUSES else None
    return result(status, f"HTTP {status}", excerpt, address, retry_after)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (Unix time; the clock's by default): a
    number of seconds or an HTTP date (one past is 0). None: absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:  # an HTTP date is always GMT; one without a zone is not one
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _describe(error: Exception) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or error}"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the receiver closed the connection without answering"
    if isinstance(error, http.client.HTTPException):
        return f"bad HTTP answer: {type(error).__name__} {error}"[:300]
    return f"{type(error).__name__}: {error}"[:300]

"""Which URLs and addresses a webhook may reach: no server-side request forgery.

A hook's URL must be ``http`` or ``https`` with a host, no credentials and no control
characters. Its host is resolved once per check, and every address it resolves to must be a
public one: loopback, private (RFC 1918, ULA), link-local (with the cloud metadata service),
carrier-grade NAT, multicast, unspecified, reserved and documentation ranges are refused,
also when written in another form (``2130706433``, ``0177.0.0.1``, ``::ffff:127.0.0.1``,
``64:ff9b::7f00:1``, ``2002:7f00:1::``), unless an operator allows a network
(``VISIONFN_WEBHOOK_ALLOWED_NETWORKS``). The delivery connects to the address that was checked
(see ``delivery``), so a name that resolves elsewhere later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolver(host, port)`` -> the addresses the name resolves to, in the order to try them.
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
#: The instance metadata services (AWS, GCP and Azure use 169.254.169.254; AWS's IPv6 one).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254"))
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: an IPv4 address in the last 32 bits


class UrlRefused(ValueError):
    """The URL may not be used as a webhook; the message says why (safe to show the client)."""


@dataclass(frozen=True)
class Target:
    """Where a URL points: what to resolve and connect to, and what to ask for."""

    scheme: str  # http | https
    host: str  # the name (or IP literal, without brackets) to resolve and verify TLS against
    port: int
    path: str  # path and query, never empty
    host_header: str  # the Host header: the host as written, with a port when not the default


def parse_url(url: str) -> Target:
    """The URL's target; ``UrlRefused`` for anything but a plain http(s) URL with a host."""
    if not isinstance(url, str) or not url:
        raise UrlRefused("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"URL is {len(url)} characters; the limit is {MAX_URL_LENGTH}")
    if any(unicodedata.category(char) in ("Cc", "Zs", "Zl", "Zp") for char in url):
        raise UrlRefused("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UrlRefused(f"URL is malformed: {error}") from error
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlRefused(f"URL scheme must be http or https, not {parts.scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("URL must not contain credentials (user:password@); sign with the secret instead")
    host = parts.hostname
    if not host:
        raise UrlRefused("URL has no host")
    if port == 0:
        raise UrlRefused("URL port must be 1-65535")
    try:
        host.encode("idna") if not _is_ip_literal(host) else None
    except UnicodeError as error:
        raise UrlRefused(f"URL host {host!r} is not a valid name: {error}") from error
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host_header = parts.netloc.rsplit("@", 1)[-1]
    if not host_header.isascii():  # an internationalised name goes out in its ASCII (punycode) form
        host_header = host.encode("idna").decode() + (f":{port}" if port else "")
    return Target(scheme, host, port or DEFAULT_PORTS[scheme], path, host_header)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_problem(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why a hook may not connect to ``address`` (None: it may)."""
    if any(address.version == network.version and address in network for network in allowed):
        return None
    inner = embedded_ipv4(address)
    if inner is not None:
        problem = address_problem(inner, allowed)
        return f"{problem} (the IPv4 address {inner} inside {address})" if problem else None
    if address in METADATA_ADDRESSES:
        return "the cloud metadata service"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def refused_addresses(host: str, addresses: Sequence[str], allowed: Sequence[IPNetwork]) -> str | None:
    """Why ``host`` may not be reached at these addresses (the first refused one), or None."""
    if not addresses:
        return f"{host} resolves to no address"
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
        problem = address_problem(address, allowed)
        if problem:
            return f"{text} is {problem}" if text == host else f"{host} resolves to {text}, {problem}"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives (IP literals in any form included), deduplicated."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_resolving = ThreadPoolExecutor(8, thread_name_prefix="webhook-dns")


def resolve(resolver: Resolver, host: str, port: int, timeout: float) -> list[str]:
    """``resolver(host, port)`` within ``timeout`` seconds; ``UrlRefused`` when it fails."""
    future = _resolving.submit(resolver, host, port)
    try:
        return list(future.result(timeout=max(timeout, 0.001)))
    except FutureTimeout as error:
        raise UrlRefused(f"resolving {host} took longer than {timeout:.0f} s") from error
    except (OSError, UnicodeError) as error:
        raise UrlRefused(f"{host} does not resolve: {error}") from error


def check_url(url: str, resolver: Resolver, allowed: Sequence[IPNetwork], timeout: float) -> Target:
    """The URL's target when it may be used now: its syntax and every address it resolves to."""
    target = parse_url(url)
    refused = refused_addresses(target.host, resolve(resolver, target.host, target.port, timeout), allowed)
    if refused:
        raise UrlRefused(f"URL is not allowed: {refused}")
    return target

"""Which URLs and addresses a webhook may reach: no server-side request forgery.

A hook's URL must be ``http`` or ``https`` with a host, no credentials and no control
characters. Its host is resolved once per check (so every written form of an address,
``2130706433``, ``0x7f000001``, ``0177.1``, ``127.1``, full-width digits, ``localhost``, is
judged as the address it is), and every address it resolves to must pass ``address_problem``:

1. The cloud metadata service (169.254.169.254, fd00:ec2::254, ...) is never reached, and neither
   are the platform's own services (``PlatformServices``: LocalStack, the gateway, the functions,
   the database), whatever networks are allowed.
2. An IPv4-mapped address (``::ffff:127.0.0.1``) is its IPv4 address: the connection goes there.
3. An address in an allowed network is reached (``VISIONFN_WEBHOOK_ALLOWED_NETWORKS``, and
   loopback on the local stack).
4. An IPv6 address that carries an IPv4 one (NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
   IPv4-compatible ``::a.b.c.d``, -translated ``::ffff:0:a.b.c.d``) is refused unless the IPv6
   address itself is allowed when the IPv4 address inside is not public, even an allowed one:
   the connection goes to the IPv6 address. (NAT64 and 6to4 of a public one are public.)
5. Otherwise only public addresses: loopback, private (RFC 1918, ULA), link-local, carrier-grade
   NAT, multicast, unspecified, reserved and documentation ranges are refused.

The delivery connects to the address that was checked (see ``delivery``), so a name that
resolves elsewhere later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolver(host, port)`` -> the addresses the name resolves to, in the order to try them.
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
#: The instance metadata services, never reached whatever is allowed: AWS, GCP, Azure and others
#: (169.254.169.254 and AWS's IPv6 fd00:ec2::254), ECS task metadata (169.254.170.2), EKS Pod
#: Identity (169.254.170.23, fd00:ec2::23), Alibaba Cloud (100.100.100.200).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200", "fd00:ec2::254", "fd00:ec2::23")
)
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: an IPv4 address in the last 32 bits
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 (deprecated): ::a.b.c.d
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT): ::ffff:0:a.b.c.d
#: What the local stack lets hooks reach besides public addresses: receivers on this machine.
LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class UrlRefused(ValueError):
    """The URL may not be used as a webhook; the message says why (safe to show the client)."""


@dataclass(frozen=True)
class PlatformServices:
    """The platform's own services, which no hook reaches, however the address is written and
    whatever networks are allowed: ``ports`` (port -> what listens there) on every address that
    is not public (this machine's loopback, unspecified and interface addresses, its network's),
    and ``endpoints`` ((address, port) -> what) at public addresses."""

    ports: Mapping[int, str] = field(default_factory=dict)
    endpoints: Mapping[tuple[IPAddress, int], str] = field(default_factory=dict)

    def problem(self, address: IPAddress, port: int) -> str | None:
        """Why ``address:port`` is one of them (None: it is not)."""
        name = self.endpoints.get((address, port))
        if name is None and port in self.ports and _may_be_this_machine(address):
            name = self.ports[port]
        return f"the platform's own {name} (port {port}), which no webhook may reach" if name else None


NO_PLATFORM = PlatformServices()


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
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, IPv4-compatible or -translated), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address in IPV4_COMPATIBLE and int(address) > 1:  # not :: nor ::1
        return ipaddress.IPv4Address(int(address))
    if address in IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def connect_address(address: IPAddress) -> IPAddress:
    """The address a connection to ``address`` reaches: an IPv4-mapped one is its IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_problem(
    address: IPAddress,
    allowed: Sequence[IPNetwork] = (),
    port: int | None = None,
    platform: PlatformServices = NO_PLATFORM,
) -> str | None:
    """Why a hook may not connect to ``address`` (at ``port``, when given) (None: it may)."""
    reached = connect_address(address)
    if reached != address:  # ::ffff:a.b.c.d is a.b.c.d, for what is allowed as for what is not
        problem = address_problem(reached, allowed, port, platform)
        return f"{problem} (the IPv4 address {reached} inside {address})" if problem else None
    inner = embedded_ipv4(address)
    inside = f" (the IPv4 address {inner} inside {address})" if inner is not None else ""
    if address in METADATA_ADDRESSES or inner in METADATA_ADDRESSES:
        return "the cloud metadata service" + inside
    if port is not None:
        for candidate in (address, inner):
            problem = platform.problem(candidate, port) if candidate is not None else None
            if problem:
                return problem + (inside if candidate is inner else "")
    if any(address.version == network.version and address in network for network in allowed):
        return None
    if inner is not None:
        # the connection goes to the IPv6 address: an allowed IPv4 address inside opens nothing
        problem = _kind_problem(inner)
        if problem:
            return problem + inside
        if address in IPV4_COMPATIBLE or address in IPV4_TRANSLATED:
            return "an IPv6 address carrying an IPv4 one (write the IPv4 address)"
        return None  # NAT64 or 6to4 of a public IPv4 address
    return _kind_problem(address)


def _kind_problem(address: IPAddress) -> str | None:
    """What kind of address that is not public ``address`` is (None: a public one)."""
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


def _may_be_this_machine(address: IPAddress) -> bool:
    """Whether a connection to ``address`` may reach this machine or its network: any address
    that is not public (or that carries one that is not)."""
    inner = embedded_ipv4(address)
    return _kind_problem(address) is not None or (inner is not None and _kind_problem(inner) is not None)


def refused_addresses(
    host: str,
    addresses: Sequence[str],
    allowed: Sequence[IPNetwork],
    port: int | None = None,
    platform: PlatformServices = NO_PLATFORM,
) -> str | None:
    """Why ``host`` may not be reached at these addresses (the first refused one), or None."""
    if not addresses:
        return f"{host} resolves to no address"
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
        problem = address_problem(address, allowed, port, platform)
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


def check_url(
    url: str,
    resolver: Resolver,
    allowed: Sequence[IPNetwork],
    timeout: float,
    platform: PlatformServices = NO_PLATFORM,
) -> Target:
    """The URL's target when it may be used now: its syntax and every address it resolves to."""
    target = parse_url(url)
    addresses = resolve(resolver, target.host, target.port, timeout)
    refused = refused_addresses(target.host, addresses, allowed, target.port, platform)
    if refused:
        raise UrlRefused(f"URL is not allowed: {refused}")
    return target

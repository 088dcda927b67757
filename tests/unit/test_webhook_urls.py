"""Webhooks' URL rules: the syntax a hook's URL must have, how an address is classified, hostile
URLs however the address is written, allowed networks, and names resolving to refused addresses."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from shared.webhooks.addresses import UrlRefused, address_problem, check_url, parse_url, system_resolver


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("ftp://example.com/hook", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("gopher://example.com/", "scheme must be http or https"),
        ("javascript:alert(1)", "scheme must be http or https"),
        ("example.com/hook", "scheme must be http or https"),
        ("http:///path-only", "no host"),
        ("https://user:pass@example.com/", "credentials"),
        ("http://example.com:0/", "port must be 1-65535"),
        ("http://example.com:70000/", "malformed"),
        ("http://[::1/", "malformed"),
        ("http://exa mple.com/", "whitespace or control"),
        ("http://example.com/\x00", "whitespace or control"),
        ("http://" + "a" * 2050 + ".com/", "limit is 2048"),
    ],
)
def test_url_syntax_is_refused_with_a_reason(url, message):
    with pytest.raises(UrlRefused, match=message):
        parse_url(url)


def test_url_target_keeps_the_host_header_and_path():
    target = parse_url("HTTPS://Hooks.Example.com:8443/a/b?x=1#frag")
    assert (target.scheme, target.host, target.port, target.path, target.host_header) == (
        "https",
        "hooks.example.com",
        8443,
        "/a/b?x=1",
        "Hooks.Example.com:8443",
    )
    assert parse_url("http://[2606:4700::1]/").host_header == "[2606:4700::1]"
    assert parse_url("http://example.com").path == "/"
    assert parse_url("https://bücher.example:8443/").host_header == "xn--bcher-kva.example:8443"


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),  # documentation
        ("198.18.0.1", "private"),  # benchmarking
        ("2001:db8::1", "private"),  # documentation
        ("::ffff:127.0.0.1", "loopback address (the IPv4 address 127.0.0.1 inside ::ffff:7f00:1)"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::7f00:1", "loopback address (the IPv4 address 127.0.0.1"),  # NAT64
        ("2002:a00:1::", "private address (the IPv4 address 10.0.0.1"),  # 6to4
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
    ],
)
def test_address_classification(address, problem):
    found = address_problem(ipaddress.ip_address(address))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0177.0.0.1/",  # octal
        "http://0x7f.0.0.1/",  # hex
        "http://127.1/",  # short form
        "http://[::ffff:127.0.0.1]/",
        "http://[0:0:0:0:0:ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1:8080/hook",
        "http://0.0.0.0:80/",
        "http://[::]/",
        "http://localhost/",
    ],
)
def test_hostile_urls_are_refused_however_the_address_is_written(url):
    with pytest.raises(UrlRefused, match="is not allowed"):
        check_url(url, system_resolver, (), timeout=5)


def test_allowed_networks_open_exactly_those_networks():
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    assert check_url("http://2130706433/", system_resolver, allowed, 5).host == "2130706433"
    assert check_url("http://[::ffff:127.0.0.1]:9/", system_resolver, allowed, 5).port == 9
    with pytest.raises(UrlRefused, match=r"10\.0\.0\.1 is a private address"):
        check_url("http://10.0.0.1/", system_resolver, allowed, 5)
    with pytest.raises(UrlRefused, match=r"169\.254\.169\.254 is the cloud metadata service"):
        check_url("http://169.254.169.254/", system_resolver, allowed, 5)


def test_a_name_is_refused_when_any_of_its_addresses_is():
    def resolver(host, port):
        return {"mixed.example": ["93.184.216.34", "10.1.2.3"], "public.example": ["93.184.216.34"]}[host]

    assert check_url("https://public.example/hook", resolver, (), 5).host == "public.example"
    with pytest.raises(UrlRefused, match=r"mixed\.example resolves to 10\.1\.2\.3, a private address"):
        check_url("https://mixed.example/hook", resolver, (), 5)
    with pytest.raises(UrlRefused, match="does not resolve"):
        check_url("https://nowhere.invalid/", lambda host, port: (_ for _ in ()).throw(socket.gaierror("no name")), (), 5)

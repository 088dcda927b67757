"""Webhooks' pure cores: signatures, retry schedule, address rules, and the delivery client
(against receivers on 127.0.0.1)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading
from datetime import UTC, datetime, timedelta

import pytest

from shared.platform.errors import RequestValidationFailed
from shared.webhooks import delivery
from shared.webhooks.addresses import UrlRefused, address_problem, check_url, parse_url, system_resolver
from shared.webhooks.models import TaskFinishedEvent, WebhookCreate
from shared.webhooks.retries import (
    DEFAULT_DELAYS,
    JITTER,
    next_attempt_at,
    retry_after_at,
    schedule_span_seconds,
    should_disable,
)
from shared.webhooks.settings import WebhookSettings
from shared.webhooks.signing import delivery_headers, standard_webhooks_secret
from tests.webhook_receiver import Receiver, answer, seed_verify_signature, standard_webhooks_verify

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


# --- signatures --------------------------------------------------------------------------------

BODY = b'{"uid":"a1b2","status":"done","tool":"feature","result_files":[],"result_data":{"good_matches":342}}'


def test_the_seeds_snippet_accepts_our_signature_and_refuses_a_changed_body():
    headers = delivery_headers("msg_1", "task.done", 1_700_000_000, BODY, "my-secret-key")
    assert headers["X-Webhook-Signature"].startswith("sha256=")
    assert seed_verify_signature(BODY, "my-secret-key", headers["X-Webhook-Signature"])
    assert not seed_verify_signature(BODY + b" ", "my-secret-key", headers["X-Webhook-Signature"])
    assert not seed_verify_signature(BODY, "other-secret", headers["X-Webhook-Signature"])


@pytest.mark.parametrize("secret", ["my-secret-key", "ключ с пробелами ✓", "x" * 1024])
def test_standard_webhooks_signature_verifies_and_binds_id_and_timestamp(secret):
    headers = delivery_headers("msg_abc", "task.done", 1_700_000_000, BODY, secret)
    whsec = standard_webhooks_secret(secret)
    assert headers["webhook-id"] == "msg_abc" and headers["webhook-timestamp"] == "1700000000"
    assert standard_webhooks_verify(whsec, headers, BODY, now=1_700_000_010)
    assert not standard_webhooks_verify(whsec, headers, BODY, now=1_700_000_000 + 3600)  # a replay, much later
    assert not standard_webhooks_verify(whsec, {**headers, "webhook-id": "msg_other"}, BODY, now=1_700_000_000)
    assert not standard_webhooks_verify(whsec, {**headers, "webhook-timestamp": "1700000001"}, BODY, now=1_700_000_000)
    assert not standard_webhooks_verify(whsec, headers, BODY.replace(b"342", b"343"), now=1_700_000_000)


def test_during_a_rotations_overlap_both_secrets_sign_and_either_verifies():
    headers = delivery_headers("msg_abc", "task.done", 1_700_000_000, BODY, "new-secret", "old-secret")
    first, second = headers["webhook-signature"].split(" ")  # Standard Webhooks: space-separated entries
    assert first.startswith("v1,") and second.startswith("v1,") and first != second
    for secret in ("new-secret", "old-secret"):
        assert standard_webhooks_verify(standard_webhooks_secret(secret), headers, BODY, now=1_700_000_000)
    assert not standard_webhooks_verify(standard_webhooks_secret("another"), headers, BODY, now=1_700_000_000)
    assert seed_verify_signature(BODY, "new-secret", headers["X-Webhook-Signature"])  # the seed's header: the new one
    alone = delivery_headers("msg_abc", "task.done", 1_700_000_000, BODY, "new-secret", None)
    assert alone["webhook-signature"] == first
    assert delivery_headers("msg_abc", "task.done", 1_700_000_000, BODY, "same", "same")["webhook-signature"].count("v1,") == 1


def test_without_a_secret_nothing_is_signed_but_id_and_timestamp_are_sent():
    headers = delivery_headers("msg_abc", "task.error", 1_700_000_000, BODY, None)
    assert "X-Webhook-Signature" not in headers and "webhook-signature" not in headers
    assert headers["webhook-id"] == "msg_abc" and headers["X-Webhook-Event"] == "task.error"


# --- retry schedule and disabling -----------------------------------------------------------------

NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_retry_schedule_follows_the_delays_and_gives_up_after_the_last():
    middle = lambda low, high: (low + high) / 2  # noqa: E731 (no jitter)
    waits = [(next_attempt_at(NOW, attempt, DEFAULT_DELAYS, middle) - NOW).total_seconds() for attempt in range(1, len(DEFAULT_DELAYS) + 1)]
    assert waits == pytest.approx([5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000])
    assert next_attempt_at(NOW, len(DEFAULT_DELAYS) + 1, DEFAULT_DELAYS) is None
    assert next_attempt_at(NOW, 0, DEFAULT_DELAYS) is None


def test_retry_delays_are_jittered_within_bounds_and_spread():
    waits = {(next_attempt_at(NOW, 3, DEFAULT_DELAYS) - NOW).total_seconds() for _ in range(200)}
    assert all(1800 * (1 - JITTER) <= wait <= 1800 * (1 + JITTER) for wait in waits)
    assert max(waits) - min(waits) > 60  # not all at once


def test_the_default_schedule_spans_one_to_three_days_and_matches_the_settings():
    from shared.webhooks.settings import WebhookSettings

    assert tuple(WebhookSettings().webhook_retry_delays) == DEFAULT_DELAYS
    assert 1 * 86400 < sum(DEFAULT_DELAYS) < schedule_span_seconds(DEFAULT_DELAYS) < 3 * 86400


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120),
        (" 5 ", 5),
        ("0", 0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 480),  # an HTTP date, 8 min after "now" below
        ("Wed, 21 Oct 2015 07:10:00 GMT", 0),  # one already past: at once
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00", None),
        ("１２", None),  # full-width digits are not a number of seconds
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header, seconds):
    assert delivery.retry_after_seconds(header, now=datetime(2015, 10, 21, 7, 20, tzinfo=UTC).timestamp()) == seconds


def test_retry_after_is_honoured_up_to_the_schedules_longest_delay():
    assert retry_after_at(NOW, 90, DEFAULT_DELAYS) == NOW + timedelta(seconds=90)
    assert retry_after_at(NOW, 7 * 86400, DEFAULT_DELAYS) == NOW + timedelta(seconds=max(DEFAULT_DELAYS))
    assert retry_after_at(NOW, 0, [5, 60]) == NOW


def test_a_hook_is_disabled_only_after_failing_for_the_whole_bound():
    three_days = 3 * 86400
    assert not should_disable(None, NOW, three_days)
    assert not should_disable(NOW - timedelta(days=2, hours=23), NOW, three_days)
    assert should_disable(NOW - timedelta(days=3), NOW, three_days)


# --- URLs and addresses -----------------------------------------------------------------------------


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


# --- the local stack: receivers on this machine, never the platform's own services ------------------

PLATFORM_DB = "postgresql+psycopg://visionfn:pw@127.0.0.1:5432/visionfn"
LOCAL = WebhookSettings(
    stage="local",
    database_url=PLATFORM_DB,
    aws_endpoint_url="http://127.0.0.1:4566",
    localstack_port=4566,
    gateway_port=8888,
    function_base_port=8100,
)
CLOUD = WebhookSettings(
    stage="prod",
    database_url="postgresql+psycopg://u:pw@db.internal:6432/visionfn",
    aws_endpoint_url=None,
    gateway_port=8888,
    function_base_port=8100,
)
#: Every way of writing this machine's address that the resolver takes (each is 127.0.0.1, ::1,
#: 0.0.0.0 or :: once resolved, or an IPv6 address carrying 127.0.0.1).
THIS_MACHINE = [
    "127.0.0.1",
    "2130706433",
    "017700000001",
    "0x7f000001",
    "0177.1",
    "0177.0.0.1",
    "0x7f.1",
    "0x7f.0x0.0x0.0x1",
    "127.1",
    "127.000.000.001",
    "127.0.0.2",
    "１２７.０.０.１",
    "127。0。0。1",
    "localhost",
    "LOCALHOST",
    "ｌｏｃａｌｈｏｓｔ",
    "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ",
    "[::1]",
    "[0::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "[::ffff:0:127.0.0.1]",
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::]",
    "0.0.0.0",
    "0",
    "[::]",
]
PLATFORM_PORTS = {4566: "LocalStack", 8888: "gateway", 8100: "function", 8117: "function", 8163: "function", 5432: "database"}


def local_check(url: str, settings: WebhookSettings = LOCAL, resolver=system_resolver):
    return check_url(url, resolver, settings.reachable_networks(), 5, settings.platform_services())


@pytest.mark.parametrize("host", THIS_MACHINE)
@pytest.mark.parametrize("port", sorted(PLATFORM_PORTS))
def test_the_platforms_own_services_are_refused_in_every_written_form(host, port):
    """GIVEN the local stack, where receivers on this machine are allowed, WHEN a hook names
    LocalStack's, the gateway's, a function's or the database's port in any form THEN 422's reason."""
    with pytest.raises(UrlRefused, match=rf"is not allowed: .*the platform's own {PLATFORM_PORTS[port]} \(port {port}\)"):
        local_check(f"http://{host}:{port}/?Action=ListQueues")


@pytest.mark.parametrize("port", sorted(PLATFORM_PORTS))
def test_the_platforms_ports_are_named_and_refused_whatever_is_allowed(port):
    everything = WebhookSettings(**{**LOCAL.model_dump(), "webhook_allowed_networks": ["0.0.0.0/0", "::/0"]})
    for host in (
        "127.0.0.1",
        "2130706433",
        "[::ffff:127.0.0.1]",
        "localhost",
        "0.0.0.0",
        "[::]",
        "10.1.2.3",
        "[64:ff9b::127.0.0.1]",
        "[2002:7f00:1::]",
    ):
        with pytest.raises(UrlRefused, match=rf"the platform's own {PLATFORM_PORTS[port]} \(port {port}\)"):
            local_check(f"http://{host}:{port}/", everything)


def test_a_name_resolving_to_the_platform_is_refused_at_registration_and_at_delivery():
    """DNS names that point at 127.0.0.1 (or turn to it later: rebinding) reach no platform port."""
    with pytest.raises(UrlRefused, match=r"localtest\.example resolves to 127\.0\.0\.1, the platform's own LocalStack"):
        local_check("http://localtest.example:4566/", resolver=lambda host, port: ["127.0.0.1"])
    answers = iter([["93.184.216.34"], ["::ffff:127.0.0.1"]])
    assert local_check("http://rebind.example:8888/", resolver=lambda host, port: next(answers)).port == 8888
    headers = delivery_headers("msg_1", "task.done", 1_700_000_000, BODY, None)
    result = delivery.post(
        "http://rebind.example:8888/",
        BODY,
        headers,
        resolver=lambda host, port: ["::ffff:127.0.0.1"],
        allowed=LOCAL.reachable_networks(),
        platform=LOCAL.platform_services(),
        timeout=5,
        excerpt_bytes=16,
    )
    assert result.address is None and result.error.startswith(
        "refused: rebind.example resolves to ::ffff:127.0.0.1, the platform's own gateway (port 8888)"
    )


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0177.1",
        "127.1",
        "１２７.０.０.１",
        "localhost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "127.9.9.9",
    ],
)
def test_on_the_local_stack_receivers_on_this_machine_are_allowed_by_default(host):
    assert local_check(f"http://{host}:9999/hook").port == 9999
    assert WebhookSettings(stage="local").webhook_allowed_networks == []  # no setting needed


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9999/",
        "http://localhost:9999/",
        "http://2130706433/",
        "http://[::1]:9999/",
        "http://[::ffff:127.0.0.1]:9999/",
        "http://10.0.0.1:9999/",
    ],
)
def test_in_the_cloud_loopback_and_private_addresses_stay_refused(url):
    assert CLOUD.reachable_networks() == []
    with pytest.raises(UrlRefused, match=r"loopback|private"):
        local_check(url, CLOUD)
    allowed = WebhookSettings(**{**CLOUD.model_dump(), "webhook_allowed_networks": ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]})
    assert local_check(url, allowed).host  # unless allowed


def test_the_platform_services_come_from_the_settings_the_runner_passes():
    local = LOCAL.platform_services()
    assert {port: local.ports[port] for port in PLATFORM_PORTS} == PLATFORM_PORTS
    assert 8099 not in local.ports and 8164 not in local.ports
    test_platform = WebhookSettings(
        stage="local",
        database_url="postgresql+psycopg://u:p@localhost:54321/db",
        aws_endpoint_url="http://127.0.0.1:20000",
        localstack_port=20000,
        gateway_port=20001,
        function_base_port=20002,
        platform_ports=[6379],
    )
    ports = test_platform.platform_services().ports
    assert (ports[20000], ports[20001], ports[20002], ports[20017], ports[54321], ports[6379]) == (
        "LocalStack",
        "gateway",
        "function",
        "function",
        "database",
        "service",
    )
    # in the cloud only the database (and a LocalStack-like endpoint, when set) are the platform's
    cloud = CLOUD.platform_services()
    assert cloud.ports == {6432: "database"} and cloud.endpoints == {}
    with_endpoint = WebhookSettings(
        stage="prod", database_url="postgresql+psycopg://u:p@db/x", aws_endpoint_url="https://93.184.216.34:9000"
    ).platform_services()
    assert with_endpoint.endpoints == {(ipaddress.ip_address("93.184.216.34"), 9000): "LocalStack"}
    assert with_endpoint.ports == {5432: "database"}  # the server's default port
    assert address_problem(ipaddress.ip_address("93.184.216.34"), (), 9000, with_endpoint) is not None
    assert address_problem(ipaddress.ip_address("93.184.216.34"), (), 9001, with_endpoint) is None
    sqlite = WebhookSettings(stage="prod", database_url="sqlite:////tmp/x.sqlite3").platform_services()
    assert sqlite.ports == {} and sqlite.endpoints == {}


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("64:ff9b::7f00:1", "loopback address (the IPv4 address 127.0.0.1 inside 64:ff9b::7f00:1)"),  # NAT64
        ("2002:7f00:1::", "loopback address (the IPv4 address 127.0.0.1 inside 2002:7f00:1::)"),  # 6to4
        ("::7f00:1", "loopback address (the IPv4 address 127.0.0.1 inside ::7f00:1)"),  # IPv4-compatible
        ("::ffff:0:7f00:1", "loopback address (the IPv4 address 127.0.0.1 inside ::ffff:0:7f00:1)"),  # IPv4-translated
        ("64:ff9b::a00:1", "private address (the IPv4 address 10.0.0.1"),
        ("::808:808", "carrying an IPv4 one"),  # IPv4-compatible of a public address: write the address
    ],
)
def test_an_ipv6_address_carrying_an_allowed_ipv4_one_is_judged_as_the_ipv6_address_it_is(address, reason):
    """Allowing 127.0.0.0/8 and 10.0.0.0/8 opens those IPv4 addresses, not the IPv6 addresses that
    carry them (the delivery would connect to the IPv6 address): refused unless that is allowed."""
    allowed = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert reason in address_problem(ipaddress.ip_address(address), allowed)
    itself = [ipaddress.ip_network(f"{address}/128")]
    assert address_problem(ipaddress.ip_address(address), itself) is None
    assert address_problem(ipaddress.ip_address(address), itself, 4566, LOCAL.platform_services()) is not None


@pytest.mark.parametrize(
    "url", ["http://[64:ff9b::127.0.0.1]:9999/", "http://[2002:7f00:1::]:9999/", "http://[::127.0.0.1]:9999/", "http://[64:ff9b::7f00:1]/"]
)
def test_nat64_and_6to4_forms_of_a_local_receiver_are_refused_on_the_local_stack(url):
    with pytest.raises(UrlRefused, match=r"the IPv4 address 127\.0\.0\.1 inside"):
        local_check(url)


def test_an_ipv4_mapped_address_is_judged_and_connected_to_as_its_ipv4_address(receiver):
    port = receiver.server_address[1]
    result = send(f"http://[::ffff:127.0.0.1]:{port}/mapped")
    assert result.ok and result.address == "127.0.0.1" and receiver.received[0].path == "/mapped"
    assert address_problem(ipaddress.ip_address("::ffff:10.0.0.1"), [ipaddress.ip_network("10.0.0.0/8")]) is None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
    ],
)
def test_the_metadata_services_are_refused_whatever_is_allowed(address):
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    assert "the cloud metadata service" in address_problem(ipaddress.ip_address(address), everything)
    with pytest.raises(UrlRefused, match="metadata"):
        local_check(f"http://{ipaddress.ip_address(address) if ':' not in address else f'[{address}]'}/latest/")


def test_a_url_refusal_is_one_problem_in_pydantics_shape():
    error = RequestValidationFailed.problem("url_refused", ["body", "url"], "URL is not allowed: ...", "http://x/")
    assert (error.status, error.body()) == (
        422,
        {"detail": [{"type": "url_refused", "loc": ["body", "url"], "msg": "URL is not allowed: ...", "input": "http://x/"}]},
    )


def test_the_registration_body_is_validated():
    assert WebhookCreate.model_validate({"url": "https://x.example/h"}).events == ["task.done", "task.error"]
    assert WebhookCreate.model_validate({"url": "https://x.example/h", "events": ["task.error", "task.error"]}).events == ["task.error"]
    for body in (
        {},
        {"url": "ftp://x"},
        {"url": "https://x.example", "secret": ""},
        {"url": "https://x.example", "events": []},
        {"url": "https://x.example", "events": ["task.started"]},
        {"url": "https://x.example", "extra": 1},
        {"url": "https://x.example", "secret": "a\x00b"},
        {"url": "https://x.example", "description": "\ud800"},
        {"url": 42},
    ):
        with pytest.raises(ValueError):
            WebhookCreate.model_validate(body)


def test_the_task_finished_event_model_reads_what_eventbridge_puts_on_the_queue():
    event = TaskFinishedEvent.model_validate_json(
        '{"version":"0","id":"e1","detail-type":"Task Finished","source":"visionfn","account":"000000000000",'
        '"time":"2024-01-15T10:30:00Z","region":"us-east-1","resources":[],"detail":{"uid":"abc","owner":"o",'
        '"status":"error","tool":"surface","result_files":[],"result_data":null,"error":"boom"}}'
    )
    assert (event.detail.event, event.detail.event_id) == ("task.error", "abc.error")


# --- the delivery client ---------------------------------------------------------------------------


def send(url, *, resolver=system_resolver, allowed=LOOPBACK, timeout=5.0, excerpt_bytes=16, tls=None):
    headers = delivery_headers("msg_1", "task.done", 1_700_000_000, BODY, "s3cret")
    return delivery.post(url, BODY, headers, resolver=resolver, allowed=allowed, timeout=timeout, excerpt_bytes=excerpt_bytes, tls=tls)


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def test_a_2xx_is_delivered_with_the_exact_bytes_and_an_excerpt_capped(receiver):
    receiver.behaviour = answer(202, b"accepted, thank you very much indeed")
    result = send(receiver.url + "/hook?x=1")
    assert result.ok and result.status_code == 202 and result.address == "127.0.0.1"
    assert result.response_excerpt == "accepted, thank "  # excerpt_bytes=16
    [request] = receiver.received
    assert request.body == BODY and request.path == "/hook?x=1"
    assert seed_verify_signature(request.body, "s3cret", request.headers["x-webhook-signature"])
    assert request.headers["host"] == f"127.0.0.1:{receiver.server_address[1]}"


@pytest.mark.parametrize(
    ("status", "retry_after", "seconds"),
    [
        (429, "30", 30),
        (503, "120", 120),
        (503, "Wed, 21 Oct 2015 07:28:00 GMT", 0),
        (429, None, None),
        (500, "30", None),
        (410, "30", None),  # only 429 and 503 say when to come back
    ],
)
def test_a_429_or_503_answer_says_when_to_try_again(receiver, status, retry_after, seconds):
    receiver.behaviour = answer(status, b"slow down", headers=(("Retry-After", retry_after),) if retry_after else ())
    result = send(receiver.url)
    assert result.error == f"HTTP {status}" and result.retry_after_seconds == seconds


def test_non_2xx_and_redirects_fail_and_redirects_are_not_followed(receiver):
    receiver.behaviour = answer(500, b"boom")
    assert send(receiver.url).error == "HTTP 500"
    receiver.behaviour = answer(302, b"", headers=[("Location", receiver.url + "/elsewhere")])
    result = send(receiver.url + "/first")
    assert result.status_code == 302 and "redirects are not followed" in result.error
    assert [request.path for request in receiver.received] == ["/", "/first"]  # /elsewhere never asked for


def test_a_refused_address_is_never_connected_to(receiver):
    result = send(receiver.url, allowed=())
    assert result.status_code is None and result.address is None
    assert result.error == "refused: 127.0.0.1 is a loopback address"
    assert receiver.received == []


def test_dns_rebinding_is_refused_at_delivery():
    """The name resolved to a public address when it was registered; now it resolves to 10.0.0.1."""
    answers = iter([["93.184.216.34"], ["10.0.0.1"]])

    def rebinding(host, port):
        return next(answers)

    assert check_url("http://hooks.rebind.example/h", rebinding, LOOPBACK, 5).host == "hooks.rebind.example"
    result = send("http://hooks.rebind.example/h", resolver=rebinding)
    assert result.error == "refused: hooks.rebind.example resolves to 10.0.0.1, a private address"


def test_connection_refused_is_a_failed_attempt():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = send(f"http://127.0.0.1:{port}/")
    assert result.error == "connection refused" and result.status_code is None


def test_a_receiver_that_hangs_or_trickles_is_cut_at_the_timeout(receiver):
    release = threading.Event()

    def hang(handler):
        release.wait(30)

    def trickle(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(300):
            if release.wait(0.1):
                return
            handler.wfile.write(b"X-Slow: 1\r\n")
            handler.wfile.flush()

    try:
        for behaviour in (hang, trickle):
            receiver.behaviour = behaviour
            result = send(receiver.url, timeout=0.5)
            assert result.error == "timed out after 0.5 s" and result.duration_ms >= 500
    finally:
        release.set()


def test_https_is_pinned_to_the_checked_address_with_sni_and_verification_for_the_name(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=hooks.test",
            "-addext",
            "subjectAltName=DNS:hooks.test",
        ],
        check=True,
        capture_output=True,
    )
    server = Receiver(answer(200, b"tls ok"))
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    names = []
    server_tls.sni_callback = lambda sock, name, context: names.append(name)
    server.socket = server_tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        result = send(f"https://hooks.test:{port}/h", resolver=lambda host, p: ["127.0.0.1"], tls=trusted)
        assert result.ok and result.response_excerpt == "tls ok" and names == ["hooks.test"]
        assert server.received[0].headers["host"] == f"hooks.test:{port}"
        wrong_name = send(f"https://other.test:{port}/h", resolver=lambda host, p: ["127.0.0.1"], tls=trusted)
        assert wrong_name.error.startswith("TLS:") and len(server.received) == 1
        untrusted = send(f"https://hooks.test:{port}/h", resolver=lambda host, p: ["127.0.0.1"])
        assert untrusted.error.startswith("TLS:")
    finally:
        server.close()

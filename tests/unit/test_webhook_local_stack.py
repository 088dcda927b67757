"""Webhooks on the local stack and in the cloud: receivers on this machine allowed locally, never
the platform's own services (in any written form, by name, after rebinding), loopback and private
addresses refused in the cloud, IPv6 forms carrying an IPv4 address, the metadata services."""

from __future__ import annotations

import ipaddress

import pytest

from shared.webhooks import delivery
from shared.webhooks.addresses import UrlRefused, address_problem, check_url, system_resolver
from shared.webhooks.settings import WebhookSettings
from shared.webhooks.signing import delivery_headers
from tests.unit.webhook_payload import BODY

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
    sqlite = WebhookSettings(stage="prod", database_url="sqlite:////tmp/x.sqlite3", aws_endpoint_url=None).platform_services()
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

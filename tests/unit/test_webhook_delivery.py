"""Webhooks' delivery client against receivers on 127.0.0.1: the exact bytes sent, answers that
fail or say when to come back, refused addresses never connected to, rebinding, timeouts, and HTTPS
pinned to the checked address."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading

import pytest

from shared.webhooks import delivery
from shared.webhooks.addresses import address_problem, check_url, system_resolver
from shared.webhooks.signing import delivery_headers
from tests.unit.webhook_payload import BODY
from tests.webhook_receiver import Receiver, answer, seed_verify_signature

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


def send(url, *, resolver=system_resolver, allowed=LOOPBACK, timeout=5.0, excerpt_bytes=16, tls=None):
    headers = delivery_headers("msg_1", "task.done", 1_700_000_000, BODY, "s3cret")
    return delivery.post(url, BODY, headers, resolver=resolver, allowed=allowed, timeout=timeout, excerpt_bytes=excerpt_bytes, tls=tls)


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def test_an_ipv4_mapped_address_is_judged_and_connected_to_as_its_ipv4_address(receiver):
    port = receiver.server_address[1]
    result = send(f"http://[::ffff:127.0.0.1]:{port}/mapped")
    assert result.ok and result.address == "127.0.0.1" and receiver.received[0].path == "/mapped"
    assert address_problem(ipaddress.ip_address("::ffff:10.0.0.1"), [ipaddress.ip_network("10.0.0.0/8")]) is None


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

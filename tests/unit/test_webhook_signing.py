"""Webhooks' signatures: the seed's ``X-Webhook-Signature`` and the Standard Webhooks headers, with
a rotated secret signing too during its overlap."""

from __future__ import annotations

import pytest

from shared.webhooks.signing import delivery_headers, standard_webhooks_secret
from tests.unit.webhook_payload import BODY
from tests.webhook_receiver import seed_verify_signature, standard_webhooks_verify


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

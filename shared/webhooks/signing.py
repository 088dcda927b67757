"""The headers of a delivery: the seed's signature and the Standard Webhooks set.

- ``X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`` (the seed's scheme;
  its ``verify_signature`` snippet accepts it).
- ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of
  "<id>.<timestamp>.<body>">`` (https://www.standardwebhooks.com/): the id is the same on every
  attempt of one event to one hook (the receiver's idempotency key), the timestamp lets the
  receiver refuse replays.

Both use the hook's secret, UTF-8 encoded, as the HMAC key. (Standard Webhooks libraries take
the key as ``whsec_`` + base64 of those bytes.) A hook registered without a secret gets neither
signature, only the id and timestamp. While a rotated secret's overlap runs, ``webhook-signature``
carries a signature with each secret, space-separated (``v1,<new> v1,<previous>``, as the
standard allows), so a receiver verifies with either; the seed's header has one value: the new
secret's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SEED_SIGNATURE_HEADER = "X-Webhook-Signature"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
EVENT_HEADER = "X-Webhook-Event"
USER_AGENT = "visionfn-webhooks/1.0"


def seed_signature(body: bytes, secret: str) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the body with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(message_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """``v1,<base64>``: HMAC-SHA256 of ``<id>.<timestamp>.<body>`` with the secret."""
    signed = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def standard_webhooks_secret(secret: str) -> str:
    """The secret as Standard Webhooks libraries take it: ``whsec_`` + base64 of its UTF-8 bytes."""
    return "whsec_" + base64.b64encode(secret.encode()).decode()


def delivery_headers(
    message_id: str,
    event: str,
    timestamp: int,
    body: bytes,
    secret: str | None,
    previous_secret: str | None = None,
) -> dict[str, str]:
    """Every header of one attempt (the timestamp is the attempt's, so each attempt is signed anew);
    ``previous_secret``: a rotated secret still in its overlap, which signs too."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
    }
    if secret:
        headers[SEED_SIGNATURE_HEADER] = seed_signature(body, secret)
        signatures = [standard_signature(message_id, timestamp, body, key) for key in (secret, previous_secret) if key]
        headers[SIGNATURE_HEADER] = " ".join(dict.fromkeys(signatures))
    return headers

"""Who is calling: the owner of the API key the gateway (API Gateway's authorizer in the cloud)
verified, and proof that the platform, not some local process, invoked the function."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

from werkzeug.datastructures import Headers

from shared.platform.errors import Unauthorized
from shared.platform.logs import REQUEST_ID_HEADER, add_log_context, new_request_id, valid_request_id
from shared.platform.settings import Settings, get_settings

#: A request's headers: a plain mapping (events, tests) or the web framework's.
RequestHeaders = Mapping[str, str] | Headers

#: Set by the gateway on every request it forwards: the verified key's owner.
OWNER_HEADER = "X-Visionfn-Owner"
#: Sent by the gateway and the event bridge: the secret the runner made for this start.
PLATFORM_TOKEN_HEADER = "X-Visionfn-Platform-Token"  # noqa: S105 (a header name, not a secret)
#: API Gateway's request context, as the cloud entry (shared/platform/cloud_entry.py) passes it.
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
#: What clients send: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
API_KEY_HEADER = "X-API-Key"
BEARER = "bearer "
#: Headers a client may not set itself: the gateway replaces them.
PLATFORM_HEADERS = (OWNER_HEADER, PLATFORM_TOKEN_HEADER, REQUEST_CONTEXT_HEADER)


def api_key_of(headers: RequestHeaders) -> str | None:
    """The key a client sent, if any."""
    authorization = headers.get("Authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER) :].strip() or None
    return (headers.get(API_KEY_HEADER) or "").strip() or None


def check_platform_call(headers: RequestHeaders, settings: Settings) -> None:
    """Locally every invocation must carry this start's platform token (the gateway and the
    event bridge have it; nothing else does). In the cloud (no token configured) a function
    has no URL but the API's, so there is nothing to check."""
    if settings.platform_token is None:
        return
    sent = headers.get(PLATFORM_TOKEN_HEADER, "")
    if not hmac.compare_digest(sent.encode(), settings.platform_token.encode()):
        raise Unauthorized("This function is invoked through the platform only (the gateway or the event bridge)")


def caller(headers: RequestHeaders, settings: Settings | None = None) -> str:
    """The owner of the verified API key; 401 when the request came without one.

    Locally (a platform token is configured) the gateway verified the key and names its owner in
    ``X-Visionfn-Owner``; that header counts only beside this start's platform token. In the cloud
    (no token) the owner comes only from the Lambda authorizer's context that API Gateway passes
    on: a client's own ``X-Visionfn-Owner`` reaches the function there and must count for nothing."""
    settings = settings or get_settings()
    if settings.platform_token is not None:
        check_platform_call(headers, settings)
        owner: object = headers.get(OWNER_HEADER)
    else:
        owner = authorizer_owner(headers)
    if not owner or not isinstance(owner, str):
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    add_log_context(owner=owner)
    return owner


def request_id_of(headers: RequestHeaders) -> str:
    """The request's id: the client's ``X-Request-Id`` when it is safe (bounded, plain characters),
    else API Gateway's request id (deployed), else a new one."""
    cloud = _request_context(headers).get("requestId")
    return valid_request_id(headers.get(REQUEST_ID_HEADER)) or valid_request_id(cloud) or new_request_id()


def _request_context(headers: RequestHeaders) -> dict[str, Any]:
    try:
        context = json.loads(headers.get(REQUEST_CONTEXT_HEADER) or "{}")
    except ValueError:
        return {}
    return context if isinstance(context, dict) else {}


def authorizer_owner(headers: RequestHeaders) -> object:
    """The owner the Lambda authorizer put in the request context (``requestContext.authorizer
    .lambda.owner``, passed by the cloud entry as the ``x-amzn-request-context`` header)."""
    try:
        return _request_context(headers)["authorizer"]["lambda"]["owner"]
    except (KeyError, TypeError):
        return None

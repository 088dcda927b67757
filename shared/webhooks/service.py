"""The webhooks API: register (the URL checked now, and again at every delivery), list, delete,
the delivery log, redelivery, ping, secret rotation and the redelivery of what failed. Every hook
belongs to the key's owner."""

from __future__ import annotations

import secrets
from typing import Any

from shared.platform.errors import BadRequest, RequestValidationFailed
from shared.platform.http import parse_payload
from shared.webhooks.addresses import UrlRefused, check_url
from shared.webhooks.models import (
    DeliveryListQuery,
    DeliveryOut,
    DeliveryPage,
    FailedRedelivery,
    RedeliveriesQueued,
    RotatedWebhook,
    SecretRotation,
    WebhookCreate,
    WebhookList,
    WebhookOut,
)
from shared.webhooks.notifier import Notifier


class WebhookService:
    def __init__(self, notifier: Notifier | None = None) -> None:
        self.notifier = notifier or Notifier()
        self.repository = self.notifier.repository
        self.settings = self.notifier.settings

    def register(self, owner: str, body: Any) -> WebhookOut:
        """422 in pydantic's shape for a bad body or a URL that may not be reached (which says why)."""
        spec = parse_payload(WebhookCreate, _object(body, '{"url": ..., "secret": ...}'))
        try:
            check_url(
                spec.url, self.notifier.resolver, self.notifier.allowed, self.settings.webhook_timeout_seconds, self.notifier.platform
            )
        except UrlRefused as error:
            raise RequestValidationFailed.problem("url_refused", ["body", "url"], str(error), spec.url) from error
        return self.repository.create(owner, spec, self.settings.webhook_max_per_owner)

    def list(self, owner: str) -> WebhookList:
        return WebhookList(self.repository.hooks_of(owner))

    def delete(self, owner: str, webhook_id: str) -> None:
        self.repository.delete(owner, webhook_id)

    def deliveries(self, owner: str, webhook_id: str, query: DeliveryListQuery) -> DeliveryPage:
        return self.repository.page(owner, webhook_id, query.offset, query.limit)

    def redeliver(self, owner: str, webhook_id: str, delivery_id: str) -> DeliveryOut:
        """The delivery sent again now, with the same ``webhook-id`` (whatever its state)."""
        return self.notifier.redeliver(owner, webhook_id, delivery_id)

    def ping(self, owner: str, webhook_id: str) -> DeliveryOut:
        """A signed ``ping`` delivery sent now (not retried); a disabled hook that answers is enabled again."""
        return self.notifier.ping(owner, webhook_id)

    def rotate_secret(self, owner: str, webhook_id: str, body: Any) -> RotatedWebhook:
        """A new secret (the body's, or one made here and answered this once); the previous one
        keeps signing too for ``overlap_seconds``."""
        rotation = parse_payload(SecretRotation, _object(body, '{"secret": ..., "overlap_seconds": ...}'))
        secret = rotation.secret or secrets.token_urlsafe(32)
        hook = self.repository.rotate_secret(owner, webhook_id, secret, rotation.overlap_seconds)
        return RotatedWebhook(**hook.model_dump(), secret=None if rotation.secret else secret)

    def redeliver_failed(self, owner: str, webhook_id: str, body: Any) -> RedeliveriesQueued:
        """Every failed delivery since a time queued for the retry schedule (a disabled hook is
        enabled to send them): how many."""
        request = parse_payload(FailedRedelivery, _object(body, '{"since": "2024-01-15T10:30:00Z"}'))
        return RedeliveriesQueued(queued=self.repository.requeue_failed(owner, webhook_id, request.since), since=request.since)


def _object(body: Any, example: str) -> dict[str, Any]:
    """A JSON body must be an object (400 otherwise)."""
    if not isinstance(body, dict):
        raise BadRequest(f"Request body must be a JSON object: {example}")
    return body

"""The webhooks API: register (the URL checked now, and again at every delivery), list, delete,
the delivery log, redelivery and ping. Every hook belongs to the key's owner."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.platform.errors import BadRequest, RequestValidationFailed
from shared.webhooks.addresses import UrlRefused, check_url
from shared.webhooks.models import DeliveryListQuery, DeliveryOut, DeliveryPage, WebhookCreate, WebhookList, WebhookOut
from shared.webhooks.notifier import Notifier


class WebhookService:
    def __init__(self, notifier: Notifier | None = None) -> None:
        self.notifier = notifier or Notifier()
        self.repository = self.notifier.repository
        self.settings = self.notifier.settings

    def register(self, owner: str, body: Any) -> WebhookOut:
        """422 in pydantic's shape for a bad body or a URL that may not be reached (which says why)."""
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object: {\"url\": ..., \"secret\": ...}")
        try:
            spec = WebhookCreate.model_validate(body)
        except ValidationError as error:
            raise RequestValidationFailed.from_pydantic(error, "body") from error
        try:
            check_url(spec.url, self.notifier.resolver, self.settings.webhook_allowed_networks,
                      self.settings.webhook_timeout_seconds)
        except UrlRefused as error:
            raise RequestValidationFailed([{"type": "url_refused", "loc": ["body", "url"], "msg": str(error),
                                            "input": spec.url}]) from error
        return self.repository.create(owner, spec, self.settings.webhook_max_per_owner)

    def list(self, owner: str) -> WebhookList:
        return WebhookList(self.repository.list(owner))

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

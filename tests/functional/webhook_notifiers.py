"""What the functional webhook tests share: the allowed networks and the secret they register
with, a new owner per test, and notifiers on a clock of their own (far in the future, so the
platform's own notifier keeps off these deliveries)."""

from __future__ import annotations

import uuid

from shared.webhooks.models import TaskFinishedDetail
from shared.webhooks.notifier import Notifier
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.settings import WebhookSettings
from tests.clock import Clock
from tests.conftest import act_as

LOOPBACK = '["127.0.0.0/8"]'
SECRET = "topsecret-6f1b2c"


def owned(client, owner: str | None = None):
    """The client, as a new owner (hooks of one test never get another test's events)."""
    return act_as(client, owner or f"wh-{uuid.uuid4().hex[:12]}")


def _notifier(database_url, resolver=None, **settings) -> tuple[Notifier, Clock]:
    clock = Clock()
    config = WebhookSettings(database_url=database_url, webhook_allowed_networks=["127.0.0.0/8"], **settings)
    kwargs = {"resolver": resolver} if resolver else {}
    return Notifier(WebhookRepository(database_url, clock), settings=config, clock=clock, **kwargs), clock


def _detail(owner: str, status: str = "done") -> TaskFinishedDetail:
    return TaskFinishedDetail(
        uid=uuid.uuid4().hex, owner=owner, status=status, tool="template", result_files=[], result_data={"matches_found": 0}
    )

"""The owners' hooks in the database: register, list, read, rotate a secret, requeue the failed
deliveries, delete, and which hooks want an event. Callers never see ORM objects.

``WebhookRepository`` (repository.py) is this and the hooks' deliveries, each taken under a lease.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from shared.platform.db.engine import session_scope
from shared.platform.db.models import utc_now
from shared.platform.errors import BadRequest, NotFound
from shared.webhooks.models import WebhookCreate, WebhookOut
from shared.webhooks.tables import Webhook, WebhookDelivery

Clock = Callable[[], datetime]
#: Ids as the API gives them out; anything else is "not found" before it reaches a query.
HOOK_ID_LENGTH = 3 + 24


def webhook_not_found() -> NotFound:
    return NotFound("Webhook not found")


def _is_hook_id(value: str) -> bool:
    return len(value) == HOOK_ID_LENGTH and value.startswith("wh_") and is_hex(value[3:])


def is_hex(value: str) -> bool:
    return all(char in "0123456789abcdef" for char in value)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every time here is UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass(frozen=True)
class Subscriber:
    """An enabled hook that wants an event."""

    id: str
    healthy: bool  # its last attempt succeeded (or it has had none): tried at once, else by the schedule


class HookRepository:
    def __init__(self, database_url: str | None = None, clock: Clock = utc_now) -> None:
        self.database_url = database_url
        self.clock = clock

    def create(self, owner: str, spec: WebhookCreate, max_per_owner: int) -> WebhookOut:
        with session_scope(self.database_url) as session:
            count = session.scalar(select(func.count()).select_from(Webhook).where(Webhook.owner == owner)) or 0
            if count >= max_per_owner:
                raise BadRequest(f"An owner may register at most {max_per_owner} webhooks; delete one first")
            hook = Webhook(
                id="wh_" + secrets.token_hex(12),
                owner=owner,
                url=spec.url,
                secret=spec.secret,
                events=list(spec.events),
                description=spec.description,
                enabled=True,
                disabled_reason=None,
                failing_since=None,
                consecutive_failures=0,
                last_success_at=None,
                created_at=self.clock(),
            )
            session.add(hook)
            session.flush()
            return _hook_out(hook)

    def hooks_of(self, owner: str) -> list[WebhookOut]:
        with session_scope(self.database_url) as session:
            hooks = session.scalars(select(Webhook).where(Webhook.owner == owner).order_by(Webhook.created_at, Webhook.id))
            return [_hook_out(hook) for hook in hooks]

    def get(self, owner: str, webhook_id: str) -> WebhookOut:
        with session_scope(self.database_url) as session:
            return _hook_out(self._owned(session, owner, webhook_id))

    def rotate_secret(self, owner: str, webhook_id: str, secret: str, overlap_seconds: float) -> WebhookOut:
        """``secret`` signs from now on; the one it replaces signs too for ``overlap_seconds`` (a
        rotation during an overlap ends that one: two secrets at most)."""
        now = self.clock()
        with session_scope(self.database_url) as session:
            hook = self._owned(session, owner, webhook_id, lock=True)
            keep = bool(hook.secret) and overlap_seconds > 0 and hook.secret != secret
            hook.previous_secret = hook.secret if keep else None
            hook.previous_secret_expires_at = now + timedelta(seconds=overlap_seconds) if keep else None
            hook.secret = secret
            session.flush()
            return _hook_out(hook)

    def requeue_failed(self, owner: str, webhook_id: str, since: datetime) -> int:
        """Every failed delivery of the hook (pings aside) created at or after ``since``, due again
        now: the retry schedule sends each once more (and goes on while its delays last). A
        disabled hook is enabled again to send them; if it still fails it is disabled again at its
        first failure (it has failed for that long already), or at a 410."""
        now = self.clock()
        with session_scope(self.database_url) as session:
            hook = self._owned(session, owner, webhook_id, lock=True)
            queued = len(
                session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.webhook_id == hook.id,
                        WebhookDelivery.status == "failed",
                        WebhookDelivery.event != "ping",
                        WebhookDelivery.created_at >= since,
                    )
                    .values(status="pending", next_attempt_at=now, updated_at=now)
                    .returning(WebhookDelivery.id)
                    .execution_options(synchronize_session=False)
                ).all()
            )
            if queued and not hook.enabled:
                hook.enabled, hook.disabled_reason = True, None
            return queued

    def delete(self, owner: str, webhook_id: str) -> None:
        """The hook and its delivery log (pending retries stop)."""
        with session_scope(self.database_url) as session:
            hook = self._owned(session, owner, webhook_id)
            session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
            session.delete(hook)

    def subscribers(self, owner: str, event: str) -> list[Subscriber]:
        if not owner:
            return []
        with session_scope(self.database_url) as session:
            hooks = session.scalars(select(Webhook).where(Webhook.owner == owner, Webhook.enabled.is_(True)))
            return [Subscriber(hook.id, hook.consecutive_failures == 0) for hook in hooks if event in hook.events]

    def _owned(self, session: Any, owner: str, webhook_id: str, lock: bool = False) -> Webhook:
        """The owner's hook (``lock``: held until the transaction ends); another owner's, or none, is
        "not found"."""
        if not _is_hook_id(webhook_id):
            raise webhook_not_found()
        hook = session.get(Webhook, webhook_id, with_for_update=lock)
        if hook is None or hook.owner != owner:
            raise webhook_not_found()
        return hook


def _hook_out(hook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=hook.id,
        url=hook.url,
        created_at=aware(hook.created_at),
        events=list(hook.events),
        description=hook.description,
        has_secret=bool(hook.secret),
        enabled=hook.enabled,
        disabled_reason=hook.disabled_reason,
        failing_since=aware(hook.failing_since),
        previous_secret_expires_at=aware(hook.previous_secret_expires_at) if hook.previous_secret else None,
    )

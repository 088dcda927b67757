"""Hooks and deliveries in the database. Callers never see ORM objects.

A delivery is sent by whoever holds its lease, taken through the platform's leases
(shared/platform/leases.py) as a task is: ``pending -> sending -> delivered | failed``, and back
to ``pending`` after a failed attempt until its retry is due (``next_attempt_at``). No other
sender takes it while the lease runs; a sender that dies mid-attempt leaves the lease to lapse and
the delivery is taken again (at least once). Every write of an attempt is fenced by the lease's
attempt number: a sender whose lease lapsed and was taken over records nothing (LeaseLost).

The hooks themselves (register, list, rotate, requeue, delete) are ``HookRepository``'s
(hooks_repository.py); ``WebhookRepository`` adds their deliveries.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared.platform.db.engine import dialect_insert, session_scope
from shared.platform.db.models import utc_now
from shared.platform.errors import Busy, NotFound
from shared.platform.leases import Lease, LeasedTable, Statuses
from shared.webhooks.delivery import AttemptResult
from shared.webhooks.hooks_repository import Clock, HookRepository, aware, is_hex, webhook_not_found
from shared.webhooks.models import DeliveryOut, DeliveryPage, Trigger, WebhookOut
from shared.webhooks.retries import next_attempt_at, retry_after_at, should_disable
from shared.webhooks.tables import Webhook, WebhookDelivery

#: Ids as the API gives them out; anything else is "not found" before it reaches a query.
DELIVERY_ID_LENGTH = 4 + 32
SCHEDULED_TRIGGERS = ("event", "schedule")
#: The receiver's answer that the URL is gone for good: its hook is disabled at once.
GONE = 410
DELIVERY_STATUSES = Statuses(waiting="pending", working="sending", finished=("delivered", "failed"))


def delivery_not_found() -> NotFound:
    return NotFound("Delivery not found")


def delivery_id_of(webhook_id: str, event_id: str) -> str:
    """The same event to the same hook is always the same delivery, and so the same ``webhook-id``."""
    return "msg_" + hashlib.sha256(f"{webhook_id}\n{event_id}".encode()).hexdigest()[:32]


def _is_delivery_id(value: str) -> bool:
    return len(value) == DELIVERY_ID_LENGTH and value.startswith("msg_") and is_hex(value[4:])


def _iso(moment: datetime | None) -> str:
    """A stored time in ISO form, to the second (``?`` when there is none)."""
    moment = aware(moment)
    return moment.isoformat(timespec="seconds") if moment is not None else "?"


@dataclass(frozen=True)
class LeasedDelivery:
    """A delivery one sender holds the lease on, with what its attempt needs."""

    lease: Lease  # the fencing token every write of the attempt carries
    webhook_id: str
    url: str
    secret: str | None
    event: str
    payload: bytes
    status_before: str  # pending, or delivered/failed for a redelivery
    previous_secret: str | None = None  # a rotated secret, which signs too until previous_secret_until
    previous_secret_until: datetime | None = None
    owner: str = ""  # the hook's
    request_id: str | None = None  # the job's id (the task's request), sent as X-Request-Id

    @property
    def delivery_id(self) -> str:
        return str(self.lease.key)

    def signing_secrets(self, now: datetime) -> tuple[str | None, str | None]:
        """The secret, and the previous one while its overlap runs (else None)."""
        until = aware(self.previous_secret_until)
        return self.secret, self.previous_secret if until is not None and now < until else None


class WebhookRepository(HookRepository):
    def __init__(self, database_url: str | None = None, clock: Clock = utc_now) -> None:
        super().__init__(database_url, clock)
        self.leases = LeasedTable(
            WebhookDelivery, WebhookDelivery.id, database_url, statuses=DELIVERY_STATUSES, due=WebhookDelivery.next_attempt_at, clock=clock
        )

    def add_delivery(
        self,
        webhook_id: str,
        event: str,
        event_id: str,
        task_uid: str | None,
        payload: bytes,
        lease_seconds: float | None,
        request_id: str | None = None,
    ) -> LeasedDelivery | None:
        """Record the event for the hook once (a repeated event changes nothing: None), due at once.
        With ``lease_seconds`` the caller claims it in the same transaction, to attempt it now;
        without, it is left to the retry schedule."""
        now = self.clock()
        delivery_id = delivery_id_of(webhook_id, event_id)
        with session_scope(self.database_url) as session:
            inserted = session.execute(
                dialect_insert(session, WebhookDelivery)
                .values(
                    id=delivery_id,
                    webhook_id=webhook_id,
                    event_id=event_id,
                    event=event,
                    task_uid=task_uid,
                    request_id=request_id,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    attempt_log=[],
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
                .returning(WebhookDelivery.id)
            ).scalar_one_or_none()
            if inserted is None or lease_seconds is None:
                return None
            lease = self.leases.claim(delivery_id, lease_seconds, session=session)
            held = self._leased(session, [lease] if isinstance(lease, Lease) else [], "pending")
            return held[0] if held else None

    def add_ping(
        self,
        owner: str,
        webhook_id: str,
        payload_of: Callable[[WebhookOut], bytes],
        lease_seconds: float,
    ) -> LeasedDelivery:
        """A new ping delivery of the owner's hook, claimed by the caller."""
        hook = self.get(owner, webhook_id)
        held = self.add_delivery(hook.id, "ping", "ping_" + secrets.token_hex(8), None, payload_of(hook), lease_seconds)
        if held is None:
            raise webhook_not_found()  # deleted meanwhile
        return held

    def page(self, owner: str, webhook_id: str, offset: int, limit: int) -> DeliveryPage:
        """The hook's deliveries, newest first."""
        with session_scope(self.database_url) as session:
            hook = self._owned(session, owner, webhook_id)
            mine = WebhookDelivery.webhook_id == hook.id
            total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(mine)) or 0
            rows = session.scalars(
                select(WebhookDelivery)
                .where(mine)
                .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return DeliveryPage(total=total, deliveries=[_delivery_out(row) for row in rows])

    def delivery(self, delivery_id: str) -> DeliveryOut | None:
        with session_scope(self.database_url) as session:
            row = session.get(WebhookDelivery, delivery_id)
            return None if row is None else _delivery_out(row)

    def reopen(self, owner: str, webhook_id: str, delivery_id: str, lease_seconds: float) -> LeasedDelivery:
        """A client's redelivery: claim the delivery whatever its status (the same ``webhook-id``),
        unless a sender holds it right now (Busy: its attempt is logged within the lease)."""
        if not _is_delivery_id(delivery_id):
            raise delivery_not_found()
        with session_scope(self.database_url) as session:
            hook = self._owned(session, owner, webhook_id)
            row = session.execute(
                select(WebhookDelivery.status, WebhookDelivery.event, WebhookDelivery.payload, WebhookDelivery.request_id)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == hook.id)
                .with_for_update()
            ).one_or_none()
            if row is None:
                raise delivery_not_found()
            lease = self.leases.claim(delivery_id, lease_seconds, reopen=True, session=session)
            if isinstance(lease, Lease):
                return LeasedDelivery(
                    lease,
                    hook.id,
                    hook.url,
                    hook.secret,
                    row.event,
                    row.payload,
                    row.status,
                    hook.previous_secret,
                    hook.previous_secret_expires_at,
                    hook.owner,
                    row.request_id,
                )
        raise Busy(
            f"Delivery {delivery_id} is being sent right now; redeliver it once that attempt is logged",
            self.leases.seconds_left(delivery_id),
        )

    def claim_due(self, limit: int, lease_seconds: float) -> list[LeasedDelivery]:
        """Deliveries of enabled hooks whose time has come (a retry due, or a sender's lease lapsed),
        claimed (oldest due first)."""
        enabled = select(Webhook.id).where(Webhook.enabled.is_(True))
        with session_scope(self.database_url) as session:
            leases = self.leases.claim_batch(
                limit,
                lease_seconds,
                where=[WebhookDelivery.webhook_id.in_(enabled)],
                order_by=WebhookDelivery.next_attempt_at,
                session=session,
            )
            return self._leased(session, leases, "pending")

    def renew(self, held: LeasedDelivery, lease_seconds: float) -> None:
        """The sender's lease now ends ``lease_seconds`` from now; LeaseLost if another sender took it."""
        self.leases.renew(held.lease, lease_seconds)

    def record_attempt(
        self,
        held: LeasedDelivery,
        trigger: Trigger,
        result: AttemptResult,
        delays: Sequence[float],
        disable_after_seconds: float,
    ) -> DeliveryOut | None:
        """Log the attempt; the delivery is delivered, retried later or failed; the hook's health
        follows (and it is disabled when it has been failing for too long). All of it is fenced by
        the sender's lease: LeaseLost (and nothing written) when another sender took the delivery
        over. None: the hook (and so the delivery) was deleted meanwhile.

        A ``410 Gone`` disables the hook at once; a 429's or 503's ``Retry-After`` sets when the
        delivery is retried (at most the schedule's longest delay away)."""
        now = self.clock()
        with session_scope(self.database_url) as session:
            # the hook first, then the delivery: the order every writer of both takes (no deadlock
            # with a disable that fails the hook's other deliveries)
            hook = session.get(Webhook, held.webhook_id, with_for_update=True)
            log = session.scalar(select(WebhookDelivery.attempt_log).where(WebhookDelivery.id == held.delivery_id))
            if hook is None or log is None:
                return None
            # only the lease's holder writes the log, and the write below fails if that is no longer us
            log = [*log, _attempt_record(now, trigger, result)]
            if result.ok:
                row = self.leases.write(held.lease, session=session, status="delivered", attempt_log=log, next_attempt_at=None)
                hook.failing_since, hook.consecutive_failures, hook.last_success_at = None, 0, now
                hook.enabled, hook.disabled_reason = True, None
                return _delivery_out(row)
            retry_at = None
            if held.event != "ping" and (trigger in SCHEDULED_TRIGGERS or held.status_before == "pending"):
                scheduled = sum(1 for attempt in log if attempt["trigger"] in SCHEDULED_TRIGGERS)
                retry_at = next_attempt_at(now, max(scheduled, 1), delays)
                if retry_at is not None and result.retry_after_seconds is not None:
                    retry_at = retry_after_at(now, result.retry_after_seconds, delays)
            hook.consecutive_failures += 1
            hook.failing_since = aware(hook.failing_since) or now
            reason = None
            if result.status_code == GONE:
                reason = (
                    f"Disabled at {now.isoformat(timespec='seconds')}: the receiver answered 410 Gone (it no "
                    "longer wants these deliveries). A successful ping or redelivery enables it again."
                )
            elif hook.enabled and should_disable(hook.failing_since, now, disable_after_seconds):
                reason = (
                    f"Disabled at {now.isoformat(timespec='seconds')}: every delivery attempt failed since "
                    f"{_iso(hook.failing_since)} ({hook.consecutive_failures} "
                    f"attempts; last: {result.error}). A successful ping or redelivery enables it again."
                )
            if reason:
                retry_at = None  # its hook gives up all its pending deliveries, this one too
            row = self.leases.write(
                held.lease, session=session, status="pending" if retry_at else "failed", attempt_log=log, next_attempt_at=retry_at
            )
            if reason:
                self._disable(session, hook, now, reason)
            return _delivery_out(row)

    def _leased(self, session: Session, leases: Sequence[Lease], status_before: str) -> list[LeasedDelivery]:
        """What the attempts of the claimed deliveries need, in the claims' order."""
        if not leases:
            return []
        rows = session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.event,
                WebhookDelivery.payload,
                Webhook.id,
                Webhook.url,
                Webhook.secret,
                Webhook.previous_secret,
                Webhook.previous_secret_expires_at,
                Webhook.owner,
                WebhookDelivery.request_id,
            )
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(WebhookDelivery.id.in_([lease.key for lease in leases]))
        ).all()
        found = {row[0]: row for row in rows}
        held = []
        for lease in leases:
            if lease.key in found:
                _, event, payload, hook_id, url, secret, previous, until, owner, request_id = found[lease.key]
                held.append(LeasedDelivery(lease, hook_id, url, secret, event, payload, status_before, previous, until, owner, request_id))
        return held

    @staticmethod
    def _disable(session: Any, hook: Webhook, now: datetime, reason: str) -> None:
        hook.enabled, hook.disabled_reason = False, reason
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == hook.id, WebhookDelivery.status == "pending")
            .values(status="failed", next_attempt_at=None, updated_at=now)
        )


def _attempt_record(now: datetime, trigger: str, result: AttemptResult) -> dict[str, Any]:
    return {
        "at": now.isoformat(),
        "trigger": trigger,
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
        "response_excerpt": result.response_excerpt,
        "address": result.address,
    }


def _delivery_out(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        webhook_id=row.webhook_id,
        event=row.event,
        event_id=row.event_id,
        task_uid=row.task_uid,
        state=row.status,
        attempts=row.attempt_log,
        next_attempt_at=aware(row.next_attempt_at),
        payload_bytes=len(row.payload),
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )

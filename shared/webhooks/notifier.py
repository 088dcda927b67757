"""Deliveries: a finished task's event to each of its owner's hooks, and the due retries.

For each ``Task Finished`` event (at least once, so possibly twice) every enabled hook of the
task's owner that wants the outcome gets one delivery, recorded once per (hook, task, status).
Healthy hooks are attempted at once, all concurrently, each attempt bounded by
``VISIONFN_WEBHOOK_TIMEOUT_SECONDS``; a hook whose last attempt failed is left to the retry
schedule, so a dead or hanging receiver costs the event path one timeout at most once. The
scheduled run (every minute) attempts whatever is due, concurrently too. No attempt holds the
event: a failure schedules a retry in the database and the event is done.

Every attempt is made under the delivery's lease (shared/platform/leases.py, through the
repository): renewed just before the POST, so the attempt has all of it however long it waited
for a thread, and a sender that lost it sends nothing; its outcome is recorded only while the
lease still holds (else LeaseLost: the sender that took it over records its own).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter

from shared.platform.batch import Invocation, Outcome, read_message
from shared.platform.db.models import utc_now
from shared.platform.errors import LeaseLost, TaskNotFound
from shared.platform.events import SqsRecord
from shared.platform.logs import REQUEST_ID_HEADER, log_context, valid_request_id
from shared.platform.metrics import emit_metrics
from shared.platform.tasks import TaskRepository
from shared.webhooks import delivery
from shared.webhooks.addresses import Resolver, system_resolver
from shared.webhooks.hooks_repository import Clock, webhook_not_found
from shared.webhooks.models import DeliveryOut, TaskFinishedDetail, TaskFinishedEvent, Trigger, WebhookOut
from shared.webhooks.repository import LeasedDelivery, WebhookRepository
from shared.webhooks.settings import WebhookSettings, get_webhook_settings
from shared.webhooks.signing import delivery_headers

log = logging.getLogger("visionfn.webhooks")
TASK_FINISHED_EVENT = TypeAdapter(TaskFinishedEvent)

MAX_PARALLEL_ATTEMPTS = 32
#: A delivery's lease runs this much longer than an attempt can last.
LEASE_MARGIN_SECONDS = 30
#: Deliveries one scheduled run claims at a time.
DUE_BATCH = 64


class RetryReport(BaseModel):
    attempted: int
    delivered: int
    failed: int  # attempts that failed (retried later, or the delivery given up)


def task_payload(detail: TaskFinishedDetail, tasks: TaskRepository | None) -> bytes:
    """The seed's payload ``{uid, status, tool, result_files, result_data}`` (and ``error``), from
    the task as stored (the event's copy when the task is gone)."""
    fields: dict[str, Any] = detail.model_dump(include={"uid", "status", "tool", "result_files", "result_data", "error"})
    if tasks is not None:
        try:
            task = tasks.get(detail.uid)
        except TaskNotFound:
            task = None
        if task is not None and task.status == detail.status:
            fields.update(result_files=task.result_files, result_data=task.result_data, error=task.error, tool=task.tool)
    payload = {key: fields[key] for key in ("uid", "status", "tool", "result_files", "result_data", "error")}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def ping_payload(hook: WebhookOut, now: datetime) -> bytes:
    return json.dumps(
        {"event": "ping", "webhook_id": hook.id, "url": hook.url, "sent_at": now.isoformat()}, separators=(",", ":"), ensure_ascii=False
    ).encode()


class Notifier:
    def __init__(
        self,
        repository: WebhookRepository | None = None,
        tasks: TaskRepository | None = None,
        resolver: Resolver = system_resolver,
        settings: WebhookSettings | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings or get_webhook_settings()
        self.repository = repository or WebhookRepository(clock=clock)
        self.tasks = tasks if tasks is not None else TaskRepository(self.repository.database_url)
        self.resolver = resolver
        self.clock = clock
        self.allowed = self.settings.reachable_networks()  # the allowed networks (and loopback, locally)
        self.platform = self.settings.platform_services()  # never reached, whatever is allowed

    @property
    def lease_seconds(self) -> float:
        return self.settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS

    # --- the event path ---------------------------------------------------------------------------
    def handle_record(self, record: SqsRecord, _invocation: Invocation) -> Outcome:
        """One queued ``Task Finished`` event: record its deliveries, attempt the healthy ones now."""
        event = read_message(record, TASK_FINISHED_EVENT, "a Task Finished event")
        with log_context(request_id=valid_request_id(event.detail.request_id), task_uid=event.detail.uid):
            self.attempt_all(self.record_event(event.detail), "event")
        return Outcome.HANDLED

    def record_event(self, detail: TaskFinishedDetail) -> list[LeasedDelivery]:
        """One delivery per subscribed hook (none new for a repeated event); those to attempt now, leased."""
        subscribers = self.repository.subscribers(detail.owner, detail.event)
        if not subscribers:
            return []
        payload = task_payload(detail, self.tasks)
        leased = []
        for hook in subscribers:
            held = self.repository.add_delivery(
                hook.id,
                detail.event,
                detail.event_id,
                detail.uid,
                payload,
                self.lease_seconds if hook.healthy else None,
                valid_request_id(detail.request_id),
            )
            if held is not None:
                leased.append(held)
        return leased

    # --- the schedule -----------------------------------------------------------------------------
    def run_due_retries(self) -> RetryReport:
        """Attempt what is due, batch after batch, while another batch fits in this invocation."""
        budget_ends = time.monotonic() + self.settings.function_timeout - self.lease_seconds
        report = RetryReport(attempted=0, delivered=0, failed=0)
        while True:
            leased = self.repository.claim_due(DUE_BATCH, self.lease_seconds)
            outcomes = self.attempt_all(leased, "schedule")
            report.attempted += len(leased)
            report.delivered += sum(1 for outcome in outcomes if outcome is not None and outcome.state == "delivered")
            report.failed += sum(1 for outcome in outcomes if outcome is not None and outcome.state != "delivered")
            if len(leased) < DUE_BATCH or time.monotonic() > budget_ends:
                return report

    # --- attempts ---------------------------------------------------------------------------------
    def attempt_all(self, leased: Sequence[LeasedDelivery], trigger: Trigger) -> list[DeliveryOut | None]:
        """Every leased delivery attempted at once (each bounded by the timeout): a slow receiver
        delays no other. An attempt whose outcome cannot be recorded (the database) is logged and
        left leased: it is due again when its lease lapses; one whose lease was taken over is
        logged and dropped (its new holder attempts it)."""
        if len(leased) <= 1:
            return [self._attempt_logged(held, trigger) for held in leased]
        with ThreadPoolExecutor(min(len(leased), MAX_PARALLEL_ATTEMPTS), thread_name_prefix="webhook") as pool:
            return list(pool.map(lambda held: self._attempt_logged(held, trigger), leased))

    def _attempt_logged(self, held: LeasedDelivery, trigger: Trigger) -> DeliveryOut | None:
        try:
            with log_context(request_id=held.request_id, delivery_id=held.delivery_id, owner=held.owner or None):
                return self.attempt(held, trigger)
        except LeaseLost as lost:
            log.warning(
                "delivery %s to hook %s (%s) not recorded: %s; its new holder attempts it", held.delivery_id, held.webhook_id, trigger, lost
            )
            return None
        except Exception:
            log.exception(
                "delivery %s to hook %s (%s) not recorded; it is tried again in %.0f s",
                held.delivery_id,
                held.webhook_id,
                trigger,
                self.lease_seconds,
            )
            return None

    def attempt(self, held: LeasedDelivery, trigger: Trigger) -> DeliveryOut | None:
        """Renew the lease, POST the delivery's exact bytes signed for this attempt, log the
        outcome under the lease (LeaseLost when another sender holds the delivery now)."""
        self.repository.renew(held, self.lease_seconds)
        now = self.clock()
        secret, previous_secret = held.signing_secrets(now)
        headers = delivery_headers(held.delivery_id, held.event, int(now.timestamp()), held.payload, secret, previous_secret)
        if held.request_id:
            headers[REQUEST_ID_HEADER] = held.request_id
        result = delivery.post(
            held.url,
            held.payload,
            headers,
            resolver=self.resolver,
            allowed=self.allowed,
            platform=self.platform,
            timeout=self.settings.webhook_timeout_seconds,
            excerpt_bytes=self.settings.webhook_response_excerpt_bytes,
        )
        outcome = self.repository.record_attempt(
            held,
            trigger,
            result,
            self.settings.webhook_retry_delays,
            self.settings.webhook_disable_after_seconds,
        )
        state = outcome.state if outcome else "deleted"
        emit_metrics(
            f"delivery {held.delivery_id} ({held.event}) to hook {held.webhook_id}, {trigger}: "
            f"{result.error or f'HTTP {result.status_code}'} in {result.duration_ms} ms -> {state}",
            {"event": held.event},
            {
                "webhook_attempts": (1, "Count"),
                "webhook_failures": (int(not result.ok), "Count"),
                "webhook_duration": (result.duration_ms, "Milliseconds"),
            },
            webhook_id=held.webhook_id,
            trigger=trigger,
        )
        return outcome

    # --- the API's attempts -------------------------------------------------------------------------
    def redeliver(self, owner: str, webhook_id: str, delivery_id: str) -> DeliveryOut:
        held = self.repository.reopen(owner, webhook_id, delivery_id, self.lease_seconds)
        return self._attempted(held, "redeliver")

    def ping(self, owner: str, webhook_id: str) -> DeliveryOut:
        held = self.repository.add_ping(owner, webhook_id, lambda hook: ping_payload(hook, self.clock()), self.lease_seconds)
        return self._attempted(held, "ping")

    def _attempted(self, held: LeasedDelivery, trigger: Trigger) -> DeliveryOut:
        outcome = self.attempt(held, trigger)
        if outcome is None:
            raise webhook_not_found()  # deleted while it was attempted
        return outcome

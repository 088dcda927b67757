"""The webhooks' tables (migrations ``0007_webhooks``, ``0010_webhook_delivery_leases``,
``0011_webhook_secret_rotation``), on the platform's declarative base."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db.models import Base, JsonColumn, utc_now


class Webhook(Base):
    """A URL an owner registered to hear about its tasks. The secret is kept to sign deliveries
    and is never returned or logged."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # wh_<24 hex>
    owner: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the secret before the last rotation, which signs deliveries too until ``previous_secret_expires_at``
    previous_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    events: Mapped[list[str]] = mapped_column(JsonColumn)  # task.done, task.error
    description: Mapped[str] = mapped_column(String(256), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class WebhookDelivery(Base):
    """One event for one hook: the exact bytes sent, every attempt, and what comes next.

    Taken with a lease (shared/platform/leases.py), as a task is: ``status`` pending (due at
    ``next_attempt_at``) -> sending (one sender holds it until ``lease_expires_at``) -> delivered |
    failed, or back to pending for a retry. ``attempts`` counts the claims (the lease's fencing
    token); ``attempt_log`` is what each attempt got back."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # msg_<32 hex>: the webhook-id header
    webhook_id: Mapped[str] = mapped_column(String(32), ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(80))  # <task uid>.<status>, or ping_<hex>
    event: Mapped[str] = mapped_column(String(32))  # task.done, task.error, ping
    task_uid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the job's id: the X-Request-Id header
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn, default=list)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

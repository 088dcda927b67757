"""Tables. Changes here need a migration under ``shared/platform/db/migrations/versions``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonColumn = JSON().with_variant(JSONB(), "postgresql")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Task(Base):
    """An asynchronous job: ``queued -> processing -> done | error``."""

    __tablename__ = "tasks"

    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), default="")  # the API key's owner who submitted it
    tool: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    input_files: Mapped[list[str]] = mapped_column(JsonColumn, default=list)
    thumbnails: Mapped[list[str]] = mapped_column(JsonColumn, default=list)
    result_files: Mapped[list[str]] = mapped_column(JsonColumn, default=list)
    result_data: Mapped[dict[str, Any] | None] = mapped_column(JsonColumn, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_delivery: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the job message's receive count that holds it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    # chain matching: a step is a task of its chain (``parent_uid``, 1-based ``step``), seen by
    # clients only in the chain's result; the chain keeps its state machine execution
    parent_uid: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    execution_arn: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the request that made it (its job's id)


class TaskEvent(Base):
    """One step of a task's timeline: an attempt that started, one given back for a retry, the end
    (its submission is the task's ``created_at``, its queueing the job's ``sent_at``)."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_uid: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    event: Mapped[str] = mapped_column(String(16))  # "started", "released", "done", "error"
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class ProcessedObject(Base):
    """One row per (consumer, object version) an upload handler works on, taken with a lease as a
    task is (``queued -> processing -> done | error``): a redelivery of done work does nothing."""

    __tablename__ = "processed_objects"
    __table_args__ = (UniqueConstraint("consumer", "object_key", "etag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_delivery: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the notification's receive count that holds it
    output_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    receive_count: Mapped[int] = mapped_column(Integer, default=1)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OutboxMessage(Base):
    """A message written in the same transaction as the state change it announces (a task's job,
    its task-finished event); sent right after the commit, or later by the sweeper if the sender
    died first. ``sent_at`` is null until it was handed to SQS / EventBridge."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_uid: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "job" (SQS queue), "event" (EventBridge bus), "execution"
    target: Mapped[str] = mapped_column(String(1024))  # queue URL, bus name or state machine ARN
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # a job's: its message attribute


class ApiKey(Base):
    """An API key: only its SHA-256 is kept (``python -m shared.platform.keys``)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
